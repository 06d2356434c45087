"""Availability is buildability: a stage whose file verifies but does not build is unavailable
with its reason, Auto falls back from it, Manual naming it gets one clear error, and a request
that does not need it is never broken. Also: one build lock per stage, and
``python -m restorer stages``."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pytest

from restorer import Pipeline, Registry, StageEntry, plan_manual
from restorer.errors import StageUnavailableError
from restorer.planner import AutoMethods
from restorer.service import AUTO_FALLBACKS, ServiceConfig, build_pipeline
from restorer.stages.base import (ProgressFn, StageKind, StageOutput, StageSpec, TriageResult,
                                  Work)
from restorer.stages.deblur import RichardsonLucyDeblur
from restorer.stages.detect import MorphologicalDetector
from restorer.stages.face import GfpganFace
from restorer.stages.inpaint import TeleaInpainter
from restorer.stages.triage_net import NetTriage
from restorer.stages_cli import format_rows, stage_rows
from restorer.weights import default_manifest_path, load_manifest, sha256_file


@pytest.fixture
def garbage_segnet(tmp_path: Path) -> ServiceConfig:
    """A weights folder whose only file is a 'SegNet' of random bytes, with a manifest that
    records its sha256 and size: it is present and verifies, but cannot build."""
    folder = tmp_path / "weights"
    folder.mkdir()
    path = folder / "detector_segnet.safetensors"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    manifest = load_manifest(default_manifest_path()).updated(
        {"detect_segnet": {"sha256": sha256_file(path), "size": path.stat().st_size}})
    manifest.save(folder / "manifest.json")
    return ServiceConfig(manifest=folder / "manifest.json", weights_dir=folder,
                         cache_dir=folder / "hub", offline=True, device="cpu")


def _photo() -> np.ndarray:
    rng = np.random.default_rng(3)
    photo = np.full((96, 128, 3), 0.5, np.float32) + rng.normal(0, 0.02, (96, 128, 3))
    photo[40:42, 10:110] = 0.95  # a scratch
    return np.clip(photo, 0, 1).astype(np.float32)


def test_auto_falls_back_from_a_stage_that_verifies_but_fails_to_build(garbage_segnet):
    pipeline = build_pipeline(garbage_segnet)
    assert pipeline.auto.detect == "detect.print"  # its file is present and verified
    result = pipeline.run(_photo())
    assert [r.id for r in result.stages][0] == "detect.morph"
    assert len(result.fallbacks) == 2
    assert result.fallbacks[0].startswith("detect.print could not be used (failed to build (")
    assert result.fallbacks[0].endswith("detect.segnet ran instead")
    assert result.fallbacks[1].endswith("detect.morph ran instead")
    assert json.loads(json.dumps(result.report()))["fallbacks"] == list(result.fallbacks)
    registry = pipeline.registry
    for stage_id in ("detect.print", "detect.segnet"):
        assert not registry.is_available(stage_id)
        assert registry.unavailable_reason(stage_id).startswith("failed to build (WeightsError")
    status = {s.id: s for s in registry.status()}
    assert status["detect.morph"].available and status["detect.morph"].built
    assert status["inpaint.gan"].reason.startswith("weights not usable here (inpaint_gan: "
                                                   "missing file)")
    again = pipeline.run(_photo())  # the failure is remembered: same fallbacks, no rebuild
    assert again.fallbacks == result.fallbacks


def test_manual_naming_a_stage_that_fails_to_build_is_one_clear_error(garbage_segnet):
    pipeline = build_pipeline(garbage_segnet)
    specs = {s.id: s for s in pipeline.registry.specs()}
    with pytest.raises(StageUnavailableError,
                       match=r"stage 'detect.segnet' is unavailable: failed to build"):
        pipeline.run(_photo(), plan_manual(["detect.segnet", "inpaint.telea"], specs))
    # A Manual plan that does not name it still runs (its triage's detector falls back).
    result = pipeline.run(_photo(), plan_manual(["detect.morph", "inpaint.telea"], specs))
    assert [r.id for r in result.stages][-1] == "inpaint.telea"


def test_stages_listing_says_why_each_stage_is_unavailable(garbage_segnet):
    pipeline = build_pipeline(garbage_segnet)
    manifest = load_manifest(garbage_segnet.manifest)
    rows = stage_rows(pipeline, manifest, build=False)
    by_id = {row["id"]: row for row in rows}
    assert set(by_id) == {s.id for s in pipeline.registry.specs()}
    assert by_id["detect.segnet"]["available"]  # not built yet: its file verifies
    assert "missing file" in by_id["inpaint.lama"]["reason"]
    assert by_id["inpaint.lama"]["weights"] == [{"id": "big_lama", "licence": "Apache-2.0",
                                                 "published": True}]
    assert by_id["detect.segnet"]["weights"][0]["published"] is False
    built = {row["id"]: row for row in stage_rows(pipeline, None, build=True)}
    assert built["detect.segnet"]["reason"].startswith("failed to build")
    assert built["inpaint.telea"]["built"] and built["inpaint.telea"]["reason"] is None
    table = format_rows(list(built.values()))
    assert "detect.segnet" in table and "failed to build" in table
    assert "Apache-2.0" in format_rows(rows) and "CC-BY-NC" not in format_rows(rows)


def test_stages_subcommand_prints_every_stage_as_json(monkeypatch, capsys):
    from restorer.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["stages", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    ids = [row["id"] for row in rows]
    assert "detect.segnet" in ids and "face.gfpgan" in ids and len(ids) == len(set(ids))
    assert all(row["available"] == (row["reason"] is None) for row in rows)


class _FaceFinder:
    """A triage that always finds the photo blurred (so Auto plans deblur and faces)."""

    spec = StageSpec(id="triage.heuristic", kind=StageKind.TRIAGE, method="fake", title="fake",
                     description="always blurred", produces=frozenset({"triage"}))

    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        return StageOutput(triage=TriageResult({"clean": 0.0, "blurred": 1.0, "cracked": 0.0,
                                                "blurred+cracked": 0.0}, True, False, "fake"))


def _failing(what: str):
    def factory() -> Any:
        raise RuntimeError(f"{what} does not load")

    return factory


def test_triage_net_and_faces_fall_back_when_they_fail_to_build():
    registry = Registry([StageEntry(NetTriage.spec, _failing("the triage network")),
                         StageEntry(_FaceFinder.spec, _FaceFinder),
                         StageEntry(MorphologicalDetector.spec, MorphologicalDetector),
                         StageEntry(TeleaInpainter.spec, TeleaInpainter),
                         StageEntry(RichardsonLucyDeblur.spec, RichardsonLucyDeblur),
                         StageEntry(GfpganFace.spec, _failing("GFP-GAN"))],
                        weight_check=lambda weight_id: True)  # files "here": the builds fail
    pipeline = Pipeline(registry, triage_id="triage.net",
                        auto=AutoMethods(detect="detect.morph", face="face.gfpgan"),
                        fallbacks=AUTO_FALLBACKS)
    result = pipeline.run(_photo())
    assert result.triage.method == "fake"
    assert [r.id for r in result.stages][-1] == "deblur.rl"
    assert any(f.startswith("triage.net could not be used (failed to build (RuntimeError: the "
                            "triage network does not load))") for f in result.fallbacks)
    assert any(f.startswith("face.gfpgan could not be used") and f.endswith("skipped")
               for f in result.fallbacks)


def test_a_failed_build_is_kept_and_stages_build_under_their_own_locks():
    calls: list[str] = []
    both_inside = threading.Barrier(2, timeout=5)

    def slow(stage: type) -> Any:
        def factory() -> Any:
            calls.append(stage.spec.id)
            both_inside.wait()  # times out (BrokenBarrierError) if builds were serialised
            return stage()

        return factory

    registry = Registry([StageEntry(MorphologicalDetector.spec, slow(MorphologicalDetector)),
                         StageEntry(TeleaInpainter.spec, slow(TeleaInpainter)),
                         StageEntry(GfpganFace.spec, _failing("GFP-GAN"))],
                        weight_check=lambda weight_id: True)
    threads = [threading.Thread(target=registry.build, args=(i,))
               for i in ("detect.morph", "inpaint.telea")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(calls) == ["detect.morph", "inpaint.telea"]
    assert all(s.built for s in registry.status() if s.id != "face.gfpgan")
    for _ in range(2):
        with pytest.raises(StageUnavailableError, match="failed to build .RuntimeError: GFP-GAN"):
            registry.build("face.gfpgan")
    assert registry.unavailable_reason("face.gfpgan") == \
        "failed to build (RuntimeError: GFP-GAN does not load)"


def test_device_and_precision_reach_the_own_learned_stages():
    """--device / --precision (ServiceConfig) reach detect.segnet and detect.print (and, through
    the same registry argument, triage.net's detector, detect.learned and inpaint.gan)."""
    import torch

    from restorer.registry import default_registry

    segnet = default_manifest_path().parent / "detector_segnet.safetensors"
    for device in ("cpu",) + (() if torch.cuda.is_available() else ("cuda",)):
        registry = default_registry(weight_check=lambda w: True, weight_path=lambda w: segnet,
                                    device=device, precision="fp32")
        for stage_id in ("detect.segnet", "detect.print"):
            if device == "cpu":
                stage = registry.build(stage_id)
                assert stage.runtime.device == "cpu" and stage.runtime.precision == "fp32"
            else:  # asked for a GPU this host lacks: the stage says so and is unavailable
                with pytest.raises(StageUnavailableError, match="device 'cuda' was asked for"):
                    registry.build(stage_id)
