"""restorer.page: what the page shows and keeps, tested without serving it."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from restorer.errors import PlanError, RestorerError
from restorer.page import (FaceChoice, editor_mask, manual_plan, mask_layer, model_rows,
                           rounded)
from restorer.registry import default_registry

REPO = Path(__file__).resolve().parents[1]


def test_no_module_of_the_package_imports_gradio() -> None:
    for path in (REPO / "restorer").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names]
        names += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [n for n in names if n.split(".")[0] == "gradio"], path


def test_a_painted_layer_round_trips_to_the_mask() -> None:
    rng = np.random.default_rng(0)
    mask = rng.random((12, 20)) > 0.7
    value = {"background": None, "layers": [mask_layer(mask)], "composite": None}
    assert np.array_equal(editor_mask(value, mask.shape), mask)
    assert editor_mask({"layers": []}, mask.shape) is None
    with pytest.raises(RestorerError, match="does not match the photo's size"):
        editor_mask(value, (10, 20))


def test_manual_plan_runs_the_ticked_kinds_in_order_and_refuses_unknown_ones() -> None:
    specs = {s.id: s for s in default_registry().specs()}
    face = FaceChoice(None, 0.7, "all", 64, "2")
    plan = manual_plan(specs, ["inpaint", "detect", "deblur"], "detect.morph", 0.4,
                       "inpaint.telea", "deblur.rl", face, has_mask=False)
    assert plan.ids == ("detect.morph", "inpaint.telea", "deblur.rl")
    assert face.options()["upscale"] == 2
    with pytest.raises(RestorerError, match="unknown stage kind 'sharpen'"):
        manual_plan(specs, ["sharpen"], "detect.morph", 0.4, "inpaint.telea", "deblur.rl",
                    face, has_mask=False)
    with pytest.raises(PlanError):
        manual_plan(specs, ["inpaint"], "detect.morph", 0.4, "inpaint.telea", "deblur.rl",
                    face, has_mask=False)   # inpainting needs a mask or a detector


def test_rounded_and_untracked_model_rows() -> None:
    assert rounded({"a": [1.234567, (2.0000001,)], "b": "x"}) == {"a": [1.235, [2.0]], "b": "x"}
    assert model_rows(None)[0][2] == "not tracked by this server"


def test_the_overlay_colours_each_kind_of_damage_and_the_note_names_them() -> None:
    """detect.print's per-kind masks reach the page: cracks red, spots yellow, with a legend."""
    from skimage import data

    from restorer import synth_print
    from restorer.page import LEGEND, legend_parts, result_note, result_overlay
    from restorer.planner import plan_manual
    from restorer.service import ServiceConfig, build_pipeline

    photo = data.astronaut()[::2, ::2].astype(np.float32) / 255.0
    damaged = synth_print.print_damage(photo, np.random.default_rng(3),
                                       kinds=["crack", "spot"]).image
    pipeline = build_pipeline(ServiceConfig(offline=True, device="cpu"))
    specs = {s.id: s for s in pipeline.registry.specs()}
    result = pipeline.run(damaged, plan_manual(["detect.print", "inpaint.telea"], specs))
    parts = dict(legend_parts(result))
    assert {"crack", "spot"} <= set(parts)
    assert not (parts["crack"] & parts["spot"]).any()
    assert np.array_equal(np.logical_or.reduce(list(parts.values())), result.mask)
    overlay = result_overlay(result)
    for kind in ("crack", "spot"):
        tint = overlay[parts[kind]].mean(axis=0)
        expected = 0.65 * np.asarray(LEGEND[kind][0]) + 0.35 * damaged[parts[kind]].mean(axis=0)
        assert np.allclose(tint, expected, atol=1e-4)
    assert np.array_equal(overlay[~result.mask], damaged[~result.mask])
    note = result_note(result)
    assert "red = cracks and scratches" in note and "yellow = spots, foxing, dust" in note


def test_auto_colourise_gives_the_registrys_reason_when_the_stage_cannot_run() -> None:
    """The published DDColor entry has no sha256 here: the checkbox's line says why, ticking it
    is refused in one line naming the fix, and leaving it off is no error."""
    from restorer.page import auto_colourise, colourise_info
    from restorer.service import ServiceConfig, build_pipeline

    pipeline = build_pipeline(ServiceConfig(offline=True, device="cpu"))
    reason = pipeline.registry.unavailable_reason("colour.ddcolor")
    assert pipeline.auto.colour is None and reason and "weights lock" in reason
    assert colourise_info(pipeline) == f"Unavailable: {reason}"
    assert auto_colourise(pipeline, False) is False
    with pytest.raises(RestorerError) as caught:
        auto_colourise(pipeline, True)
    assert str(caught.value) == f"Colourisation is unavailable: {reason}"
    assert "\n" not in str(caught.value)


def test_auto_colourise_is_on_when_the_stage_can_run() -> None:
    from restorer.page import auto_colourise, colourise_info
    from restorer.pipeline import Pipeline
    from restorer.planner import AutoMethods

    registry = default_registry(weight_check=lambda weight_id: True)   # files "present"
    pipeline = Pipeline(registry, auto=AutoMethods(colour="colour.ddcolor"))
    assert auto_colourise(pipeline, True) is True
    assert colourise_info(pipeline).startswith("Auto: ends with DDColor colourisation")
    # Present but not set up for Auto when the server started: say so, never crash.
    late = Pipeline(registry)
    with pytest.raises(RestorerError, match="restart the server"):
        auto_colourise(late, True)


def test_the_page_compares_like_with_like_after_a_crop_and_says_what_it_cut() -> None:
    from skimage import data

    from restorer.page import before_after, result_note
    from restorer.pipeline import Pipeline
    from restorer.synth_tone import mount

    mounted = mount(data.astronaut().astype(np.float32) / 255.0, 1, max_angle=0.0)
    pipeline = Pipeline(default_registry())
    result = pipeline.run(mounted.image, crop_to_print=True)
    before, after = before_after(result)
    x0, y0, x1, y1 = result.crop.box
    assert np.array_equal(before, mounted.image[y0:y1, x0:x1]) and after is result.image
    assert f"Cropped to the print: {x1 - x0} x {y1 - y0} px" in result_note(result)
    assert result.colour_before_after is None                    # no colour stage ran
    plain = pipeline.run(mounted.image)
    assert before_after(plain)[0] is mounted.image
    assert "ropped" not in result_note(plain) and "Colourised" not in result_note(plain)
