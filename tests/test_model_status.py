"""The Models panel's states and the background pull, offline against tests/hub_server.py.

A downloader that stops half-way (its partial file in the cache, as huggingface_hub leaves
it) shows "downloading 40 %"; a request made then is served by Auto's fallback; once the
pull has verified the file, the next request uses the learned stage.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import huggingface_hub
import huggingface_hub.constants
import numpy as np
import pytest

from restorer import synth
from restorer.model_status import ModelState, ModelStatus, default_ids
from restorer.pipeline import Pipeline
from restorer.planner import LEARNED, AutoMethods
from restorer.registry import default_registry
from restorer.weights import Manifest, WeightStore, default_manifest_path, load_manifest

try:
    from tests.hub_server import FakeHub
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from hub_server import FakeHub

REPO = "org/big-lama"
PAYLOAD = b"stand-in bytes of big-lama.pt " * 4000  # 120 kB; only its presence matters here


@pytest.fixture(autouse=True)
def _hub_online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as server:
        yield server


def manifest(tmp_path: Path, **lama: Any) -> Manifest:
    """The real manifest with big_lama served from the local Hub as PAYLOAD."""
    real = load_manifest(default_manifest_path())
    standin = dataclasses.replace(real.get("big_lama"), repo_id=REPO, revision="main",
                                  sha256=hashlib.sha256(PAYLOAD).hexdigest(), size=len(PAYLOAD),
                                  **lama)
    return Manifest(tuple(standin if e.id == "big_lama" else e for e in real))


class HalfwayDownloader:
    """hf_hub_download that first leaves 40 % of the file as the Hub client's partial file and
    waits for ``go``, as a slow download would."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.started = threading.Event()

    def __call__(self, repo_id: str, filename: str, **kwargs: Any) -> str:
        blobs = Path(kwargs["cache_dir"]) / f"models--{repo_id.replace('/', '--')}" / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        partial = blobs / f"{hashlib.sha256(PAYLOAD).hexdigest()}.0a1b2c3d.incomplete"
        partial.write_bytes(PAYLOAD[: len(PAYLOAD) * 2 // 5])
        self.started.set()
        assert self.go.wait(60)
        partial.unlink()
        return huggingface_hub.hf_hub_download(repo_id, filename, **kwargs)


def store_for(tmp_path: Path, hub: FakeHub, **kwargs: Any) -> WeightStore:
    return WeightStore(manifest(tmp_path), bundled_dir=default_manifest_path().parent,
                       cache_dir=tmp_path / "cache", endpoint=hub.endpoint, **kwargs)


def test_panel_states_present_unavailable_missing_and_offline(tmp_path: Path, hub: FakeHub) -> None:
    status = ModelStatus(store_for(tmp_path, hub), ["big_lama"])
    rows = {r.id: r for r in status.rows()}
    assert rows["detect_segnet"].state == ModelState.PRESENT          # bundled
    assert rows["big_lama"].state == ModelState.MISSING
    assert "python -m restorer weights pull big_lama" in rows["big_lama"].reason
    assert rows["big_lama"].licence == "Apache-2.0" and rows["big_lama"].size_mb == 0.1
    assert rows["bopbtl_scratch"].state == ModelState.UNAVAILABLE     # no sha256 recorded
    assert "weights lock" in rows["bopbtl_scratch"].status
    offline = ModelStatus(store_for(tmp_path, hub, offline=True), ["big_lama"])
    assert offline.start_pull() is None
    assert offline.row("big_lama").state == ModelState.UNAVAILABLE
    assert "offline" in offline.row("big_lama").reason
    assert hub.count("GET") == 0


def test_default_ids_are_the_published_stages_files() -> None:
    registry = default_registry()
    ids = default_ids(((s.id, s.weights) for s in registry.specs()),
                      load_manifest(default_manifest_path()).ids)
    assert ids[:2] == ["big_lama", "nafnet_gopro_w64"]
    assert {"bopbtl_scratch", "gfpgan_v1_4", "detect_segnet"} <= set(ids)
    assert "triage_net" not in ids


def test_request_during_a_download_is_served_by_the_fallback(
    tmp_path: Path, hub: FakeHub, caplog: pytest.LogCaptureFixture
) -> None:
    hub.commit(REPO, {"big-lama.pt": PAYLOAD})
    downloader = HalfwayDownloader()
    store = store_for(tmp_path, hub, downloader=downloader)
    status = ModelStatus(store, ["big_lama"], log_every_s=0.05)

    def available(weight_id: str) -> bool:
        return weight_id in store.manifest.ids and store.is_available(weight_id)

    registry = default_registry(weight_check=available, device="cpu")
    pipeline = Pipeline(registry, triage_id="triage.heuristic", device=lambda: "cpu",
                        auto=AutoMethods(detect="detect.morph", learned=LEARNED))
    image = synth.damage(np.full((96, 128, 3), 0.5, np.float32), np.random.default_rng(0)).image
    mask = np.zeros(image.shape[:2], bool)
    mask[30:60, 40:90] = True

    with caplog.at_level(logging.INFO, logger="restorer.model_status"):
        thread = status.start_pull()
        assert thread is not None and downloader.started.wait(30)
        row = status.row("big_lama")
        assert row.state == ModelState.DOWNLOADING and row.percent == pytest.approx(40.0, abs=0.1)
        assert row.status == "downloading 40 %"
        during = pipeline.run(image, mask=mask)                 # not waiting on the download
        assert "inpaint.telea" in during.plan.ids and "inpaint.lama" not in during.plan.ids
        assert any("inpaint.telea used instead of inpaint.lama" in n for n in during.auto_notes)
        for _ in range(400):  # the progress line of the pull thread, every 0.05 s
            if any("40 %" in r.getMessage() for r in caplog.records):
                break
            time.sleep(0.05)
        downloader.go.set()
        status.join(30)
    assert status.row("big_lama").state == ModelState.PRESENT
    assert registry.is_available("inpaint.lama")
    lines = [r.getMessage() for r in caplog.records]
    assert any("pulling big-lama.pt" in line for line in lines)
    assert any("40 %" in line for line in lines)
    assert any("verified, ready" in line for line in lines)


def test_a_failed_pull_is_shown_with_its_reason_and_never_raises(tmp_path: Path, hub: FakeHub) -> None:
    status = ModelStatus(store_for(tmp_path, hub), ["big_lama"])   # the Hub lacks the repo
    thread = status.start_pull()
    assert thread is not None
    status.join(30)
    row = status.row("big_lama")
    assert row.state == ModelState.FAILED and "big_lama" in row.reason
    assert status.start_pull() is not None  # still missing: a later start tries again
    status.join(30)
