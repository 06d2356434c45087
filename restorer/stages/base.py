"""The protocol every stage follows, and the small value types stages exchange."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import (TYPE_CHECKING, Any, Callable, ClassVar, Literal, Mapping, Protocol,
                    runtime_checkable)

from restorer.errors import PlanError

if TYPE_CHECKING:  # arrays appear in annotations only: the CLI's --help needs no numpy
    import numpy as np

__all__ = [
    "Option",
    "StageKind",
    "StageSpec",
    "TriageResult",
    "Work",
    "StageOutput",
    "Stage",
    "ProgressFn",
    "TRIAGE_LABELS",
    "DAMAGE_LABELS",
]

#: Progress callback: fraction in [0, 1] of the current stage, and a short description.
ProgressFn = Callable[[float, str], None]

TRIAGE_LABELS: tuple[str, ...] = ("clean", "blurred", "cracked", "blurred+cracked")
#: Independent damage labels, several at once (TriageResult.labels): cracked = cracks,
#: scratches, silvering; creased = creases, folds; torn = tears, missing corners, edge loss;
#: spotted = spots, foxing, stains, mould, dust; faded = fading, colour cast.
DAMAGE_LABELS: tuple[str, ...] = ("blurred", "cracked", "creased", "torn", "spotted", "faded")


class StageKind(str, enum.Enum):
    """What a stage does. The value order is the only order in which kinds may run."""

    TRIAGE = "triage"
    DETECT = "detect"
    INPAINT = "inpaint"
    TONE = "tone"
    DEBLUR = "deblur"
    FACE = "face"
    COLOUR = "colour"

    @property
    def rank(self) -> int:
        """Position in the fixed run order (triage < detect < inpaint < tone < deblur < face <
        colour)."""
        return list(StageKind).index(self)


OptionKind = Literal["number", "integer", "flag", "choice"]


@dataclass(frozen=True)
class Option:
    """One stage option: its default and the values it accepts.

    ``kind``: "number" (a finite float in [``low``, ``high``]), "integer" (a whole number in
    [``low``, ``high``]), "flag" (true or false) or "choice" (one of ``choices``). ``optional``
    also accepts None (the stage then decides, e.g. estimates a blur). Bounds of options that
    size work or memory (radii, patch sizes, tiles) keep a 24 MP photo within the memory limit.
    Build them with :meth:`number`, :meth:`integer`, :meth:`flag` and :meth:`choice`.
    """

    kind: OptionKind
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    optional: bool = False
    help: str = ""

    def __post_init__(self) -> None:
        if self.kind in ("number", "integer") and (self.low is None or self.high is None
                                                    or self.low > self.high):
            raise ValueError(f"a {self.kind} option needs low <= high, got {self.low}, {self.high}")
        if self.kind == "choice" and not self.choices:
            raise ValueError("a choice option needs its choices")
        self.check("default", self.default)

    @classmethod
    def number(cls, default: float | None, low: float, high: float, *, optional: bool = False,
               help: str = "") -> Option:
        """A real number in [low, high] (None too when ``optional``)."""
        return cls("number", default, low, high, optional=optional, help=help)

    @classmethod
    def integer(cls, default: int | None, low: int, high: int, *, optional: bool = False,
                help: str = "") -> Option:
        """A whole number in [low, high] (None too when ``optional``)."""
        return cls("integer", default, low, high, optional=optional, help=help)

    @classmethod
    def flag(cls, default: bool, *, help: str = "") -> Option:
        """True or false."""
        return cls("flag", default, help=help)

    @classmethod
    def choice(cls, default: Any, choices: tuple[Any, ...], *, help: str = "") -> Option:
        """One of ``choices``."""
        return cls("choice", default, choices=tuple(choices), help=help)

    def accepts(self) -> str:
        """What the option accepts, in words (for messages and help)."""
        if self.kind == "number":
            text = f"a number from {self.low:g} to {self.high:g}"
        elif self.kind == "integer":
            text = f"a whole number from {int(self.low)} to {int(self.high)}"
        elif self.kind == "flag":
            text = "true or false"
        else:
            text = "one of " + ", ".join(str(c) for c in self.choices)
        return text + (" (or null: automatic)" if self.optional else "")

    def check(self, name: str, value: Any) -> Any:
        """``value`` normalised (int for integers, float for numbers); PlanError naming
        ``name`` and what it accepts when it does not fit."""
        if value is None and self.optional:
            return None
        bad = PlanError(f"option '{name}' must be {self.accepts()}, got {value!r}")
        if self.kind == "flag":
            if not isinstance(value, bool):
                raise bad
            return value
        if self.kind == "choice":
            for choice in self.choices:  # 2 == 2.0 but True is not 1: compare types too
                if value == choice and isinstance(value, bool) == isinstance(choice, bool):
                    return choice
            raise bad
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        number = float(value)
        if not math.isfinite(number) or not self.low <= number <= self.high:
            raise bad
        if self.kind == "integer":
            if not number.is_integer():
                raise bad
            return int(number)
        return number


@dataclass(frozen=True)
class StageSpec:
    """Static description of a stage; reading it loads nothing.

    ``requires``/``produces`` name Work fields ("image", "mask", "triage"). ``weights`` lists
    manifest ids that must resolve before the stage can be built. ``options`` declares what a
    caller may set per run (:class:`Option`: default, type and range).
    """

    id: str
    kind: StageKind
    method: str
    title: str
    description: str
    requires: frozenset[str] = frozenset({"image"})
    produces: frozenset[str] = frozenset({"image"})
    weights: tuple[str, ...] = ()
    options: Mapping[str, Option] = field(default_factory=dict)

    def __post_init__(self) -> None:
        undeclared = [name for name, option in self.options.items()
                      if not isinstance(option, Option)]
        if undeclared:
            raise TypeError(f"stage '{self.id}': declare option(s) {', '.join(undeclared)} with "
                            "Option.number / integer / flag / choice")

    @property
    def defaults(self) -> dict[str, Any]:
        """Every option's default value, by name (a new dict)."""
        return {name: option.default for name, option in self.options.items()}

    def resolve_options(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """The options a run uses: ``overrides`` checked against their declarations and merged
        over the defaults. PlanError names an unknown option or a value out of range."""
        unknown = sorted(set(overrides) - set(self.options))
        if unknown:
            accepted = ", ".join(self.options) or "none"
            raise PlanError(f"stage '{self.id}' has no option(s) {', '.join(unknown)}; it accepts: "
                            f"{accepted}")
        resolved = self.defaults
        for name, value in overrides.items():
            resolved[name] = self.options[name].check(f"{self.id}.{name}", value)
        return resolved


@dataclass(frozen=True)
class TriageResult:
    """Damage labels with confidences.

    ``confidences`` maps each of TRIAGE_LABELS to a probability (they sum to 1); ``blurred``
    and ``cracked`` are the blur and crack decisions; ``labels`` the independent per-label
    probabilities; :attr:`found` what Auto plans from; ``scores`` holds the raw measures.
    """

    confidences: Mapping[str, float]
    blurred: bool
    cracked: bool
    method: str
    scores: Mapping[str, float] = field(default_factory=dict)
    labels: Mapping[str, float] = field(default_factory=dict)
    """Independent probability in [0, 1] of each of DAMAGE_LABELS that was measured (several
    may be high at once; a label absent was not measured, which is not the same as 0)."""

    @property
    def found(self) -> frozenset[str]:
        """The damage labels Auto plans from: ``labels`` at >= 0.5, and the blurred and
        cracked decisions."""
        found = {name for name, p in self.labels.items() if p >= 0.5}
        found.discard("blurred")
        found.discard("cracked")
        return frozenset(found | {n for n, on in (("blurred", self.blurred),
                                                   ("cracked", self.cracked)) if on})

    @property
    def label(self) -> str:
        """The most likely label."""
        return max(self.confidences, key=self.confidences.__getitem__)

    @property
    def headline(self) -> str:
        """What was found, for a one-line summary: "faded 0.83, spotted 0.55" (the ``found``
        labels with their confidences, highest first), or "clean" when nothing was found."""
        found = sorted(self.found, key=lambda name: -self.labels.get(name, 1.0))
        return ", ".join(f"{name} {self.labels[name]:.2f}" if name in self.labels else name
                         for name in found) or "clean"


@dataclass(frozen=True)
class Work:
    """What flows between stages: image float32 (H, W, 3) [0, 1], mask bool (H, W) or None."""

    image: np.ndarray
    mask: np.ndarray | None = None
    triage: TriageResult | None = None


@dataclass(frozen=True)
class StageOutput:
    """A stage's result: any of a new image, a mask, a triage; plus notes for the user.

    A detector that tells kinds of damage apart gives ``masks``: kind -> bool (H, W), parts of
    ``mask`` (the legend)."""

    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    triage: TriageResult | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    masks: Mapping[str, np.ndarray] | None = None


@runtime_checkable
class Stage(Protocol):
    """A stage: built once (models loaded), then run on many photos.

    ``run`` must not keep per-call state on ``self``; it may be called from several threads.
    """

    spec: ClassVar[StageSpec]

    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        """Process ``work`` with ``options`` (already merged with the spec's defaults)."""
        ...
