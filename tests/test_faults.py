"""Faults: corrupt weight files, an unreachable Hub, a stage that runs out of memory.

Each must fail only what it touches, with a message naming it; the rest keeps working.
(GPU out of memory in the face stage: tests/test_face.py::
test_cuda_out_of_memory_falls_back_to_the_cpu_with_a_message.)
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from _app_server import free_port, save_cracked_photo, serve  # noqa: I001

from gradio_client import Client, handle_file  # noqa: E402  (after _app_server's env setup)
from gradio_client.exceptions import AppError  # noqa: E402

from restorer import Pipeline, Registry, StageEntry, plan_manual, synth  # noqa: E402
from restorer.cli import main as cli_main  # noqa: E402
from restorer.errors import StageUnavailableError, WeightsError  # noqa: E402
from restorer.service import ServiceConfig, build_pipeline, build_store  # noqa: E402
from restorer.stages.base import StageOutput, StageKind  # noqa: E402
from restorer.stages.deblur import RichardsonLucyDeblur  # noqa: E402
from restorer.stages.detect import MorphologicalDetector  # noqa: E402
from restorer.stages.inpaint import TeleaInpainter  # noqa: E402
from restorer.stages.triage import HeuristicTriage  # noqa: E402
from restorer.weights import WeightStore, load_manifest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def weights_copy(tmp_path: Path) -> Path:
    """A private copy of the bundled weights folder (manifest and files)."""
    folder = tmp_path / "weights"
    shutil.copytree(ROOT / "weights", folder)
    return folder


def _config(folder: Path, **options) -> ServiceConfig:
    return ServiceConfig(manifest=folder / "manifest.json", weights_dir=folder,
                         cache_dir=folder / "hub", **{"offline": True, **options})


def _corrupt(path: Path) -> None:
    """Flip one byte in the middle of ``path`` (size kept, modification time changes)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupt_weight_file_makes_its_stage_unavailable_not_a_crash(weights_copy, photos):
    config = _config(weights_copy)
    good = build_pipeline(config)  # verifies and stamps every bundled file
    assert good.triage_id == "triage.net" and good.registry.is_available("inpaint.gan")

    _corrupt(weights_copy / "triage_net.keras")
    _corrupt(weights_copy / "inpaint_gan.safetensors")
    pipeline = build_pipeline(config)
    # Auto falls back to the triage that needs no weights; the learned inpainter is unavailable.
    assert pipeline.triage_id == "triage.heuristic"
    assert pipeline.registry.missing_weights("inpaint.gan") == ["inpaint_gan"]
    assert pipeline.registry.is_available("detect.segnet")  # untouched files still verify
    from restorer.page import stage_choices

    labels = dict((v, k) for k, v in stage_choices(pipeline, StageKind.INPAINT))
    assert "(unavailable: weights not usable here (inpaint_gan: hash or size mismatch)" \
        in labels["inpaint.gan"] and "weights pull inpaint_gan" in labels["inpaint.gan"]

    result = pipeline.run(photos["coffee"])  # Auto still works
    assert result.triage.method == "heuristic"
    specs = {s.id: s for s in pipeline.registry.specs()}
    plan = plan_manual(["inpaint.gan"], specs, has_mask=True)
    mask = np.zeros(photos["coffee"].shape[:2], bool)
    mask[10:20, 10:20] = True
    with pytest.raises(StageUnavailableError, match="weights pull inpaint_gan"):
        pipeline.run(photos["coffee"], plan, mask=mask)
    # A bundled file is never deleted, even when corrupt: the user sees which file it is.
    assert (weights_copy / "triage_net.keras").is_file()
    with pytest.raises(WeightsError, match="sha256"):
        build_store(config).resolve("triage_net", download=False)


def test_corrupt_detector_file_falls_back_to_morphology(weights_copy, photos):
    """The SegNet file feeds Auto's detector and the triage's crack evidence: without it
    Auto detects morphologically and triages with the heuristic, and still restores."""
    config = _config(weights_copy)
    good = build_pipeline(config)
    assert good.auto.detect == "detect.print" and good.triage_id == "triage.net"
    _corrupt(weights_copy / "detector_segnet.safetensors")
    pipeline = build_pipeline(config)
    assert pipeline.auto.detect == "detect.morph" and pipeline.triage_id == "triage.heuristic"
    result = pipeline.run(synth.damage(photos["coffee"], np.random.default_rng(1)).image)
    assert result.plan.ids[:2] == ("detect.morph", "inpaint.telea")


def test_unreachable_hub_falls_back_to_the_bundled_weights(weights_copy, photos, monkeypatch,
                                                           capsys):
    """Online mode with no network: the app starts and runs on what is bundled; pulling the
    missing face weights fails with a message, fast, and leaves nothing half-written."""
    connects: list[object] = []
    real_connect = socket.socket.connect

    def refuse(sock, address):  # only loopback is allowed, and nothing listens on that port
        connects.append(address)
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise OSError("network is unreachable (test)")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    config = _config(weights_copy, offline=False)
    pipeline = build_pipeline(config)
    assert connects == []  # starting never touches the network
    assert pipeline.triage_id == "triage.net" and pipeline.auto.face is None
    assert pipeline.run(photos["coffee"]).triage.method == "net"

    dead = f"http://127.0.0.1:{free_port()}"
    store = WeightStore(load_manifest(config.manifest), bundled_dir=weights_copy,
                        cache_dir=weights_copy / "hub", offline=False, endpoint=dead)
    assert store.resolve("triage_net") == weights_copy / "triage_net.keras"  # bundled wins
    with pytest.raises(WeightsError) as caught:
        store.resolve("parsenet")
    assert "parsenet" in str(caught.value)
    code = cli_main(["weights", "pull", "parsenet", "--manifest", str(config.manifest),
                     "--cache-dir", str(weights_copy / "hub"), "--endpoint", dead])
    err = capsys.readouterr().err
    assert code != 0 and "parsenet" in err and "Traceback" not in err
    partial = [p for p in (weights_copy / "hub").rglob("*") if p.is_file()
               and "parsing_parsenet" in p.name]
    assert partial == []


class _FlakyDeblur(RichardsonLucyDeblur):
    """deblur.rl that runs out of memory on its first call only."""

    calls = 0

    def run(self, work, options, progress) -> StageOutput:
        type(self).calls += 1
        if type(self).calls == 1:
            raise MemoryError()
        return super().run(work, options, progress)


@pytest.fixture(scope="module")
def flaky_client(tmp_path_factory):
    registry = Registry([StageEntry(HeuristicTriage.spec, HeuristicTriage),
                         StageEntry(MorphologicalDetector.spec, MorphologicalDetector),
                         StageEntry(TeleaInpainter.spec, TeleaInpainter),
                         StageEntry(RichardsonLucyDeblur.spec, _FlakyDeblur)])
    with serve(tmp_path_factory.mktemp("gradio-cache"), pipeline=Pipeline(registry)) as url:
        yield Client(url, verbose=False, download_files=str(tmp_path_factory.mktemp("dl")))


def test_stage_out_of_memory_fails_that_request_with_its_name_and_the_next_works(
        flaky_client, tmp_path):
    photo, _ = save_cracked_photo(tmp_path)
    args = (handle_file(str(photo)), "Manual", ["deblur"], "detect.morph", 0.5, "inpaint.telea",
            "deblur.rl", None, None, 0.7, "all", 64, 1)
    with pytest.raises(AppError, match=r"stage 'deblur.rl' failed: out of memory"):
        flaky_client.predict(*args, api_name="/restore")
    report = flaky_client.predict(*args, api_name="/restore")[7]
    assert report["plan"] == ["deblur.rl"] and report["size"] == [512, 512]
