"""Manifest fields of published models (licence URL, architecture, hashes recorded by `weights
lock`) and the pure cost/budget rules Auto uses for the learned stages (restorer.costs).

Everything runs against the local Hub of tests/hub_server.py; nothing reaches the internet.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest

from restorer import costs
from restorer.errors import WeightsError
from restorer.weights import Manifest, WeightEntry, WeightStatus, WeightStore, load_manifest

try:
    from tests.hub_server import FakeHub
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from hub_server import FakeHub

REPO = "org/published"


@pytest.fixture(autouse=True)
def _hub_online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as server:
        yield server


def published(weight_id: str, data: bytes | None, **fields: Any) -> dict[str, Any]:
    """A manifest JSON object of a third-party file (``data`` None: hash not recorded yet)."""
    out: dict[str, Any] = {
        "id": weight_id, "repo_id": REPO, "filename": f"{weight_id}.pt", "local_name": f"{weight_id}.pt",
        "revision": "main", "sha256": None if data is None else hashlib.sha256(data).hexdigest(),
        "size": None if data is None else len(data), "format": "pt", "licence": "Apache-2.0",
        "stage": "inpaint.lama", "input_contract": None, "bundled": False, "description": "stand-in",
        "licence_url": "https://example.org/LICENSE", "architecture": "LaMa",
    }
    out.update(fields)
    return out


def run_cli(*argv: str) -> int:
    """``python -m restorer ARGV``'s exit code."""
    from restorer.cli import main

    return main(list(argv))


# --------------------------------------------------------------------------------------- manifest
def test_new_fields_round_trip_and_are_checked() -> None:
    data = published("m", b"x" * 64)
    entry = WeightEntry.from_dict(data)
    assert (entry.licence_url, entry.architecture, entry.format) == ("https://example.org/LICENSE", "LaMa", "pt")
    assert entry.to_dict() == data
    assert "licence_url" not in WeightEntry.from_dict({k: v for k, v in data.items() if k != "licence_url"}).to_dict()
    with pytest.raises(WeightsError, match="'licence_url' must be an https:// URL"):
        WeightEntry.from_dict(published("m", b"x", licence_url="http://insecure"))
    with pytest.raises(WeightsError, match="'architecture' must be a non-empty string"):
        WeightEntry.from_dict(published("m", b"x", architecture=" "))
    with pytest.raises(WeightsError, match="may be null only together"):
        WeightEntry.from_dict(published("m", b"x", size=None))
    with pytest.raises(WeightsError, match="may be null only together"):
        WeightEntry.from_dict(published("m", None, bundled=True))


def test_unhashed_entry_is_never_used_until_lock_records_the_hubs_hash(
    tmp_path: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    data = b"published model bytes" * 100
    commit = hub.commit(REPO, {"m.pt": data})
    path = tmp_path / "manifest.json"
    Manifest((WeightEntry.from_dict(published("m", None)),)).save(path)
    store = WeightStore(load_manifest(path), endpoint=hub.endpoint, cache_dir=tmp_path / "cache",
                        bundled_dir=tmp_path / "bundled")
    assert store.status("m") is WeightStatus.UNHASHED
    assert not store.is_available("m")
    with pytest.raises(WeightsError, match="records no sha256 .*weights lock"):
        store.resolve("m")
    assert hub.count("GET", contains="m.pt") == 0  # an unhashed file is never downloaded

    common = ["--manifest", str(path), "--cache-dir", str(tmp_path / "cache"), "--endpoint", hub.endpoint]
    assert run_cli("weights", "list", *common) == 0
    row = capsys.readouterr().out.splitlines()[1]
    assert row.split()[:3] == ["m", "unhashed", "?"] and "unlocked: run `weights lock`" in row

    assert run_cli("weights", "lock", *common[:2], "--endpoint", hub.endpoint) == 0
    assert "check it against a second source" in capsys.readouterr().out
    locked = load_manifest(path).get("m")
    assert (locked.revision, locked.sha256, locked.size) == (commit, hashlib.sha256(data).hexdigest(), len(data))
    store = WeightStore(load_manifest(path), endpoint=hub.endpoint, cache_dir=tmp_path / "cache",
                        bundled_dir=tmp_path / "bundled")
    assert store.resolve("m").read_bytes() == data
    assert run_cli("weights", "list", *common) == 0
    assert "unlocked" not in capsys.readouterr().out


def test_real_manifest_declares_licence_url_and_architecture_for_published_models() -> None:
    manifest = load_manifest(Path(__file__).resolve().parents[1] / "weights" / "manifest.json")
    for entry in manifest:
        if entry.stage in costs.COSTS:
            assert entry.licence_url and entry.architecture, entry.id


# --------------------------------------------------------------------------------------- costs
def _all(stage: str) -> bool:
    return True


def test_fit_auto_uses_learned_stages_within_the_budget() -> None:
    fit = costs.fit_auto(("detect.scratch", "inpaint.lama"), available=_all, megapixels=0.25,
                         device="cpu", budget_s=20.0)
    assert fit.stages == ("detect.scratch", "inpaint.lama") and not fit.skipped_for_time
    # LaMa gets what is left of the budget after the detector's expected time.
    expected = 20.0 - costs.expected_seconds("detect.scratch", 0.25, "cpu")
    assert fit.options["inpaint.lama"]["time_budget"] == pytest.approx(expected, abs=0.1)


def test_fit_auto_falls_back_when_weights_are_missing_and_says_so() -> None:
    fit = costs.fit_auto(("inpaint.lama", "deblur.nafnet"), available=lambda s: s != "inpaint.lama",
                         megapixels=0.1, device="cpu", budget_s=None)
    assert fit.stages == ("inpaint.telea", "deblur.nafnet")
    assert any("inpaint.telea used instead of inpaint.lama" in n and "weights pull" in n for n in fit.notes)
    # A planned classical fill whose learned stage is absent is noted too.
    fit = costs.fit_auto(("inpaint.telea",), available=lambda s: False, megapixels=1.0, device="cpu",
                         budget_s=20.0)
    assert fit.stages == ("inpaint.telea",) and "LaMa inpainting is unavailable" in fit.notes[0]


def test_fit_auto_skips_for_time_on_the_cpu_and_says_what_a_gpu_would_add() -> None:
    fit = costs.fit_auto(("detect.scratch", "inpaint.lama", "deblur.nafnet"), available=_all,
                         megapixels=1.0, device="cpu", budget_s=20.0)
    # 1 MP: NAFNet (about 32 s/MP) does not fit 20 s; the detector (about 24 s/MP) does not either.
    assert "deblur.nafnet" in fit.skipped_for_time and "deblur.rl" in fit.stages
    assert any("to stay within the 20 s budget" in n and "a GPU would run it" in n for n in fit.notes)
    unlimited = costs.fit_auto(("deblur.nafnet",), available=_all, megapixels=1.0, device="cpu", budget_s=None)
    assert unlimited.stages == ("deblur.nafnet",)


def test_expected_time_of_a_hand_picked_stage() -> None:
    text = costs.describe_expected("deblur.nafnet", 2.0, "cpu")
    assert text is not None and f"about {2 * costs.COSTS['deblur.nafnet'].cpu_s_per_mp:.0f} s on this CPU" in text
    assert "not measured" in (costs.describe_expected("deblur.nafnet", 2.0, "cuda") or "")
    assert costs.describe_expected("inpaint.telea", 2.0, "cpu") is None
    # The detector analyses at most 1 MP: a 24 MP scan costs what 1 MP does.
    assert costs.expected_seconds("detect.scratch", 24.0, "cpu") == costs.expected_seconds("detect.scratch", 1.0, "cpu")


def test_time_budget_flag_reaches_the_report_and_a_negative_one_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import numpy as np

    from restorer import synth
    from restorer.cli import main
    from restorer.imaging import save_image

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    y, x = np.mgrid[0:96, 0:128].astype(np.float32)
    clean = np.stack([x / 128, y / 96, 0.5 + 0.3 * np.sin(x / 9)], axis=-1).astype(np.float32)
    photo = save_image(synth.damage(clean, np.random.default_rng(0)).image, tmp_path / "p.png")
    report = tmp_path / "r.json"
    assert main(["restore", str(photo), "-o", str(tmp_path / "o.png"), "--report", str(report),
                 "--time-budget", "7.5"]) == 0
    data = json.loads(report.read_text())
    assert data["time_budget_s"] == 7.5 and data["device"] in (None, "cpu", "cuda", "mps")
    if "inpaint.telea" in data["plan"]:  # no big-lama.pt here: the report says so
        assert any("inpaint.lama" in note for note in data["auto_notes"])
    capsys.readouterr()
    assert main(["restore", str(photo), "-o", str(tmp_path / "n.png"), "--time-budget", "-1"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "time budget must be 0 or more" in err[0]
    assert not (tmp_path / "n.png").exists()
