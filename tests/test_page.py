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
