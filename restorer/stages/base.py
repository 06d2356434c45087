"""The protocol every stage follows, and the small value types stages exchange."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "StageKind",
    "StageSpec",
    "TriageResult",
    "Work",
    "StageOutput",
    "Stage",
    "ProgressFn",
    "TRIAGE_LABELS",
]

#: Progress callback: fraction in [0, 1] of the current stage, and a short description.
ProgressFn = Callable[[float, str], None]

TRIAGE_LABELS: tuple[str, ...] = ("clean", "blurred", "cracked", "blurred+cracked")


class StageKind(str, enum.Enum):
    """What a stage does. The value order is the only order in which kinds may run."""

    TRIAGE = "triage"
    DETECT = "detect"
    INPAINT = "inpaint"
    DEBLUR = "deblur"
    FACE = "face"

    @property
    def rank(self) -> int:
        """Position in the fixed run order (triage < detect < inpaint < deblur < face)."""
        return list(StageKind).index(self)


@dataclass(frozen=True)
class StageSpec:
    """Static description of a stage; reading it loads nothing.

    ``requires``/``produces`` name Work fields ("image", "mask", "triage"). ``weights`` lists
    manifest ids that must resolve before the stage can be built. ``options`` maps option names
    to their defaults (what a caller may set per run).
    """

    id: str
    kind: StageKind
    method: str
    title: str
    description: str
    requires: frozenset[str] = frozenset({"image"})
    produces: frozenset[str] = frozenset({"image"})
    weights: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TriageResult:
    """Damage labels with confidences.

    ``confidences`` maps each of TRIAGE_LABELS to a probability (they sum to 1); ``blurred``
    and ``cracked`` are the decisions Auto mode plans from; ``scores`` holds the raw measures.
    """

    confidences: Mapping[str, float]
    blurred: bool
    cracked: bool
    method: str
    scores: Mapping[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The most likely label."""
        return max(self.confidences, key=self.confidences.__getitem__)


@dataclass(frozen=True)
class Work:
    """What flows between stages: image float32 (H, W, 3) [0, 1], mask bool (H, W) or None."""

    image: np.ndarray
    mask: np.ndarray | None = None
    triage: TriageResult | None = None


@dataclass(frozen=True)
class StageOutput:
    """A stage's result: any of a new image, a mask, a triage; plus notes for the user."""

    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    triage: TriageResult | None = None
    info: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Stage(Protocol):
    """A stage: built once (models loaded), then run on many photos.

    ``run`` must not keep per-call state on ``self``; it may be called from several threads.
    """

    spec: ClassVar[StageSpec]

    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        """Process ``work`` with ``options`` (already merged with the spec's defaults)."""
        ...
