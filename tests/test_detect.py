"""Morphological detection on seeded synthetic cracks over scikit-image's photos.

Thresholds are the measured values at the default options with a margin (2026-11-23, this
detector; ``bench/classical.py`` gives the wider picture):

- crack IoU against the truth (coverage >= 0.3), mean of four seeds: astronaut 0.34,
  coffee 0.53, chelsea 0.65 (single seeds go down to 0.20 / 0.40 / 0.35); the test asks for
  0.25 / 0.40 / 0.45 on the mean.
- fraction of the CLEAN photo flagged: astronaut 1.2 %, coffee 1.3 %, chelsea 0.8 %; the test
  allows 2 %. These are real thin structures (a cup rim, the suit's seams) that morphology cannot
  tell from cracks; the learned false-alarm filter is meant to remove them.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from restorer import synth
from restorer.stages.base import Work
from restorer.stages.detect import (MorphologicalDetector, MorphParams, detect_morphological,
                                    tophat_responses)

IOU_FLOOR = {"astronaut": 0.25, "coffee": 0.40, "chelsea": 0.45}
FALSE_POSITIVE_CEILING = 0.02


def _iou(mask: np.ndarray, truth: np.ndarray) -> float:
    return float((mask & truth).sum() / (mask | truth).sum())


@pytest.mark.parametrize("name", sorted(IOU_FLOOR))
def test_finds_synthetic_cracks(photos, name):
    scores = []
    for seed in range(4):
        damaged = synth.damage(photos[name], np.random.default_rng([7, seed]))
        assert damaged.mask.any()
        scores.append(_iou(detect_morphological(damaged.image), damaged.mask))
    assert np.mean(scores) > IOU_FLOOR[name], scores


@pytest.mark.parametrize("name", sorted(IOU_FLOOR))
def test_clean_photo_has_few_false_alarms(photos, name):
    assert detect_morphological(photos[name]).mean() < FALSE_POSITIVE_CEILING


def _single_crack(photo: np.ndarray, polarity: str, width: tuple[float, float], seed: int):
    rng = np.random.default_rng(seed)
    alpha = synth.crack_alpha(photo.shape[:2], rng, count=2, width=width)
    return synth.apply_cracks(photo, alpha, rng, polarity=polarity), alpha >= synth.TRUTH_ALPHA


@pytest.mark.parametrize("polarity", ["light", "dark"])
@pytest.mark.parametrize("width", [(1.0, 1.5), (4.0, 5.0)])
def test_each_polarity_and_width_is_found_by_its_own_filter(photos, polarity, width):
    image, truth = _single_crack(photos["chelsea"], polarity, width, seed=3)
    own = detect_morphological(image, MorphParams(polarity=polarity))
    other = detect_morphological(image, MorphParams(polarity="dark" if polarity == "light"
                                                    else "light"))
    own_recall = (own & truth).sum() / truth.sum()
    assert own_recall > 0.5
    assert (other & truth).sum() / truth.sum() < 0.2 * own_recall


def test_linear_tophat_keeps_lines_and_drops_blobs():
    luma = np.full((120, 120), 0.4, np.float32)
    cv2.line(luma, (10, 20), (110, 90), 0.9, 2)  # a light scratch
    cv2.circle(luma, (40, 90), 12, 0.9, -1)  # a light blob wider than the element
    cv2.line(luma, (10, 110), (110, 60), 0.05, 2)  # a dark crack
    light, dark = tophat_responses(luma, size=11)
    assert light[55, 60] > 0.3 and dark[85, 60] > 0.2  # on the lines
    assert light[90, 40] < 0.05  # the blob's centre
    assert light[85, 60] < 0.05 and dark[55, 60] < 0.05  # each filter sees only its polarity


def test_sensitivity_orders_the_masks(photos):
    damaged = synth.damage(photos["coffee"], np.random.default_rng(11))
    low, mid, high = (detect_morphological(damaged.image, MorphParams(sensitivity=s)).sum()
                      for s in (0.2, 0.5, 0.8))
    assert low <= mid <= high and low < high


def test_grey_and_sepia_prints_are_analysed_on_their_luma(photos):
    grey = np.repeat(photos["camera"][..., :1], 3, axis=2)
    damaged = synth.damage(grey, np.random.default_rng(5))
    grey_damaged = np.repeat(damaged.image.mean(axis=2, keepdims=True), 3, axis=2)
    sepia = np.clip(grey_damaged * np.array([1.0, 0.86, 0.68], np.float32), 0, 1)
    grey_mask = detect_morphological(grey_damaged)
    sepia_mask = detect_morphological(sepia)
    assert _iou(grey_mask, damaged.mask) > 0.15
    assert _iou(sepia_mask, damaged.mask) > 0.15


@pytest.mark.parametrize("width, min_iou", [((1.0, 3.0), 0.3), ((8.0, 20.0), 0.5)])
def test_large_scan_finds_hairlines_and_wide_cracks(photos, width, min_iou):
    """Downscaled analysis plus the coarse pass: both widths are found on a 3.8 MP scan.

    Measured recall 0.91 / 0.80 and IoU 0.40 / 0.66 (hairline / wide; seed 2).
    """
    clean = cv2.resize(photos["chelsea"], (2400, 1600), interpolation=cv2.INTER_CUBIC)
    clean = np.clip(clean, 0, 1)
    damaged = synth.damage(clean, np.random.default_rng(2), crack_width=width)
    mask = detect_morphological(damaged.image, MorphParams(work_pixels=2_000_000))
    assert mask.shape == clean.shape[:2] and mask.dtype == bool
    assert (mask & damaged.mask).sum() / damaged.mask.sum() > 0.7
    assert _iou(mask, damaged.mask) > min_iou


def test_stage_reports_fraction_and_honours_options(photos):
    damaged = synth.damage(photos["chelsea"], np.random.default_rng(1))
    stage = MorphologicalDetector()
    options = stage.spec.defaults
    out = stage.run(Work(damaged.image), options, lambda f, m: None)
    assert out.mask.shape == damaged.image.shape[:2] and out.image is None
    assert out.info["defect_fraction"] == pytest.approx(out.mask.mean())
    grown = stage.run(Work(damaged.image), dict(options, dilate=2), lambda f, m: None).mask
    assert grown.sum() > out.mask.sum() and not (out.mask & ~grown).any()
