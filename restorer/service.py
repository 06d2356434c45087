"""Assembling a ready pipeline from settings made at the edge (CLI or app)."""

from __future__ import annotations

import functools
import logging
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from restorer.backends import DEVICE_HELP, check_device_choice, resolve_device
from restorer.errors import RestorerError
from restorer.pipeline import DEFAULT_TIME_BUDGET, Pipeline
from restorer.planner import LEARNED, AutoMethods
from restorer.registry import Registry, default_registry
from restorer.stage_ids import (COLOUR_DDCOLOR, DETECT_MORPH, DETECT_PRINT, DETECT_SEGNET,
                                FACE_GFPGAN, INPAINT_TELEA, TONE_RESTORE, TRIAGE_HEURISTIC,
                                TRIAGE_NET)
from restorer.weights import WeightStore, default_manifest_path, load_manifest

__all__ = ["DEVICE_ENV", "PixelGate", "ServiceConfig", "auto_stage_ids", "build_pipeline", "build_store",
           "warm_up"]

log = logging.getLogger(__name__)

DEVICE_ENV = "RESTORER_DEVICE"
"""Environment variable that forces where torch stages run (see ``ServiceConfig.device``)."""

FACE_STAGE = FACE_GFPGAN
TONE_STAGE = TONE_RESTORE
"""Auto's tone stage, when triage finds a grey or toned print faded (restorer.fade.faded_label)."""
COLOUR_STAGE = COLOUR_DDCOLOR
"""Colourisation when asked for (never by default), when its weights are present."""
TRIAGE_STAGES = (TRIAGE_NET, TRIAGE_HEURISTIC)
"""Triage stages in order of preference: the first whose weights are present is used."""
DETECT_STAGES = (DETECT_PRINT, DETECT_SEGNET, DETECT_MORPH)
"""Auto mode's detectors in order of preference: the first whose weights are present is used.
On each photo Auto then prefers the published stages of planner.LEARNED (detect.scratch,
inpaint.lama, deblur.nafnet) where their files are present now and they fit the time budget."""


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
    #: Seconds Auto's learned stages may take per photo (None: no budget).
    time_budget: float | None = DEFAULT_TIME_BUDGET

    def __post_init__(self) -> None:
        try:
            check_device_choice(self.device)
        except RestorerError:
            raise RestorerError(f"unknown device '{self.device}' (from --device or {DEVICE_ENV}): "
                                f"use {DEVICE_HELP}") from None
        if self.time_budget is not None and not self.time_budget >= 0:
            raise RestorerError(f"the time budget must be 0 or more seconds, not "
                                f"{self.time_budget} (--time-budget)")


def build_store(config: ServiceConfig) -> WeightStore:
    """The weight store described by ``config`` (no file is read or fetched yet)."""
    return WeightStore(load_manifest(config.manifest), bundled_dir=config.weights_dir,
                       cache_dir=config.cache_dir, offline=config.offline)


def build_pipeline(config: ServiceConfig | None = None) -> Pipeline:
    """A pipeline over the default registry; stages whose weights are absent are unavailable.

    Auto mode restores faces when the face stage's weights are present and verified, triages
    with the trained network when its weights are (else with the heuristic), and detects with
    the segmentation network when its weights are (else morphologically): it finds more of
    the defects and flags less of the photo, on held-out synthetic damage and on the real
    scratched photos (weights/detector.md). The triage judges cracks from that detector's mask.
    """
    config = ServiceConfig() if config is None else config
    store = build_store(config)
    versions = {e.id: f"{e.repo_id}@{e.revision} sha256:{(e.sha256 or 'unrecorded')[:12]}" for e in store.manifest}
    def available(weight_id: str) -> bool:
        # A manifest without the id (a custom one) simply lacks that stage.
        return weight_id in store.manifest.ids and store.is_available(weight_id)

    registry = default_registry(weight_check=available,
                                weight_path=functools.partial(store.resolve, download=False),
                                weight_entry=store.manifest.get, device=config.device)
    missing = registry.missing_weights(FACE_STAGE)
    if missing:
        log.info("Auto mode will not restore faces: weights %s are not available here",
                 ", ".join(missing))
    auto = AutoMethods(detect=_first_available(registry, DETECT_STAGES),
                       inpaint=INPAINT_TELEA, large_inpaint=LEARNED[INPAINT_TELEA],
                       face=None if missing else FACE_STAGE, learned=LEARNED, tone=TONE_STAGE,
                       colour=COLOUR_STAGE if registry.is_available(COLOUR_STAGE) else None)
    triage = _first_available(registry, TRIAGE_STAGES)
    return Pipeline(registry, triage_id=triage, auto=auto, weight_versions=versions,
                    time_budget=config.time_budget,
                    device=lambda: str(resolve_device(config.device).type))


def _first_available(registry: Registry, preference: tuple[str, ...]) -> str:
    """The first stage of ``preference`` that ``registry`` can build (the last needs no
    weights); a fallback is logged."""
    chosen = next(s for s in preference if registry.is_available(s))
    if chosen != preference[0]:
        log.info("Auto mode uses %s: %s is unavailable", chosen, preference[0])
    return chosen


def auto_stage_ids(pipeline: Pipeline) -> list[str]:
    """The stages Auto mode may run (triage first), each once."""
    return pipeline.auto_stage_ids()


def warm_up(pipeline: Pipeline) -> threading.Thread:
    """Build Auto's stages (loading frameworks and models) in a background thread.

    The server starts at once; the first request finds the models loaded, or waits for them
    on the registry's lock. Loading before any photo is in memory also keeps the loading
    peak (a checkpoint and its network side by side) apart from a request's. A failure is
    logged; the request that needs the stage then reports it.
    """

    def build() -> None:
        for stage_id in auto_stage_ids(pipeline):
            if not pipeline.registry.is_available(stage_id):
                continue  # a published file not here (yet): Auto falls back, nothing to load
            try:
                pipeline.registry.build(stage_id)
            except Exception:  # logged here; the request that needs the stage reports it
                log.exception("could not load the stage %s", stage_id)

    thread = threading.Thread(target=build, name="restorer-warm-up", daemon=True)
    thread.start()
    return thread


class PixelGate:
    """Bounds the pixels being restored at once, so memory stays bounded under load.

    A run holds its photo's pixel count while it runs; one that would take the total over
    ``budget`` waits until enough is released. A photo larger than the whole budget runs when
    nothing else does. Peak memory then grows with ``budget``, not with the number of users
    times the largest photo allowed.
    """

    def __init__(self, budget: int) -> None:
        if budget <= 0:
            raise ValueError("the pixel budget must be positive")
        self.budget = budget
        self._in_use = 0
        self._free = threading.Condition()

    @property
    def in_use(self) -> int:
        """Pixels held by running requests."""
        return self._in_use

    @contextmanager
    def admit(self, pixels: int) -> Iterator[None]:
        """Hold ``pixels`` of the budget for the duration of the ``with`` block."""
        with self._free:
            self._free.wait_for(lambda: self._in_use == 0
                                or self._in_use + pixels <= self.budget)
            self._in_use += pixels
        try:
            yield
        finally:
            with self._free:
                self._in_use -= pixels
                self._free.notify_all()
