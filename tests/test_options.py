"""Declared stage options: every registered stage declares type and range, and values are
checked against them before a run."""

from __future__ import annotations

import math

import pytest

from restorer import PlanError, default_registry, plan_manual
from restorer.stages.base import Option


def test_every_registered_stage_declares_its_options_with_a_valid_default():
    for spec in default_registry().specs():
        for name, option in spec.options.items():
            assert isinstance(option, Option), f"{spec.id}.{name} is not declared"
            assert option.check(name, option.default) == option.default
        assert spec.resolve_options({}) == spec.defaults


@pytest.mark.parametrize("value", [5, -0.1, math.nan, math.inf, -math.inf, "0.7", True, None, [0.5]])
def test_out_of_range_or_wrong_type_is_refused_naming_the_option_and_range(value):
    spec = default_registry().spec("detect.morph")
    with pytest.raises(PlanError) as caught:
        spec.resolve_options({"sensitivity": value})
    message = str(caught.value)
    assert "detect.morph.sensitivity" in message and "from 0 to 1" in message


def test_values_are_normalised():
    spec = default_registry().spec("inpaint.ns")
    assert spec.resolve_options({"radius": 5.0}) == {"radius": 5}
    with pytest.raises(PlanError, match="whole number from 1 to 25"):
        spec.resolve_options({"radius": 2.5})
    deblur = default_registry().spec("deblur.rl")
    assert deblur.resolve_options({"sigma": None})["sigma"] is None
    assert deblur.resolve_options({"sigma": 2})["sigma"] == 2.0


def test_choices_and_flags_are_exact():
    face = default_registry().spec("face.gfpgan")
    assert face.resolve_options({"upscale": 2.0})["upscale"] == 2
    for bad in ({"upscale": 3}, {"upscale": True}, {"faces": "everyone"}, {"aligned": 1}):
        with pytest.raises(PlanError):
            face.resolve_options(bad)


def test_unknown_option_names_what_is_accepted():
    with pytest.raises(PlanError, match="accepts: radius"):
        default_registry().spec("inpaint.telea").resolve_options({"radious": 3})


def test_manual_plan_refuses_a_bad_value_before_any_work():
    specs = {s.id: s for s in default_registry().specs()}
    from restorer.planner import PlannedStage

    with pytest.raises(PlanError, match="sensitivity"):
        plan_manual([PlannedStage("detect.morph", {"sensitivity": 5}), "inpaint.telea"], specs)


def test_a_declaration_whose_default_does_not_fit_is_a_programming_error():
    with pytest.raises(PlanError):
        Option.number(2.0, 0.0, 1.0)
    with pytest.raises(ValueError):
        Option.integer(1, 5, 2)
