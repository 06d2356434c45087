"""The mount: found on generated mounted prints, excluded from the mask, left unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from restorer.mount import crop_to_print, find_print
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
