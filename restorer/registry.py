"""The explicit list of stages, and lazy, thread-safe construction of them.

Nothing registers itself on import: ``default_registry`` is one literal list. Listing specs
loads nothing; ``build`` constructs a stage once (loading any model) and keeps it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

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

__all__ = ["StageEntry", "Registry", "default_registry"]

#: Tells whether a manifest weight id is present and verified locally (never downloads).
WeightCheck = Callable[[str], bool]
#: The verified local file of a manifest weight id (never downloads).
WeightPath = Callable[[str], Path]
#: The manifest entry of a weight id (its revision and sha256 go into published stages' reports).
WeightEntryOf = Callable[[str], "WeightEntry"]


@dataclass(frozen=True)
class StageEntry:
    """How to build one stage: its spec and a factory called at most once."""

    spec: StageSpec
    factory: Callable[[], Stage]


class Registry:
    """Stages by id. Duplicate ids raise; adding is all-or-nothing."""

    def __init__(self, entries: Iterable[StageEntry], *, weight_check: WeightCheck | None = None):
        by_id: dict[str, StageEntry] = {}
        for entry in entries:
            if entry.spec.id in by_id:
                raise ValueError(f"stage id '{entry.spec.id}' is registered twice")
            by_id[entry.spec.id] = entry
        self._entries = by_id
        self._weight_check = weight_check
        self._built: dict[str, Stage] = {}
        self._lock = threading.Lock()

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
        """True when the stage can be built now without any download."""
        return not self.missing_weights(stage_id)

    def build(self, stage_id: str) -> Stage:
        """The stage instance for ``stage_id``, constructed on first use and kept."""
        with self._lock:
            stage = self._built.get(stage_id)
            if stage is not None:
                return stage
            missing = self.missing_weights(stage_id)
            if missing:
                raise StageUnavailableError(
                    f"stage '{stage_id}' needs weights that are not available here: "
                    f"{', '.join(missing)}; fetch them with "
                    f"'python -m restorer weights pull {' '.join(missing)}'"
                )
            stage = self._entries[stage_id].factory()
            self._built[stage_id] = stage
            return stage


def default_registry(
    *,
    weight_check: WeightCheck | None = None,
    weight_path: WeightPath | None = None,
    weight_entry: WeightEntryOf | None = None,
    device: str = "auto",
) -> Registry:
    """The stages restorer ships, as one explicit list.

    Stages with weights are built from ``weight_path`` files, on ``device`` ("auto", "cpu",
    "cuda" or "cuda:N") when they run on torch. ``weight_entry`` gives the published stages
    their manifest entries (revision and sha256 for the report; None: not recorded).
    """

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
                                                  damage=print_labels))),
        StageEntry(MorphologicalDetector.spec, MorphologicalDetector),
        StageEntry(SegmentationDetector.spec, weighted(
            SegmentationDetector.spec,
            lambda path: SegmentationDetector(path(SegmentationDetector.spec.weights[0])))),
        StageEntry(PrintDetector.spec, weighted(
            PrintDetector.spec, lambda path: PrintDetector(path(PrintDetector.spec.weights[0])))),
        StageEntry(DescriptorDetector.spec, weighted(
            DescriptorDetector.spec,
            lambda path: DescriptorDetector(path(DescriptorDetector.spec.weights[0])))),
        StageEntry(ScratchDetector.spec, weighted(ScratchDetector.spec, lambda path: ScratchDetector(
            path("bopbtl_scratch"), path("detect_segnet"), entry=entry_of("bopbtl_scratch"), device=device))),
        StageEntry(NavierStokesInpainter.spec, NavierStokesInpainter),
        StageEntry(TeleaInpainter.spec, TeleaInpainter),
        StageEntry(BiharmonicInpainter.spec, BiharmonicInpainter),
        StageEntry(ExemplarInpainter.spec, ExemplarInpainter),
        StageEntry(LearnedInpainter.spec, weighted(
            LearnedInpainter.spec,
            lambda path: LearnedInpainter(path(LearnedInpainter.spec.weights[0]), device=device))),
        StageEntry(LamaInpainter.spec, weighted(LamaInpainter.spec, lambda path: LamaInpainter(
            path("big_lama"), entry=entry_of("big_lama"), device=device))),
        StageEntry(ToneRestore.spec, ToneRestore),
        StageEntry(RichardsonLucyDeblur.spec, RichardsonLucyDeblur),
        StageEntry(NafnetDeblur.spec, weighted(NafnetDeblur.spec, lambda path: NafnetDeblur(
            path("nafnet_gopro_w64"), entry=entry_of("nafnet_gopro_w64"), device=device))),
        StageEntry(GfpganFace.spec,
                   weighted(GfpganFace.spec, lambda path: GfpganFace(path, device=device))),
        StageEntry(DDColorColour.spec, weighted(DDColorColour.spec, lambda path: DDColorColour(
            path("ddcolor_paper_tiny"), entry=entry_of("ddcolor_paper_tiny"), device=device))),
    ]
    return Registry(entries, weight_check=weight_check)
