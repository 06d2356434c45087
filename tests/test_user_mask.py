"""The user's mask is used: it replaces detection (default) or is added to it
(``--mask-mode union``), in Auto and Manual alike, and the report says where the mask came
from. A mask file is read the same way whatever its colours."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from cli_support import photo_array, png_bytes
from restorer.cli import main
from restorer.errors import PlanError
from restorer.imaging import load_mask
from restorer.planner import AutoMethods, Plan, PlannedStage, apply_user_mask
from restorer.registry import default_registry

SHAPE = (48, 64)


@pytest.fixture
def user_mask() -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    mask[10:14, 8:50] = True
    return mask


@pytest.fixture
def files(tmp_path, user_mask):
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes(photo_array((64, 48))))
    mask = tmp_path / "mask.png"
    mask.write_bytes(png_bytes(user_mask.astype(np.uint8) * 255))
    return photo, mask


def _run(tmp_path, photo, mask, *extra):
    report, mask_out, out = tmp_path / "r.json", tmp_path / "used.png", tmp_path / "o.png"
    assert main(["restore", str(photo), "-o", str(out), "--mask", str(mask), "--report",
                 str(report), "--mask-out", str(mask_out), *extra]) == 0
    used = np.asarray(Image.open(mask_out)) > 0
    return json.loads(report.read_text()), used, out


def test_auto_uses_the_users_mask_instead_of_detection(files, tmp_path, user_mask):
    photo, mask = files
    data, used, out = _run(tmp_path, photo, mask)
    assert data["mask_source"] == "user" and data["mask_mode"] == "replace"
    assert not any(s.startswith("detect.") for s in data["plan"])
    assert any(s.startswith("inpaint.") for s in data["plan"])  # even if triage saw no damage
    np.testing.assert_array_equal(used, user_mask)
    before, after = np.asarray(Image.open(photo)), np.asarray(Image.open(out))
    if not any(s.startswith(("deblur.", "face.")) for s in data["plan"]):
        np.testing.assert_array_equal(before[~user_mask], after[~user_mask])


def test_manual_detect_is_skipped_when_a_mask_replaces_it(files, tmp_path, user_mask):
    photo, mask = files
    data, used, _ = _run(tmp_path, photo, mask, "--mode", "manual", "--stages",
                         "detect:morph,inpaint:telea")
    assert data["plan"] == ["inpaint.telea"] and "detection skipped" in data["plan_reason"]
    np.testing.assert_array_equal(used, user_mask)


def test_union_adds_the_users_mask_to_what_detection_finds(files, tmp_path, user_mask):
    photo, mask = files
    data, used, _ = _run(tmp_path, photo, mask, "--mode", "manual", "--stages",
                         "detect:morph,inpaint:telea", "--mask-mode", "union",
                         "--set", "detect.morph.sensitivity=1.0")
    assert data["plan"] == ["detect.morph", "inpaint.telea"]
    assert data["mask_source"] == "user+detected"
    assert used[user_mask].all()


def test_auto_union_runs_detection(files, tmp_path, user_mask):
    photo, mask = files
    data, used, _ = _run(tmp_path, photo, mask, "--mask-mode", "union")
    assert data["mask_source"] == "user+detected"
    assert any(stage["id"].startswith("detect.") for stage in data["stages"])
    assert used[user_mask].all()


def _encoded(array: np.ndarray, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("colour", [(255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 255),
                                    (90, 40, 10)])
def test_any_non_black_colour_is_a_defect(colour, user_mask):
    rgb = np.zeros(SHAPE + (3,), np.uint8)
    rgb[user_mask] = colour
    np.testing.assert_array_equal(load_mask(_encoded(rgb), shape=SHAPE), user_mask)


@pytest.mark.parametrize("colour, quality, spread", [((255, 255, 255), 90, 2),
                                                     ((255, 0, 0), 60, 16)])
def test_jpeg_noise_in_black_is_not_a_defect(colour, quality, spread, user_mask):
    # JPEG rings inside the 8 x 8 blocks (16 x 16 for subsampled colour) a stroke touches;
    # black beyond them stays black, and the stroke itself is found.
    rgb = np.zeros(SHAPE + (3,), np.uint8)
    rgb[user_mask] = colour
    read = load_mask(_encoded(rgb, "JPEG", quality=quality), shape=SHAPE)
    ys, xs = np.nonzero(user_mask)
    near = np.zeros_like(user_mask)
    near[max(0, ys.min() - spread):ys.max() + spread + 1,
         max(0, xs.min() - spread):xs.max() + spread + 1] = True
    assert read[user_mask].mean() > 0.95 and not read[~near].any()


def test_alpha_is_used_when_the_mask_has_transparency(user_mask):
    rgba = np.zeros(SHAPE + (4,), np.uint8)
    rgba[..., :3] = 255  # white everywhere: only alpha tells the defect
    rgba[user_mask, 3] = 255
    np.testing.assert_array_equal(load_mask(_encoded(rgba), shape=SHAPE), user_mask)


def test_apply_user_mask_is_a_pure_rule():
    registry = default_registry(weight_check=lambda w: False, weight_path=lambda w: None)
    specs = {s.id: s for s in registry.specs()}
    auto = AutoMethods()
    clean = Plan((), "the photo looks clean")
    assert apply_user_mask(clean, specs, "replace", auto).ids == (auto.inpaint,)
    assert apply_user_mask(clean, specs, "union", auto).ids == (auto.detect, auto.inpaint)
    blurred = Plan((PlannedStage("deblur.rl"),), "triage found blur")
    assert apply_user_mask(blurred, specs, "replace", auto).ids == (auto.inpaint, "deblur.rl")
    manual = Plan((PlannedStage("detect.morph"), PlannedStage("deblur.rl")), "chosen by hand")
    assert apply_user_mask(manual, specs, "replace", None).ids == ("deblur.rl",)
    assert apply_user_mask(manual, specs, "union", None).ids == ("detect.morph", "deblur.rl")
    with pytest.raises(PlanError, match="mask mode"):
        apply_user_mask(manual, specs, "both", None)
