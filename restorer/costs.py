"""What the learned stages cost, and which of them Auto can afford: pure functions, no torch.

Each published model's cost is declared here in seconds per megapixel of the pixels it
processes, on the CPU (2 cores, as a free Space has) and on a CUDA GPU, measured with
random-initialised models of the same architectures (same cost as the published weights) by
``python bench/pretrained.py``. A figure that was not measured is None: on such a device the
stage is not held back for time, and what it will cost is said to be unknown.

:func:`fit_auto` decides Auto's learned stages for one photo: each planned learned stage runs
if its file is present and its expected time fits what is left of the time budget (in run
order: detection, inpainting, deblurring); otherwise its classical fallback runs, and a
sentence says which and why (weights missing, or skipped for time and what a GPU would add).
``inpaint.lama`` is planned when one working-size pass fits; it receives the seconds left as
its ``time_budget`` option and sends the regions beyond that to Telea itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence
from restorer.stage_ids import (DEBLUR_NAFNET, DEBLUR_RL, DETECT_SCRATCH, DETECT_SEGNET,
                                INPAINT_LAMA, INPAINT_TELEA)

__all__ = ["StageCost", "COSTS", "FALLBACKS", "LAMA_PASS_MP", "AutoFit", "expected_seconds",
           "fit_auto", "describe_expected"]


@dataclass(frozen=True)
class StageCost:
    """Seconds per megapixel processed, on the CPU and on a CUDA GPU (None: not measured).

    ``max_mp``: the stage never processes more than this many megapixels of a photo (it
    analyses or fills at a bounded working size); None: the whole photo.
    """

    cpu_s_per_mp: float
    gpu_s_per_mp: float | None
    max_mp: float | None = None

    def seconds(self, megapixels: float, device: str) -> float | None:
        """Expected seconds for ``megapixels`` on ``device`` ("cpu", "cuda", "mps"); None when
        not measured for that device."""
        work = megapixels if self.max_mp is None else min(megapixels, self.max_mp)
        rate = self.cpu_s_per_mp if device == "cpu" else self.gpu_s_per_mp
        return None if rate is None else rate * work


LAMA_PASS_MP = 512 * 512 / 1e6
"""Megapixels of one LaMa pass at the default working size (512 px long side)."""

COSTS: Mapping[str, StageCost] = {
    # bench/pretrained.py --weights standin, 2-core CPU, 2 torch threads (2026-12-07): see
    # weights/lama.md, weights/nafnet.md, weights/bopbtl_scratch.md. No GPU was available here.
    INPAINT_LAMA: StageCost(cpu_s_per_mp=16.8, gpu_s_per_mp=None),
    DEBLUR_NAFNET: StageCost(cpu_s_per_mp=31.7, gpu_s_per_mp=None),
    DETECT_SCRATCH: StageCost(cpu_s_per_mp=24.3, gpu_s_per_mp=None, max_mp=1.0),
}
"""Declared costs of the learned stages that Auto weighs against its time budget."""

FALLBACKS: Mapping[str, str] = {INPAINT_LAMA: INPAINT_TELEA, DEBLUR_NAFNET: DEBLUR_RL,
                                DETECT_SCRATCH: DETECT_SEGNET}
"""The classical (or cheaper) stage Auto runs instead of each learned one."""

_TITLES = {INPAINT_LAMA: "LaMa inpainting", DEBLUR_NAFNET: "NAFNet deblurring",
           DETECT_SCRATCH: "the scratch detector (BOPBTL)"}
_PULL = "python -m restorer weights pull"


@dataclass(frozen=True)
class AutoFit:
    """Auto's stages for one photo: ids in run order, option overrides by id (LaMa's
    ``time_budget``), and sentences for the page and the report."""

    stages: tuple[str, ...]
    options: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    skipped_for_time: tuple[str, ...] = ()


def expected_seconds(stage_id: str, megapixels: float, device: str,
                     costs: Mapping[str, StageCost] = COSTS) -> float | None:
    """Expected seconds of ``stage_id`` on a photo of ``megapixels`` (LaMa: one working-size
    pass); None when the stage has no declared cost on ``device``."""
    cost = costs.get(stage_id)
    if cost is None:
        return None
    return cost.seconds(LAMA_PASS_MP if stage_id == INPAINT_LAMA else megapixels, device)


def describe_expected(stage_id: str, megapixels: float, device: str,
                      costs: Mapping[str, StageCost] = COSTS) -> str | None:
    """A sentence with the expected time of a hand-picked learned stage (None for stages with
    no declared cost)."""
    if stage_id not in costs:
        return None
    seconds = expected_seconds(stage_id, megapixels, device, costs)
    where = "this CPU" if device == "cpu" else f"this {device.upper()} device"
    what = ("per filled region (one 512 px pass; wide tears over a large photo take several)"
            if stage_id == INPAINT_LAMA else f"for a {megapixels:.1f} MP photo")
    if seconds is None:
        return f"{_TITLES[stage_id]}: cost on {where} not measured yet {what}."
    return f"{_TITLES[stage_id]}: about {seconds:.0f} s on {where} {what}."


def fit_auto(stages: Sequence[str], *, available: Callable[[str], bool], megapixels: float,
             device: str, budget_s: float | None,
             costs: Mapping[str, StageCost] = COSTS,
             fallbacks: Mapping[str, str] = FALLBACKS) -> AutoFit:
    """Auto's stages for a photo of ``megapixels`` on ``device`` (pure).

    ``stages``: Auto's plan in run order (learned stages where Auto prefers them). A learned
    stage whose file is not ``available`` is replaced by its fallback; one whose expected time
    does not fit what is left of ``budget_s`` seconds (None: no budget) is replaced too, and
    the note says what a GPU would add. A planned fallback whose learned stage is absent is
    also noted (e.g. "Telea: LaMa's file is not here").
    """
    learned_of = {fallback: learned for learned, fallback in fallbacks.items()}
    left = budget_s
    chosen: list[str] = []
    options: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    skipped: list[str] = []
    for stage in stages:
        if stage in learned_of and not available(learned_of[stage]):
            notes.append(f"{stage} used: {_TITLES[learned_of[stage]]} is unavailable (its weights "
                         f"are not here: {_PULL})")
        if stage not in fallbacks:
            chosen.append(stage)
            continue
        fallback = fallbacks[stage]
        if not available(stage):
            notes.append(f"{fallback} used instead of {stage}: its weights are not here ({_PULL})")
            chosen.append(fallback)
            continue
        seconds = expected_seconds(stage, megapixels, device, costs)
        if left is not None and seconds is not None and seconds > left:
            gpu = costs[stage].seconds(megapixels, "cuda") if stage in costs else None
            on_gpu = ("a GPU would run it" if gpu is None
                      else f"a GPU would run it in about {gpu:.1f} s")
            notes.append(f"{fallback} used instead of {stage} to stay within the {budget_s:g} s "
                         f"budget: {_TITLES[stage]} would take about {seconds:.0f} s on this "
                         f"{device.upper() if device != 'cpu' else 'CPU'}; {on_gpu}")
            skipped.append(stage)
            chosen.append(fallback)
            continue
        chosen.append(stage)
        if left is not None:
            if stage == INPAINT_LAMA:
                options[stage] = {"time_budget": round(left, 1)}
            left -= seconds or 0.0
    return AutoFit(tuple(chosen), options, tuple(notes), tuple(skipped))
