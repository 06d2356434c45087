"""Assembling a ready pipeline from settings made at the edge (CLI or app)."""

from __future__ import annotations

import functools
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from restorer.backends import DEVICE_HELP, check_device_choice
from restorer.errors import RestorerError
from restorer.pipeline import Pipeline
from restorer.planner import AutoMethods
from restorer.registry import default_registry
from restorer.weights import WeightStore, default_manifest_path, load_manifest

__all__ = ["DEVICE_ENV", "ServiceConfig", "build_pipeline", "build_store", "warm_up"]

log = logging.getLogger(__name__)

DEVICE_ENV = "RESTORER_DEVICE"
"""Environment variable that forces where torch stages run (see ``ServiceConfig.device``)."""

FACE_STAGE = "face.gfpgan"
TRIAGE_STAGES = ("triage.net", "triage.heuristic")
"""Triage stages in order of preference: the first whose weights are present is used."""


def _device_from_env() -> str:
    return os.environ.get(DEVICE_ENV, "auto")


@dataclass(frozen=True)
class ServiceConfig:
    """Where weights live, whether the network may be used, and where torch stages run.

    Built once at the edge. ``device`` defaults to the ``RESTORER_DEVICE`` environment
    variable, else "auto" (CUDA when present, else CPU).
    """

    manifest: Path = default_manifest_path()
    weights_dir: Path = default_manifest_path().parent
    cache_dir: Path | None = None
    offline: bool = False
    device: str = field(default_factory=_device_from_env)

    def __post_init__(self) -> None:
        try:
            check_device_choice(self.device)
        except RestorerError:
            raise RestorerError(f"unknown device '{self.device}' (from --device or {DEVICE_ENV}): "
                                f"use {DEVICE_HELP}") from None


def build_store(config: ServiceConfig) -> WeightStore:
    """The weight store described by ``config`` (no file is read or fetched yet)."""
    return WeightStore(load_manifest(config.manifest), bundled_dir=config.weights_dir,
                       cache_dir=config.cache_dir, offline=config.offline)


def build_pipeline(config: ServiceConfig | None = None) -> Pipeline:
    """A pipeline over the default registry; stages whose weights are absent are unavailable.

    Auto mode restores faces when the face stage's weights are present and verified, and
    triages with the trained network when its weights are (else with the heuristic). It
    detects with detect.morph: the learned detectors are better on held-out synthetic damage
    (detect.segnet: Telea on its mask 31.1 dB against 30.5, 0.9 % of clean photos flagged
    against 1.7 %) but worse on the real scratched photos (weights/detector.md), and real
    photos are what the app is for.
    """
    config = ServiceConfig() if config is None else config
    store = build_store(config)
    versions = {e.id: f"{e.repo_id}@{e.revision} sha256:{e.sha256[:12]}" for e in store.manifest}
    def available(weight_id: str) -> bool:
        # A manifest without the id (a custom one) simply lacks that stage.
        return weight_id in store.manifest.ids and store.is_available(weight_id)

    registry = default_registry(weight_check=available,
                                weight_path=functools.partial(store.resolve, download=False),
                                device=config.device)
    missing = registry.missing_weights(FACE_STAGE)
    if missing:
        log.info("Auto mode will not restore faces: weights %s are not available here",
                 ", ".join(missing))
    auto = AutoMethods(face=None if missing else FACE_STAGE)
    triage = next(t for t in TRIAGE_STAGES if registry.is_available(t))
    if triage != TRIAGE_STAGES[0]:
        log.info("triage falls back to %s: %s is unavailable", triage, TRIAGE_STAGES[0])
    return Pipeline(registry, triage_id=triage, auto=auto, weight_versions=versions)


def warm_up(pipeline: Pipeline) -> threading.Thread:
    """Build the triage stage (loading its framework and model) in a background thread.

    The server starts at once; the first request finds the model loaded, or waits for it on
    the registry's lock. A failure is logged; that request then reports it.
    """

    def build() -> None:
        try:
            pipeline.registry.build(pipeline.triage_id)
        except Exception:  # logged here; the request that needs the stage reports it
            log.exception("could not load the triage stage %s", pipeline.triage_id)

    thread = threading.Thread(target=build, name="restorer-warm-up", daemon=True)
    thread.start()
    return thread
