"""Which stages run, decided by pure functions of their inputs.

``plan_auto`` turns a triage into a plan; ``plan_manual`` validates a user's choice. Both refuse
impossible requests with a PlanError that says why. The run order is fixed by stage kind:
detect, inpaint, tone, deblur, face (inpainting before face restoration measured better).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from restorer.costs import AutoFit, fit_auto
from restorer.errors import PlanError
from restorer.stage_ids import (DEBLUR_NAFNET, DEBLUR_RL, DETECT_MORPH, DETECT_SCRATCH,
                                DETECT_SEGNET, INPAINT_LAMA, INPAINT_TELEA)
from restorer.stages.base import StageKind, StageSpec, TriageResult

__all__ = ["PlannedStage", "Plan", "AutoMethods", "AutoBudget", "LEARNED", "MASK_MODES",
           "plan_auto", "plan_manual", "apply_user_mask", "fit_learned"]

MASK_MODES = ("replace", "union")
"""What a user's mask does: "replace" detection (detect stages are skipped), or "union" with
what detection finds (detection runs; a pixel is a defect when either marks it)."""


@dataclass(frozen=True)
class PlannedStage:
    """One stage to run, with option overrides (merged over the spec's defaults)."""

    id: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """Stages in run order, and a sentence saying why."""

    stages: tuple[PlannedStage, ...]
    reason: str

    @property
    def ids(self) -> tuple[str, ...]:
        """The stage ids in order."""
        return tuple(s.id for s in self.stages)


@dataclass(frozen=True)
class AutoMethods:
    """The stage Auto mode uses for each kind; None means that kind is skipped.

    ``large_inpaint`` fills photos with large holes (torn: tears, missing corners, edge loss);
    None falls back to ``inpaint`` and the plan's reason says large holes need a large-hole
    inpainter. ``tone`` runs when triage finds the photo faded. ``colour`` colourises, only
    when asked for (``plan_auto(..., colourise=True)``); None: no colourisation stage here.
    ``learned`` maps a classical
    stage to the published learned one Auto prefers in its place when that file is present
    and its expected time fits the budget (see :func:`fit_learned`); empty: never.
    """

    detect: str = DETECT_MORPH
    inpaint: str = INPAINT_TELEA
    deblur: str | None = DEBLUR_RL
    face: str | None = None
    large_inpaint: str | None = None
    tone: str | None = None
    colour: str | None = None
    learned: Mapping[str, str] = field(default_factory=dict)


LEARNED: Mapping[str, str] = {DETECT_SEGNET: DETECT_SCRATCH, INPAINT_TELEA: INPAINT_LAMA,
                              DEBLUR_RL: DEBLUR_NAFNET}
"""The published stages Auto prefers over each classical one (restorer.service uses these)."""


@dataclass(frozen=True)
class AutoBudget:
    """What Auto weighs its learned stages against for one photo (supplied per run).

    ``available``: whether a stage's files are present and verified now; ``device``: where
    torch stages run ("cpu", "cuda", "mps"); ``seconds``: the time budget (None: none).
    """

    available: Callable[[str], bool]
    megapixels: float
    device: str
    seconds: float | None


#: Labels that Auto repairs by detection and inpainting, with the words its reason uses.
_INPAINTED = {"cracked": "cracks", "creased": "creases", "torn": "tears or missing parts",
              "spotted": "spots or stains"}


def plan_auto(triage: TriageResult, methods: AutoMethods = AutoMethods(), *,
              colourise: bool = False) -> Plan:
    """Plan from ``triage.found``: cracked / creased / spotted / torn -> detect + inpaint (torn:
    the large-hole inpainter when there is one); faded -> tone; blurred -> deblur (+ face).
    Order: detect, inpaint, tone, deblur, face, then ``methods.colour`` last, only when
    ``colourise`` (never otherwise; the reason says when it was asked for but is absent)."""
    plan = _plan_repairs(triage, methods)
    if not colourise:
        return plan
    if methods.colour is None:
        return Plan(plan.stages, f"{plan.reason}; colourisation was asked for, but no "
                                 "colourisation model is available here (python -m restorer "
                                 "weights pull ddcolor_paper_tiny)")
    reason = "colourised as asked" if not plan.stages else f"{plan.reason}; colourised as asked"
    return Plan((*plan.stages, PlannedStage(methods.colour)), reason)


def _plan_repairs(triage: TriageResult, methods: AutoMethods) -> Plan:
    """plan_auto's repairs, without colourisation."""
    found = triage.found
    stages: list[PlannedStage] = []
    notes: list[str] = []
    if any(label in found for label in _INPAINTED):
        inpaint = methods.inpaint
        if "torn" in found:
            if methods.large_inpaint is not None:
                inpaint = methods.large_inpaint
                notes.append(f"large holes go to the large-hole inpainter {inpaint}")
            else:
                notes.append(f"large holes need a large-hole inpainter; {methods.inpaint} "
                             "fills them from their edges only")
        stages += [PlannedStage(methods.detect), PlannedStage(inpaint)]
    if "faded" in found and methods.tone is not None:
        stages.append(PlannedStage(methods.tone))
    if "blurred" in found:
        stages += [PlannedStage(s) for s in (methods.deblur, methods.face) if s is not None]
    if not stages and "faded" in found:
        return Plan((), "triage found fading, but no tone stage is available here: nothing "
                        "was changed")
    if not stages:
        return Plan((), "the photo looks clean: nothing to repair (choose stages in Manual mode "
                        "to force them)")
    words = [w for label, w in (*_INPAINTED.items(), ("faded", "fading"), ("blurred", "blur"))
             if label in found and (label != "faded" or methods.tone is not None)]
    reason = f"triage found {' and '.join(words)}"
    return Plan(tuple(stages), "; ".join([reason, *notes]))


def fit_learned(plan: Plan, methods: AutoMethods, budget: AutoBudget) -> tuple[Plan, AutoFit]:
    """``plan`` (an Auto plan) with each stage that ``methods.learned`` upgrades replaced by
    its learned stage where that stage is available and its expected time fits what is left
    of ``budget.seconds`` (restorer.costs.fit_auto, in run order); otherwise the classical
    stage stays. The fit's notes hold a sentence per fallback (weights missing, or skipped
    for time and what a GPU would add); LaMa receives the seconds left as ``time_budget``."""
    if not methods.learned:
        return plan, AutoFit(plan.ids)
    wanted = [methods.learned.get(s.id, s.id) for s in plan.stages]
    fallbacks = {learned: classical for classical, learned in methods.learned.items()}
    fit = fit_auto(wanted, available=budget.available, megapixels=budget.megapixels,
                   device=budget.device, budget_s=budget.seconds, fallbacks=fallbacks)
    given = {s.id: s.options for s in plan.stages}
    stages = tuple(PlannedStage(i, {**given.get(i, {}), **fit.options.get(i, {})})
                   for i in fit.stages)
    return Plan(stages, plan.reason), fit


def plan_manual(
    stages: Sequence[PlannedStage | str],
    specs: Mapping[str, StageSpec],
    *,
    has_mask: bool = False,
) -> Plan:
    """Validate the user's ordered ``stages`` against ``specs`` (id -> spec).

    Refuses unknown ids, options a stage does not declare or values outside their range, two
    stages of one kind, kinds out of order (e.g. deblur before inpaint), and inpainting with no
    mask (neither a detect stage nor a user mask).
    """
    planned = [s if isinstance(s, PlannedStage) else PlannedStage(s) for s in stages]
    if not planned:
        raise PlanError("no stage chosen: tick at least one of detect, inpaint, deblur")
    mask_ready = has_mask
    previous: StageSpec | None = None
    for stage in planned:
        spec = specs.get(stage.id)
        if spec is None:
            raise PlanError(f"unknown stage '{stage.id}'; known stages: {', '.join(specs)}")
        if spec.kind == StageKind.TRIAGE:
            raise PlanError("triage always runs first on its own; do not list it as a stage")
        spec.resolve_options(stage.options)  # unknown names and bad values are refused here
        if previous is not None:
            if spec.kind == previous.kind:
                raise PlanError(f"two {spec.kind.value} stages chosen ('{previous.id}' and "
                                f"'{spec.id}'): pick one")
            if spec.kind.rank < previous.kind.rank:
                raise PlanError(f"'{spec.id}' cannot run after '{previous.id}': {spec.kind.value} "
                                f"must come before {previous.kind.value}")
        if "mask" in spec.requires and not mask_ready:
            raise PlanError(f"'{spec.id}' needs a defect mask: add a detect stage before it or "
                            "provide a mask")
        mask_ready = mask_ready or "mask" in spec.produces
        previous = spec
    return Plan(tuple(planned), "chosen by hand")


def apply_user_mask(plan: Plan, specs: Mapping[str, StageSpec], mode: str,
                    methods: AutoMethods | None) -> Plan:
    """``plan`` adjusted for a user's mask under ``mode`` (one of MASK_MODES).

    "replace" drops detect stages; "union" keeps them (and, for an Auto plan, adds
    ``methods.detect`` when missing). For an Auto plan (``methods`` given) the mask is the
    user's statement that there are defects, so ``methods.inpaint`` is added when the plan has
    no inpaint stage, even if triage found the photo clean.
    """
    if mode not in MASK_MODES:
        raise PlanError(f"unknown mask mode '{mode}': use {' or '.join(MASK_MODES)}")
    kinds = {s.id: specs[s.id].kind for s in plan.stages}
    stages = [s for s in plan.stages if mode == "union" or kinds[s.id] != StageKind.DETECT]
    notes = []
    if len(stages) < len(plan.stages):
        notes.append("detection skipped: your mask is used instead")
    if methods is not None:
        present = {kinds[s.id] for s in stages}
        wanted = [(StageKind.INPAINT, methods.inpaint)]
        if mode == "union":
            wanted.insert(0, (StageKind.DETECT, methods.detect))
        for kind, stage_id in wanted:
            if kind not in present:
                stages.append(PlannedStage(stage_id))
                kinds[stage_id] = kind
        stages.sort(key=lambda s: kinds[s.id].rank)
    reason = plan.reason
    if methods is not None and not plan.stages:
        reason = "your mask marks defects"
    if notes:
        reason = f"{reason}; {'; '.join(notes)}"
    return Plan(tuple(stages), reason)
