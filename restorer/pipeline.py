"""Running a plan over a photo, keeping every intermediate (what a run returns:
:mod:`restorer.result`)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from restorer.costs import COSTS, AutoFit, describe_expected
from restorer.errors import PlanError, RestorerError, StageError
from restorer.imaging import validate_image, validate_mask
from restorer.mount import PrintCrop, find_print
from restorer.planner import (AutoBudget, AutoMethods, Plan, PlannedStage, apply_user_mask,
                              fit_learned, plan_auto)
from restorer.registry import Registry
from restorer.result import RestoreResult, StageRecord
from restorer.settings import DEFAULT_TIME_BUDGET
from restorer.stage_ids import TRIAGE_HEURISTIC
from restorer.stages.base import StageKind, StageOutput, Work
from restorer.tone import Tone, analyse_tone, retone

#: Pipeline is this module's own; RestoreResult and StageRecord (restorer.result, what a run
#: returns) and DEFAULT_TIME_BUDGET (restorer.settings) are re-exported.
__all__ = ["StageRecord", "RestoreResult", "Pipeline", "PipelineProgress", "DEFAULT_TIME_BUDGET"]

log = logging.getLogger(__name__)

#: Overall progress: fraction of the whole run in [0, 1] and a description.
PipelineProgress = Callable[[float, str], None]


class Pipeline:
    """Runs stages from a Registry. Stages are built once and reused across runs.

    ``triage_id``/``detect_id`` pick the triage and the detector it relies on; ``auto`` the
    stages Auto mode uses; ``weight_versions`` maps manifest ids to the version string recorded
    in results. ``time_budget``: seconds Auto's learned stages may take per photo (None: no
    budget); ``device``: where torch stages run ("cpu", "cuda", "mps"), asked for on the first
    Auto run that weighs a learned stage (default: resolved from "auto" then).
    ``fallbacks`` maps a stage to the one run instead when it cannot be built here (None: the
    step is skipped), as do ``auto.learned``'s stages to their classical ones; a stage a
    Manual plan names is never replaced (its error is the run's).
    """

    def __init__(
        self,
        registry: Registry,
        *,
        triage_id: str = TRIAGE_HEURISTIC,
        auto: AutoMethods = AutoMethods(),
        weight_versions: Mapping[str, str] | None = None,
        time_budget: float | None = DEFAULT_TIME_BUDGET,
        device: Callable[[], str] | None = None,
        fallbacks: Mapping[str, str | None] | None = None,
    ) -> None:
        self.registry = registry
        self.fallbacks: dict[str, str | None] = {
            learned: classical for classical, learned in auto.learned.items()}
        self.fallbacks.update(fallbacks or {})
        self.triage_id = triage_id
        self.auto = auto
        self.time_budget = time_budget
        self._device = device
        self._device_kind: str | None = None
        self._weight_versions = dict(weight_versions or {})

    def auto_stage_ids(self) -> list[str]:
        """The stages Auto mode may run (triage first), each once."""
        auto = self.auto
        ids = [self.triage_id, auto.detect, auto.inpaint, auto.large_inpaint, auto.tone,
               auto.deblur, auto.face]
        ids += [auto.learned[i] for i in ids if i in auto.learned]
        return list(dict.fromkeys(i for i in ids if i is not None))

    def check_options(self, options: Mapping[str, Mapping[str, Any]],
                      plan: Plan | None = None) -> None:
        """Refuse ``options`` (stage id -> {name: value}) for stages that cannot run under
        ``plan`` (None: Auto) or whose values a stage does not accept; before any work."""
        allowed = [*self.auto_stage_ids(), *filter(None, [self.auto.colour])] if plan is None \
            else [self.triage_id, self.auto.detect, *plan.ids]
        for stage_id, values in options.items():
            if stage_id not in allowed:
                where = "Auto may run" if plan is None else "this plan runs"
                raise PlanError(f"options given for '{stage_id}', which never runs here ("
                                f"{where}: {', '.join(dict.fromkeys(allowed))})")
            self.registry.spec(stage_id).resolve_options(values)

    def run(
        self,
        image: np.ndarray,
        plan: Plan | None = None,
        *,
        mask: np.ndarray | None = None,
        mask_mode: str = "replace",
        options: Mapping[str, Mapping[str, Any]] | None = None,
        progress: PipelineProgress | None = None,
        colourise: bool = False,
        time_budget: float | None = None,
        crop_to_print: bool = False,
    ) -> RestoreResult:
        """Restore float32 (H, W, 3) [0, 1] ``image``.

        ``plan`` None is Auto mode: triage decides. A user ``mask`` (bool (H, W)) replaces
        detection, or with ``mask_mode`` "union" is added to what detection finds (see
        planner.apply_user_mask). ``options`` (stage id -> {name: value}) apply to those
        stages whenever they run (checked first with :meth:`check_options`); a planned stage's
        own options win. ``colourise``: Auto ends with ``auto.colour`` (off by default; Manual
        plans list the colour stage themselves). ``crop_to_print``: the result is cut to the
        print found by restorer.mount.find_print (nothing cut when no mount is found; the
        result's ``crop`` says which). Raises StageError naming the stage that failed.
        """
        validate_image(image)
        if mask is not None:
            validate_mask(mask, image.shape[:2])
        overrides = {k: dict(v) for k, v in (options or {}).items()}
        self.check_options(overrides, plan)
        if mask is not None:  # the mode is checked before any work
            apply_user_mask(Plan((), ""), {}, mask_mode, None)
        union = mask is not None and mask_mode == "union"
        report = progress or (lambda fraction, text: None)
        records: list[StageRecord] = []
        work = Work(image=image, mask=mask)
        tone = analyse_tone(image)
        region = find_print(image)
        run = _Run(overrides, mask if union else None, region.mask if region.mounted else None,
                   named=frozenset(() if plan is None else plan.ids))

        triage_id = self._resolve(self.triage_id, run) or self.triage_id
        triage_spec = self.registry.spec(triage_id)
        if "mask" in triage_spec.requires and (work.mask is None or union):
            detect = PlannedStage(self.auto.detect)
            work = self._run_stage(detect, work, records, report, 0.0, 0.2, run)
        work = self._run_stage(PlannedStage(triage_id), work, records, report, 0.2, 0.3, run)
        specs = {s.id: s for s in self.registry.specs()}
        fit = None
        budget = self.time_budget if time_budget is None else time_budget
        budget = None if budget is None or budget == float("inf") else float(budget)
        if plan is None:
            plan = plan_auto(work.triage, self.auto, colourise=colourise)
            if mask is not None:
                plan = apply_user_mask(plan, specs, mask_mode, self.auto)
            plan, fit = self._fit_learned(plan, image, budget)
        else:
            if mask is not None:
                plan = apply_user_mask(plan, specs, mask_mode, None)
            self._say_expected(plan, image)
        done = {(r.id, tuple(sorted(r.options.items()))) for r in records}
        todo = [s for s in plan.stages
                if (s.id, tuple(sorted(self._options(s, run).items()))) not in done]
        for index, stage in enumerate(todo):
            start = 0.3 + 0.7 * index / len(todo)
            work = self._run_stage(stage, work, records, report, start, 0.7 / len(todo), run)
        final = work.image
        reference, kept = _tone_reference(image, tone, records)
        if kept.kind != "colour" and final is not reference:
            final = retone(final, reference, kept)
        if run.print_region is not None and final.shape == image.shape:
            final = np.where(run.print_region[..., None], final, image)  # the mount as it was
        crop = PrintCrop.of(region) if crop_to_print else None
        if crop is not None:
            final = crop.apply(final)
        report(1.0, "done")
        weights = {w: self._weight_versions.get(w, "unversioned")
                   for r in records for w in self.registry.spec(r.id).weights}
        detected = any(r.kind == StageKind.DETECT.value for r in records)
        source = None if work.mask is None else (
            ("user+detected" if detected else "user") if mask is not None else "detected")
        ran = {r.id for r in records}
        return RestoreResult(
            input=image, image=final, mask=work.mask,
            triage=work.triage, plan=plan, stages=tuple(records), weights=weights, tone=tone,
            message=plan.reason, mask_source=source,
            options_unused=tuple(i for i in overrides if i not in ran),
            skipped_for_time=() if fit is None else fit.skipped_for_time,
            auto_notes=() if fit is None else fit.notes,
            time_budget=budget if fit is not None else None, device=self._device_kind,
            fallbacks=tuple(run.fallbacks), crop=crop,
        )

    def device_kind(self) -> str:
        """Where torch stages run here ("cpu", "cuda", "mps"), resolved once."""
        if self._device_kind is None:
            if self._device is not None:
                self._device_kind = self._device()
            else:
                from restorer.backends import resolve_device

                self._device_kind = str(resolve_device("auto").type)
        return self._device_kind

    def _fit_learned(self, plan: Plan, image: np.ndarray,
                     budget: float | None) -> tuple[Plan, AutoFit | None]:
        """An Auto ``plan`` with the learned stages that are present now and fit ``budget``
        seconds (planner.fit_learned), and the fit (None: Auto prefers no learned stage)."""
        if not self.auto.learned:
            return plan, None
        megapixels = image.shape[0] * image.shape[1] / 1e6
        learned = [self.auto.learned[i] for i in plan.ids if i in self.auto.learned]
        present = [i for i in learned if self.registry.is_available(i)]
        # The device is asked for (torch imported) only when a learned stage could run.
        device = self.device_kind() if present else (self._device_kind or "cpu")
        fitted = AutoBudget(self.registry.is_available, megapixels, device, budget)
        plan, fit = fit_learned(plan, self.auto, fitted)
        for note in fit.notes:
            log.info("Auto: %s", note)
        return plan, fit

    def _say_expected(self, plan: Plan, image: np.ndarray) -> None:
        """Log the expected time of each learned stage of a hand-made ``plan`` before it runs
        (the CLI shows it as a log line)."""
        megapixels = image.shape[0] * image.shape[1] / 1e6
        for stage_id in plan.ids:
            if stage_id in COSTS:  # a warning, so that the CLI shows it without -v
                log.warning("expected: %s", describe_expected(stage_id, megapixels,
                                                           self.device_kind()))

    def _resolve(self, stage_id: str, run: _Run) -> str | None:
        """The stage that runs for ``stage_id`` (Registry.resolve with this pipeline's
        fallbacks; a stage the Manual plan names is never replaced); fallbacks noted in ``run``."""
        try:
            return self.registry.resolve(stage_id, self.fallbacks, run.named, run.fallbacks)
        except MemoryError:
            raise StageError(stage_id, "out of memory while loading its models") from None

    def _options(self, planned: PlannedStage, run: _Run) -> dict[str, Any]:
        merged = {**run.overrides.get(planned.id, {}), **planned.options}
        return self.registry.spec(planned.id).resolve_options(merged)

    def _run_stage(
        self,
        planned: PlannedStage,
        work: Work,
        records: list[StageRecord],
        report: PipelineProgress,
        start: float,
        span: float,
        run: _Run,
    ) -> Work:
        stage_id = self._resolve(planned.id, run)
        if stage_id is None:
            return work
        if stage_id != planned.id:
            planned = PlannedStage(stage_id)
        spec = self.registry.spec(planned.id)
        options = self._options(planned, run)
        if any(r.id == planned.id and r.options == options for r in records):
            return work  # a fallback that already ran (e.g. the detector before triage)

        def stage_progress(fraction: float, text: str) -> None:
            report(start + span * min(max(fraction, 0.0), 1.0), f"{spec.title}: {text}")

        stage_progress(0.0, "starting")
        began = time.perf_counter()
        try:
            stage = self.registry.build(planned.id)
            output: StageOutput = stage.run(work, options, stage_progress)
        except RestorerError:
            raise
        except MemoryError:
            raise StageError(spec.id, "out of memory: try a smaller photo") from None
        except Exception as exc:  # a bug or a library failure inside one stage
            log.debug("stage %s failed", spec.id, exc_info=True)
            raise StageError(spec.id, f"{type(exc).__name__}: {exc}") from exc
        seconds = time.perf_counter() - began
        log.info("stage %s took %.3f s", spec.id, seconds)
        records.append(StageRecord(id=spec.id, kind=spec.kind.value, title=spec.title,
                                   seconds=seconds, options=options, image=output.image, mask=output.mask,
                                   info=dict(output.info), masks=output.masks))
        mask = output.mask
        if mask is not None and run.print_region is not None and spec.kind == StageKind.DETECT:
            mask = mask & run.print_region  # the mount is never damage
        if mask is not None and run.user_mask is not None and spec.kind == StageKind.DETECT:
            mask = mask | run.user_mask
        return Work(
            image=work.image if output.image is None else output.image,
            mask=work.mask if mask is None else mask,
            triage=work.triage if output.triage is None else output.triage,
        )


@dataclass(frozen=True)
class _Run:
    """Per-call state of one run (the pipeline itself is shared between threads)."""

    overrides: Mapping[str, Mapping[str, Any]]
    user_mask: np.ndarray | None
    print_region: np.ndarray | None = None  # bool (H, W), True on the print; None: no mount
    named: frozenset[str] = frozenset()  # stages a Manual plan names (never replaced)
    fallbacks: list[str] = field(default_factory=list)  # what could not be built, and instead


def _tone_reference(image: np.ndarray, tone: Tone, records: list[StageRecord]
                    ) -> tuple[np.ndarray, Tone]:
    """The photo whose tone the result keeps, and that tone: the input's, or once a tone stage
    has restored it, that stage's output (or retone would undo the restored tone); once a
    colour stage has run, its output (its colours are kept)."""
    kinds = (StageKind.TONE.value, StageKind.COLOUR.value)
    toned = [r for r in records if r.kind in kinds and r.image is not None]
    if not toned:
        return image, tone
    return toned[-1].image, analyse_tone(toned[-1].image)
