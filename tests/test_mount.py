"""The mount: found on generated mounted prints, excluded from the mask, left unchanged, and
cut off when the crop to the print is asked for."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from restorer.mount import PrintCrop, crop_to_print, find_print
from restorer.pipeline import Pipeline
from restorer.planner import PlannedStage, plan_manual
from restorer.registry import default_registry
from restorer.synth_tone import Fade, fade, mount


def _photo() -> np.ndarray:
    return data.astronaut().astype(np.float32) / 255.0


@pytest.mark.parametrize("seed", range(4))
def test_the_mount_is_found(seed: int) -> None:
    mounted = mount(_photo(), seed, bed=seed % 2 == 1)
    region = find_print(mounted.image)
    assert region.mounted
    on_mount = ~mounted.print_mask
    assert (region.mask & on_mount).sum() / on_mount.sum() < 0.02
    assert (region.mask & mounted.print_mask).sum() / mounted.print_mask.sum() > 0.98
    crop = crop_to_print(mounted.image, region)
    assert abs(crop.shape[0] - 512) <= 24 and abs(crop.shape[1] - 512) <= 24  # a tilted print


def test_a_borderless_photo_is_all_print() -> None:
    region = find_print(_photo())
    assert not region.mounted and region.mask.all()


def test_the_mount_is_excluded_from_the_mask_and_left_unchanged() -> None:
    mounted = mount(fade(_photo(), Fade(0.2, 0.8, "yellow", 0.5)), 2, max_angle=1.5)
    pipeline = Pipeline(default_registry())
    specs = {s.id: s for s in pipeline.registry.specs()}
    everything = {"detect.morph": {}}
    plan = plan_manual([PlannedStage("detect.morph"), PlannedStage("inpaint.telea"),
                        PlannedStage("tone.restore")], specs)
    result = pipeline.run(mounted.image, plan, options=everything)
    outside = ~find_print(mounted.image).mask
    assert not result.mask[outside].any()
    assert np.array_equal(result.image[outside], mounted.image[outside])
    assert not np.allclose(result.image[mounted.print_mask], mounted.image[mounted.print_mask])


def _box_error(found: tuple[int, ...], truth: tuple[int, ...]) -> int:
    return max(abs(a - b) for a, b in zip(found, truth))


@pytest.mark.parametrize("seed", range(4))
def test_the_crop_to_the_print_cuts_the_result_to_the_prints_box(seed: int) -> None:
    mounted = mount(_photo(), seed, max_angle=0.0, bed=seed % 2 == 1)
    pipeline = Pipeline(default_registry())
    kept = pipeline.run(mounted.image)
    cropped = pipeline.run(mounted.image, crop_to_print=True)
    crop = cropped.crop
    assert kept.crop is None and kept.report()["crop_to_print"] is None
    assert crop.mounted and _box_error(crop.box, mounted.box) <= 2
    x0, y0, x1, y1 = crop.box
    assert cropped.image.shape == (y1 - y0, x1 - x0, 3)
    assert np.array_equal(cropped.image, kept.image[y0:y1, x0:x1])  # a final cut, nothing else
    assert cropped.input is mounted.image                          # the input stays whole
    assert cropped.mask is None or cropped.mask.shape == mounted.image.shape[:2]
    report = cropped.report()
    assert report["crop_to_print"]["box"] == list(crop.box) and report["crop_to_print"]["cropped"]
    assert report["size"] == [x1 - x0, y1 - y0]


def test_a_tilted_print_is_cut_to_its_bounding_box() -> None:
    mounted = mount(_photo(), 3, max_angle=2.0)
    ys, xs = np.nonzero(mounted.print_mask)
    truth = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    crop = Pipeline(default_registry()).run(mounted.image, crop_to_print=True).crop
    assert crop.mounted and _box_error(crop.box, truth) <= 3


def test_an_unmounted_photo_is_not_cropped_and_the_result_says_so() -> None:
    photo = _photo()
    result = Pipeline(default_registry()).run(photo, crop_to_print=True)
    assert not result.crop.mounted and result.image.shape == photo.shape
    assert result.crop.box == (0, 0, photo.shape[1], photo.shape[0])
    assert "not cropped" in result.crop.note()
    assert result.report()["crop_to_print"]["cropped"] is False


def test_the_crop_scales_to_an_upscaled_result() -> None:
    crop = PrintCrop((10, 20, 50, 60), (100, 80), True)
    image = np.arange(200 * 160, dtype=np.float32).reshape(200, 160)
    assert np.array_equal(crop.apply(image), image[40:120, 20:100])    # a result at 2x
    whole = PrintCrop((0, 0, 80, 100), (100, 80), False)
    assert whole.apply(image) is image
