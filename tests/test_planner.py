"""Planning is pure: auto plans follow the triage, manual plans are validated."""

from __future__ import annotations

import numpy as np
import pytest

from restorer import AutoMethods, PlanError, PlannedStage, default_registry, plan_auto, plan_manual
from restorer.stages.base import DAMAGE_LABELS, TriageResult
from restorer.stages.triage import triage_from_scores

SPECS = {s.id: s for s in default_registry().specs()}


@pytest.mark.parametrize(
    "sigma, fraction, expected",
    [
        (0.3, 0.0, ()),
        (2.5, 0.0, ("deblur.rl",)),
        (0.3, 0.02, ("detect.morph", "inpaint.telea")),
        (2.5, 0.02, ("detect.morph", "inpaint.telea", "deblur.rl")),
    ],
)
def test_auto_plan_follows_triage(sigma, fraction, expected):
    triage = triage_from_scores(sigma, fraction)
    assert plan_auto(triage).ids == expected
    assert abs(sum(triage.confidences.values()) - 1.0) < 1e-9


def test_auto_clean_photo_says_why():
    plan = plan_auto(triage_from_scores(0.2, 0.0))
    assert plan.stages == () and "clean" in plan.reason


def test_auto_inpaints_before_face():
    methods = AutoMethods(face="face.gfpgan")
    ids = plan_auto(triage_from_scores(3.0, 0.05), methods).ids
    assert ids.index("inpaint.telea") < ids.index("deblur.rl") < ids.index("face.gfpgan")


def test_auto_is_pure():
    triage = triage_from_scores(2.0, 0.01)
    assert plan_auto(triage) == plan_auto(triage)


def test_manual_valid_plan_keeps_options():
    plan = plan_manual([PlannedStage("detect.morph", {"sensitivity": 0.8}), "inpaint.ns"], SPECS)
    assert plan.ids == ("detect.morph", "inpaint.ns")
    assert plan.stages[0].options == {"sensitivity": 0.8}


@pytest.mark.parametrize(
    "stages, kwargs, message",
    [
        ([], {}, "no stage"),
        (["inpaint.ns"], {}, "needs a defect mask"),
        (["deblur.rl", "inpaint.ns"], {"has_mask": True}, "must come before"),
        (["inpaint.ns", "inpaint.telea"], {"has_mask": True}, "two inpaint"),
        (["inpaint.magic"], {"has_mask": True}, "unknown stage"),
        (["triage.heuristic"], {}, "triage always runs"),
        ([PlannedStage("detect.morph", {"bogus": 1})], {}, "no option"),
    ],
)
def test_manual_refusals(stages, kwargs, message):
    with pytest.raises(PlanError, match=message):
        plan_manual(stages, SPECS, **kwargs)


def test_manual_inpaint_with_user_mask():
    assert plan_manual(["inpaint.biharmonic"], SPECS, has_mask=True).ids == ("inpaint.biharmonic",)


def _labelled(**labels: float) -> TriageResult:
    """A triage whose independent labels are ``labels`` (blurred/cracked decisions follow)."""
    return TriageResult(confidences={}, blurred=labels.get("blurred", 0.0) >= 0.5,
                        cracked=labels.get("cracked", 0.0) >= 0.5, method="fixed", labels=labels)


@pytest.mark.parametrize("label", ["cracked", "creased", "spotted", "torn"])
def test_auto_inpaints_every_line_spot_or_hole_label(label):
    assert plan_auto(_labelled(**{label: 0.9})).ids == ("detect.morph", "inpaint.telea")


def test_auto_torn_uses_large_hole_inpainter_when_named():
    methods = AutoMethods(large_inpaint="inpaint.lama")
    assert plan_auto(_labelled(torn=0.8, cracked=0.9), methods).ids == ("detect.morph",
                                                                          "inpaint.lama")
    # Thin damage alone keeps the ordinary inpainter.
    assert plan_auto(_labelled(cracked=0.9), methods).ids == ("detect.morph", "inpaint.telea")


def test_auto_torn_without_large_hole_inpainter_says_so():
    plan = plan_auto(_labelled(torn=0.8))
    assert plan.ids == ("detect.morph", "inpaint.telea")
    assert "large holes need a large-hole inpainter" in plan.reason


def test_auto_faded_runs_tone_in_order():
    methods = AutoMethods(tone="tone.restore", face="face.gfpgan")
    plan = plan_auto(_labelled(faded=0.7, spotted=0.6, blurred=0.9), methods)
    assert plan.ids == ("detect.morph", "inpaint.telea", "tone.restore", "deblur.rl",
                        "face.gfpgan")
    assert "fading" in plan.reason and "spots" in plan.reason


def test_auto_faded_without_tone_stage_changes_nothing_and_says_why():
    plan = plan_auto(_labelled(faded=0.9))
    assert plan.stages == () and "no tone stage" in plan.reason


def test_auto_low_confidences_and_unmeasured_labels_leave_photo_alone():
    assert plan_auto(_labelled(cracked=0.2, creased=0.49, torn=0.1)).stages == ()
    assert plan_auto(_labelled()).stages == ()


def test_triage_reports_independent_labels():
    triage = triage_from_scores(2.5, 0.02)
    assert set(triage.labels) == {"blurred", "cracked"} <= set(DAMAGE_LABELS)
    assert triage.found == {"blurred", "cracked"}
    assert "faded" not in triage.labels  # not measured: absent, not a made-up number
    faded = triage_from_scores(0.3, 0.0, image=np.zeros((8, 8, 3), np.float32),
                               fade=lambda image: 0.8)
    assert faded.labels["faded"] == pytest.approx(0.8) and faded.found == {"faded"}


# ------------------------------------------------------------- Auto's published stages (issue 28)
def _budget(available=lambda s: True, megapixels=0.25, device="cpu", seconds=20.0):
    from restorer.planner import AutoBudget

    return AutoBudget(available, megapixels, device, seconds)


def test_fit_learned_upgrades_classical_stages_whose_files_are_present():
    from restorer.planner import LEARNED, fit_learned

    methods = AutoMethods(detect="detect.segnet", learned=LEARNED)
    plan = plan_auto(_labelled(cracked=0.9, blurred=0.9), methods)
    assert plan.ids == ("detect.segnet", "inpaint.telea", "deblur.rl")
    fitted, fit = fit_learned(plan, methods, _budget(megapixels=0.1, seconds=None))
    assert fitted.ids == ("detect.scratch", "inpaint.lama", "deblur.nafnet")
    assert not fit.skipped_for_time and not fit.notes and fitted.reason == plan.reason
    assert fit_learned(plan, methods, _budget(megapixels=0.1)) == fit_learned(
        plan, methods, _budget(megapixels=0.1))  # pure


def test_fit_learned_keeps_the_fallback_and_says_why_when_a_file_is_missing():
    from restorer.planner import LEARNED, fit_learned

    methods = AutoMethods(detect="detect.segnet", learned=LEARNED)
    plan = plan_auto(_labelled(cracked=0.9), methods)
    fitted, fit = fit_learned(plan, methods, _budget(available=lambda s: s != "inpaint.lama"))
    assert fitted.ids == ("detect.scratch", "inpaint.telea")
    assert "inpaint.telea used instead of inpaint.lama" in fit.notes[0]
    assert "weights pull" in fit.notes[0] and fitted.reason == plan.reason


def test_fit_learned_skips_slow_stages_for_time_and_passes_lama_the_rest():
    from restorer.costs import expected_seconds
    from restorer.planner import LEARNED, fit_learned

    methods = AutoMethods(detect="detect.segnet", learned=LEARNED)
    plan = plan_auto(_labelled(cracked=0.9, blurred=0.9), methods)
    fitted, fit = fit_learned(plan, methods, _budget(megapixels=1.0, seconds=20.0))
    # On a 1 MP photo on the CPU the scratch detector and NAFNet exceed 20 s; LaMa's pass fits.
    assert fitted.ids == ("detect.segnet", "inpaint.lama", "deblur.rl")
    assert set(fit.skipped_for_time) == {"detect.scratch", "deblur.nafnet"}
    assert any("to stay within the 20 s budget" in n and "GPU" in n for n in fit.notes)
    lama = dict(fitted.stages[1].options)
    assert lama["time_budget"] == pytest.approx(20.0, abs=0.1)
    # A small photo: the detector fits and LaMa gets what it leaves.
    fitted, _ = fit_learned(plan, methods, _budget(megapixels=0.25, seconds=20.0))
    assert fitted.ids[:2] == ("detect.scratch", "inpaint.lama")
    left = 20.0 - expected_seconds("detect.scratch", 0.25, "cpu")
    assert dict(fitted.stages[1].options)["time_budget"] == pytest.approx(left, abs=0.1)


def test_fit_learned_leaves_plans_alone_when_auto_prefers_no_learned_stage():
    from restorer.planner import fit_learned

    plan = plan_auto(_labelled(cracked=0.9))
    assert fit_learned(plan, AutoMethods(), _budget())[0] == plan


def test_auto_torn_names_the_large_hole_inpainter_in_its_reason():
    methods = AutoMethods(large_inpaint="inpaint.lama")
    assert "large-hole inpainter inpaint.lama" in plan_auto(_labelled(torn=0.8), methods).reason
    assert "large-hole" not in plan_auto(_labelled(cracked=0.9), methods).reason
