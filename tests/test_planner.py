"""Planning is pure: auto plans follow the triage, manual plans are validated."""

from __future__ import annotations

import pytest

from restorer import AutoMethods, PlanError, PlannedStage, default_registry, plan_auto, plan_manual
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
