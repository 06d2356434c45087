"""Assembling a ready pipeline from settings made at the edge (CLI or app)."""

from __future__ import annotations

import functools
import logging
import threading
from contextlib import contextmanager
from typing import Iterator

from restorer.backends import limit_threads, resolve_device
from restorer.errors import (StageUnavailableError, WeightsError, WeightsIntegrityError,
                             WeightsMissingError)
from restorer.pipeline import Pipeline
from restorer.planner import LEARNED, AutoMethods
from restorer.registry import Registry, default_registry
from restorer.runtime_device import check_precision
from restorer.settings import DEVICE_ENV, Settings
from restorer.stage_ids import (COLOUR_DDCOLOR, DETECT_MORPH, DETECT_PRINT, DETECT_SEGNET,
                                FACE_GFPGAN, INPAINT_TELEA, TONE_RESTORE, TRIAGE_HEURISTIC,
                                TRIAGE_NET)
from restorer.weights import WeightStore, build_store

__all__ = ["AUTO_FALLBACKS", "DEVICE_ENV", "PixelGate", "ServiceConfig", "Settings",
           "auto_stage_ids", "build_pipeline", "build_store", "warm_up", "weight_problem"]

log = logging.getLogger(__name__)

ServiceConfig = Settings
"""The former name of :class:`restorer.settings.Settings`, kept for callers."""

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
AUTO_FALLBACKS: dict[str, str | None] = {TRIAGE_NET: TRIAGE_HEURISTIC,
                                         DETECT_PRINT: DETECT_SEGNET,
                                         DETECT_SEGNET: DETECT_MORPH, FACE_STAGE: None}
"""What Auto runs instead of a stage whose files are here but that fails to build (None: the
step is skipped with a note); the published stages fall back as planner.LEARNED says."""


def build_pipeline(config: Settings | None = None) -> Pipeline:
    """A pipeline over the default registry; stages whose weights are absent are unavailable.

    Auto mode restores faces when the face stage's weights are present and verified, triages
    with the trained network when its weights are (else with the heuristic), and detects with
    the segmentation network when its weights are (else morphologically): it finds more of
    the defects and flags less of the photo, on held-out synthetic damage and on the real
    scratched photos (weights/detector.md). The triage judges cracks from that detector's mask.
    """
    config = Settings() if config is None else config
    if config.precision in ("fp16", "bf16"):  # half precision needs a GPU here: refused first
        check_precision(config.precision, str(resolve_device(config.device).type))
    if config.threads is not None:
        limit_threads(config.threads)
    store = build_store(config)
    versions = {e.id: f"{e.repo_id}@{e.revision} sha256:{(e.sha256 or 'unrecorded')[:12]}" for e in store.manifest}
    def available(weight_id: str) -> bool:
        # A manifest without the id (a custom one) simply lacks that stage.
        return weight_id in store.manifest.ids and store.is_available(weight_id)

    registry = default_registry(weight_check=available,
                                weight_path=functools.partial(store.resolve, download=False),
                                weight_entry=store.manifest.get,
                                weight_problem=functools.partial(weight_problem, store),
                                device=config.device, precision=config.precision)
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
                    device=lambda: str(resolve_device(config.device).type),
                    fallbacks=AUTO_FALLBACKS)


def weight_problem(store: WeightStore, weight_id: str) -> str | None:
    """Why ``weight_id`` is not usable from ``store`` ("not in the manifest", "missing file",
    "hash or size mismatch", ...), None when it is present and verified. Never downloads."""
    if weight_id not in store.manifest.ids:
        return "not in the manifest"
    if not store.manifest.get(weight_id).is_hashed:
        return "the manifest records no sha256 for it yet ('python -m restorer weights lock')"
    try:
        store.resolve(weight_id, download=False)
    except WeightsMissingError:
        return "missing file"
    except WeightsIntegrityError:
        return "hash or size mismatch"
    except WeightsError as error:
        return str(error).splitlines()[0]
    return None


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
            except StageUnavailableError as error:  # kept by the registry; Auto falls back
                log.warning("%s", error)
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
