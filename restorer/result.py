"""What a run of the pipeline returns: every stage as it ran, and the result of the whole run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from restorer.mount import PrintCrop
from restorer.planner import Plan
from restorer.runtime_record import record_of
from restorer.stages.base import StageKind, TriageResult
from restorer.tone import Tone

__all__ = ["StageRecord", "RestoreResult"]


@dataclass(frozen=True)
class StageRecord:
    """One stage as it ran: its output image or mask, seconds, and notes."""

    id: str
    kind: str
    title: str
    seconds: float
    options: Mapping[str, Any] = field(default_factory=dict)
    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    masks: Mapping[str, np.ndarray] | None = None


@dataclass(frozen=True)
class RestoreResult:
    """Everything a run produced.

    ``image`` is the final float32 (H, W, 3) [0, 1] photo; ``mask`` the bool (H, W) defect mask
    (detected or given; None when there was none), which was inpainted when ``inpainted``;
    ``mask_source`` says where it came from: "detected", "user" or "user+detected".
    ``options_unused`` names stages given options that did not run. ``skipped_for_time``
    names the learned stages Auto left out to keep within ``time_budget`` seconds on
    ``device`` (None until a learned stage could run); ``auto_notes`` says what Auto used
    instead of each learned stage and why. ``fallbacks`` says which stage could not be built
    here and what ran instead (or that it was skipped). ``crop`` is the crop to the print
    when it was asked for (``image`` is then cut to its box; None: not asked).
    """

    input: np.ndarray
    image: np.ndarray
    mask: np.ndarray | None
    triage: TriageResult | None
    plan: Plan
    stages: tuple[StageRecord, ...]
    weights: Mapping[str, str]
    tone: Tone
    message: str
    mask_source: str | None = None
    options_unused: tuple[str, ...] = ()
    skipped_for_time: tuple[str, ...] = ()
    auto_notes: tuple[str, ...] = ()
    time_budget: float | None = None
    device: str | None = None
    fallbacks: tuple[str, ...] = ()
    crop: PrintCrop | None = None

    @property
    def inpainted(self) -> bool:
        """True when an inpainting stage filled ``mask``."""
        return any(r.kind == "inpaint" for r in self.stages)

    @property
    def colourised(self) -> bool:
        """True when a colourisation stage gave the photo colours (a grey input's output is
        then written in colour)."""
        return any(r.kind == StageKind.COLOUR.value and r.info.get("changed") for r in self.stages)

    @property
    def colour_before_after(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The colourisation's own before/after, float32 (H, W, 3): the photo the last colour
        stage was given (the repaired grey or sepia print, cut like ``image``) and the result;
        None when no colour stage ran (colour is always the last stage of a plan)."""
        current, before = self.input, None
        for record in self.stages:
            if record.kind == StageKind.COLOUR.value:
                before = current
            if record.image is not None:
                current = record.image
        if before is None:
            return None
        return (before if self.crop is None else self.crop.apply(before)), self.image

    @property
    def kind_masks(self) -> dict[str, np.ndarray]:
        """Kind of damage -> bool (H, W) from the last detector that told kinds apart (the
        mask legend); empty when none did."""
        found = [r.masks for r in self.stages if r.masks is not None]
        return dict(found[-1]) if found else {}

    @property
    def timings(self) -> dict[str, float]:
        """Seconds per stage id, in run order."""
        return {r.id: r.seconds for r in self.stages}

    def report(self) -> dict[str, Any]:
        """A JSON-ready summary: labels, stages, seconds, weight versions."""
        return {
            "labels": dict(self.triage.confidences) if self.triage else None,
            "label": self.triage.label if self.triage else None,
            "damage_labels": dict(self.triage.labels) if self.triage else None,
            "damage_found": sorted(self.triage.found) if self.triage else None,
            "triage_method": self.triage.method if self.triage else None,
            "triage_scores": dict(self.triage.scores) if self.triage else None,
            "plan": list(self.plan.ids),
            "plan_reason": self.plan.reason,
            "stages": [{"id": r.id, "kind": r.kind, "seconds": round(r.seconds, 4),
                        "options": dict(r.options), "info": dict(r.info)} for r in self.stages],
            "seconds_total": round(sum(r.seconds for r in self.stages), 4),
            "weights": dict(self.weights),
            "tone": self.tone.kind,
            "defect_fraction": float(self.mask.mean()) if self.mask is not None else 0.0,
            "inpainted": self.inpainted,
            "mask_source": self.mask_source,
            "options_unused": list(self.options_unused),
            "time_budget_s": self.time_budget,
            "device": self.device,
            "skipped_for_time": list(self.skipped_for_time),
            "auto_notes": list(self.auto_notes),
            "fallbacks": list(self.fallbacks),
            "runtime": {r.id: record_of(r.info) for r in self.stages
                        if record_of(r.info) is not None},
            "size": [int(self.image.shape[1]), int(self.image.shape[0])],
            "crop_to_print": None if self.crop is None else self.crop.report(),
            "message": self.message,
        }
