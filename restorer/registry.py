"""The explicit list of stages, and lazy, thread-safe construction of them.

Nothing registers itself on import: ``default_registry`` is one literal list. Listing specs
loads nothing; ``build`` constructs a stage once (loading any model) and keeps it, under a lock
of that stage only (two stages build at once; two requests for one stage wait for one build).

Available means buildable: a stage is available when its weight files are present and verified
and it has not failed to build. A build that fails is remembered with its reason
(:meth:`Registry.unavailable_reason`, :meth:`Registry.status`), so Auto falls back from it
and it is not retried on every request.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Collection, Iterable, Mapping

from restorer.errors import PlanError, StageUnavailableError
from restorer.stages.base import Stage, StageKind, StageSpec
from restorer.stages.colour_ddcolor import DDColorColour
from restorer.stages.deblur import RichardsonLucyDeblur
from restorer.stages.deblur_nafnet import NafnetDeblur
from restorer.stages.detect import MorphologicalDetector
from restorer.stages.detect_learned import DescriptorDetector, SegmentationDetector
from restorer.stages.detect_print import PrintDetector
from restorer.stages.detect_scratch import ScratchDetector
from restorer.stages.face import GfpganFace
from restorer.stages.inpaint import BiharmonicInpainter, NavierStokesInpainter, TeleaInpainter
from restorer.stages.inpaint_exemplar import ExemplarInpainter
from restorer.stages.inpaint_gan import LearnedInpainter
from restorer.stages.inpaint_lama import LamaInpainter
from restorer.stages.tone_restore import ToneRestore
from restorer.fade import faded_label
from restorer.stages.print_labels import print_labels
from restorer.stages.triage import HeuristicTriage
from restorer.stages.triage_net import NetTriage

if TYPE_CHECKING:
    from restorer.weights import WeightEntry

__all__ = ["StageEntry", "StageStatus", "Registry", "default_registry"]

log = logging.getLogger(__name__)

#: Tells whether a manifest weight id is present and verified locally (never downloads).
WeightCheck = Callable[[str], bool]
#: Why a manifest weight id is not usable here ("missing file", "hash mismatch ..."), None if it is.
WeightProblem = Callable[[str], "str | None"]
#: The verified local file of a manifest weight id (never downloads).
WeightPath = Callable[[str], Path]
#: The manifest entry of a weight id (its revision and sha256 go into published stages' reports).
WeightEntryOf = Callable[[str], "WeightEntry"]


@dataclass(frozen=True)
class StageStatus:
    """One stage as ``python -m restorer stages`` and the page show it: whether it can run
    here, whether it is built, and why not (None when it is available)."""

    id: str
    kind: str
    available: bool
    built: bool
    reason: str | None = None


@dataclass(frozen=True)
class StageEntry:
    """How to build one stage: its spec and a factory called at most once."""

    spec: StageSpec
    factory: Callable[[], Stage]


class Registry:
    """Stages by id. Duplicate ids raise; adding is all-or-nothing."""

    def __init__(self, entries: Iterable[StageEntry], *, weight_check: WeightCheck | None = None,
                 weight_problem: WeightProblem | None = None):
        by_id: dict[str, StageEntry] = {}
        for entry in entries:
            if entry.spec.id in by_id:
                raise ValueError(f"stage id '{entry.spec.id}' is registered twice")
            by_id[entry.spec.id] = entry
        self._entries = by_id
        self._weight_check = weight_check
        self._weight_problem = weight_problem
        self._built: dict[str, Stage] = {}
        self._failed: dict[str, str] = {}
        self._locks = {stage_id: threading.Lock() for stage_id in by_id}

    def specs(self, kind: StageKind | None = None) -> list[StageSpec]:
        """All specs (of one ``kind``), in registration order."""
        return [e.spec for e in self._entries.values() if kind is None or e.spec.kind == kind]

    def spec(self, stage_id: str) -> StageSpec:
        """The spec of ``stage_id``; PlanError naming the known ids if there is none."""
        entry = self._entries.get(stage_id)
        if entry is None:
            raise PlanError(
                f"unknown stage '{stage_id}'; known stages: {', '.join(self._entries)}"
            )
        return entry.spec

    def missing_weights(self, stage_id: str) -> list[str]:
        """Manifest ids the stage needs that are not present and verified locally."""
        spec = self.spec(stage_id)
        if not spec.weights:
            return []
        if self._weight_check is None:
            return list(spec.weights)
        return [w for w in spec.weights if not self._weight_check(w)]

    def is_available(self, stage_id: str) -> bool:
        """True when the stage can be built now without any download and has not failed to."""
        return stage_id in self._built or (stage_id not in self._failed
                                           and not self.missing_weights(stage_id))

    def unavailable_reason(self, stage_id: str) -> str | None:
        """Why the stage cannot run here (missing or corrupt weight files, a failed build with
        its error), None when it can. Never builds and never downloads."""
        self.spec(stage_id)
        if stage_id in self._built:
            return None
        if stage_id in self._failed:
            return self._failed[stage_id]
        missing = self.missing_weights(stage_id)
        if not missing:
            return None
        problems = [f"{w}: {self._weight_problem(w) if self._weight_problem else 'missing file'}"
                    for w in missing]
        return (f"weights not usable here ({'; '.join(problems)}); fetch them with "
                f"'python -m restorer weights pull {' '.join(missing)}'")

    def status(self) -> list[StageStatus]:
        """Every stage, in registration order, with whether it can run here and why not."""
        out = []
        for stage_id, entry in self._entries.items():
            reason = self.unavailable_reason(stage_id)
            out.append(StageStatus(stage_id, entry.spec.kind.value, reason is None,
                                   stage_id in self._built, reason))
        return out

    def resolve(self, stage_id: str, fallbacks: Mapping[str, str | None],
                keep: Collection[str] = (), notes: list[str] | None = None) -> str | None:
        """The stage to run for ``stage_id``: itself when it builds, else its entry in
        ``fallbacks`` (in turn; None: the step is skipped, returned as None). A stage in
        ``keep`` (named by the caller) or without a fallback raises its build error. Each
        fallback taken is appended to ``notes`` once, as a sentence with the reason."""
        current = stage_id
        while True:
            try:
                self.build(current)
                return current
            except StageUnavailableError as error:
                if current in keep or current not in fallbacks:
                    raise
                reason = self.unavailable_reason(current) or str(error)
                instead = fallbacks[current]
                note = (f"{current} could not be used ({reason}): "
                        + (f"{instead} ran instead" if instead else "skipped"))
                if notes is not None and note not in notes:
                    log.warning("%s", note)
                    notes.append(note)
                if instead is None:
                    return None
                current = instead

    def build(self, stage_id: str) -> Stage:
        """The stage instance for ``stage_id``, constructed on first use and kept.

        Raises StageUnavailableError when its weights are not usable here, or when building
        it fails (the reason is kept: a later call raises it again without rebuilding)."""
        self.spec(stage_id)
        with self._locks[stage_id]:
            stage = self._built.get(stage_id)
            if stage is not None:
                return stage
            reason = self.unavailable_reason(stage_id)
            if reason is not None:
                raise StageUnavailableError(f"stage '{stage_id}' is unavailable: {reason}")
            try:
                stage = self._entries[stage_id].factory()
            except MemoryError:
                raise  # not a property of the stage: the next request may have the memory
            except Exception as error:  # any failure to build: kept with its reason
                first = (str(error).strip().splitlines() or [type(error).__name__])[0]
                self._failed[stage_id] = f"failed to build ({type(error).__name__}: {first})"
                log.warning("stage %s could not be built: %s", stage_id, first)
                log.debug("stage %s build failure", stage_id, exc_info=True)
                raise StageUnavailableError(
                    f"stage '{stage_id}' is unavailable: {self._failed[stage_id]}") from error
            self._built[stage_id] = stage
            return stage


def default_registry(
    *,
    weight_check: WeightCheck | None = None,
    weight_path: WeightPath | None = None,
    weight_entry: WeightEntryOf | None = None,
    weight_problem: WeightProblem | None = None,
    device: str = "auto",
    precision: str = "auto",
) -> Registry:
    """The stages restorer ships, as one explicit list.

    Stages with weights are built from ``weight_path`` files, on ``device`` ("auto", "cpu",
    "mps", "cuda" or "cuda:N") in ``precision`` (restorer.runtime.PRECISIONS) when they run
    on torch. ``weight_entry`` gives the published stages their manifest entries (revision and
    sha256 for the report; None: not recorded); ``weight_problem`` says why a weight file is
    not usable (for :meth:`Registry.unavailable_reason`).
    """
    run_on = {"device": device, "precision": precision}

    def entry_of(weight_id: str) -> WeightEntry | None:
        return None if weight_entry is None else weight_entry(weight_id)

    def weighted(spec: StageSpec, build: Callable[[WeightPath], Stage]) -> Callable[[], Stage]:
        """Factory of a stage that loads weight files (resolved by ``weight_path``)."""

        def factory() -> Stage:
            if weight_path is None:
                raise StageUnavailableError(f"stage '{spec.id}' needs weight files: build the "
                                            "pipeline with restorer.service.build_pipeline")
            return build(weight_path)

        return factory

    entries = [
        StageEntry(HeuristicTriage.spec, lambda: HeuristicTriage(fade=faded_label, damage=print_labels)),
        StageEntry(NetTriage.spec, weighted(
            NetTriage.spec, lambda path: NetTriage(path, fade=faded_label,
                                                  damage=print_labels, **run_on))),
        StageEntry(MorphologicalDetector.spec, MorphologicalDetector),
        StageEntry(SegmentationDetector.spec, weighted(
            SegmentationDetector.spec,
            lambda path: SegmentationDetector(path(SegmentationDetector.spec.weights[0]), **run_on))),
        StageEntry(PrintDetector.spec, weighted(
            PrintDetector.spec,
            lambda path: PrintDetector(path(PrintDetector.spec.weights[0]), **run_on))),
        StageEntry(DescriptorDetector.spec, weighted(
            DescriptorDetector.spec,
            lambda path: DescriptorDetector(path(DescriptorDetector.spec.weights[0]), **run_on))),
        StageEntry(ScratchDetector.spec, weighted(ScratchDetector.spec, lambda path: ScratchDetector(
            path("bopbtl_scratch"), path("detect_segnet"), entry=entry_of("bopbtl_scratch"), **run_on))),
        StageEntry(NavierStokesInpainter.spec, NavierStokesInpainter),
        StageEntry(TeleaInpainter.spec, TeleaInpainter),
        StageEntry(BiharmonicInpainter.spec, BiharmonicInpainter),
        StageEntry(ExemplarInpainter.spec, ExemplarInpainter),
        StageEntry(LearnedInpainter.spec, weighted(
            LearnedInpainter.spec,
            lambda path: LearnedInpainter(path(LearnedInpainter.spec.weights[0]), **run_on))),
        StageEntry(LamaInpainter.spec, weighted(LamaInpainter.spec, lambda path: LamaInpainter(
            path("big_lama"), entry=entry_of("big_lama"), **run_on))),
        StageEntry(ToneRestore.spec, ToneRestore),
        StageEntry(RichardsonLucyDeblur.spec, RichardsonLucyDeblur),
        StageEntry(NafnetDeblur.spec, weighted(NafnetDeblur.spec, lambda path: NafnetDeblur(
            path("nafnet_gopro_w64"), entry=entry_of("nafnet_gopro_w64"), **run_on))),
        StageEntry(GfpganFace.spec,
                   weighted(GfpganFace.spec, lambda path: GfpganFace(path, **run_on))),
        StageEntry(DDColorColour.spec, weighted(DDColorColour.spec, lambda path: DDColorColour(
            path("ddcolor_paper_tiny"), entry=entry_of("ddcolor_paper_tiny"), **run_on))),
    ]
    return Registry(entries, weight_check=weight_check, weight_problem=weight_problem)
