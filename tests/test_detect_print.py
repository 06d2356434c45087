"""Old-print damage detectors (detect.print, detect_kinds, masks, print_labels) on generated
damage over scikit-image's photos, seeded.

Floors and ceilings are the measured values (2026-12-07, these detectors, seeds below) with a
margin: they say the detector finds a share of its kind and leaves a clean photo alone, not
that it is good (docs/damage.md has the figures).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from skimage import data

from restorer import synth_print
from restorer.imaging import load_image
from restorer.masks import component_stats, grow, hysteresis
from restorer.stages.base import Work
from restorer.stages.detect_kinds import crease_mask, hole_mask, spot_mask
from restorer.stages.detect_print import (KINDS, CrackParams, PrintDetector, crack_mask,
                                          detect_print_damage)
from restorer.stages.print_labels import CALIBRATION, print_labels
from restorer.stages.triage_labels import label_probabilities

SEGNET = Path(__file__).resolve().parents[1] / "weights" / "detector_segnet.safetensors"


def _found(mask: np.ndarray, truth: np.ndarray) -> float:
    return float((mask & truth).sum() / max(truth.sum(), 1))


def _half(photo: np.ndarray) -> np.ndarray:
    return cv2.resize(photo, (photo.shape[1] // 2, photo.shape[0] // 2),
                      interpolation=cv2.INTER_AREA)


def test_hysteresis_follows_a_faint_stretch_joined_to_a_strong_one():
    score = np.zeros((20, 40), np.float32)
    score[10, 2:30] = 0.3   # a faint line ...
    score[10, 5] = 0.9      # ... with one sure pixel on it
    score[3, 2:30] = 0.3    # a faint line with no sure pixel
    mask = hysteresis(score, 0.2, 0.8)
    assert mask[10, 2:30].all() and not mask[3].any()
    with pytest.raises(ValueError):
        hysteresis(score, 0.9, 0.1)


def test_grow_and_component_stats():
    mask = np.zeros((21, 21), bool)
    mask[10, 10] = True
    grown = grow(mask, 2)
    assert grown[8, 10] and grown[10, 12] and not grown[8, 8] and grow(mask, 0).sum() == 1
    mask[0:4, 0:4] = True
    labels, stats = component_stats(mask)
    assert len(stats) == 3 and labels[10, 10] != labels[0, 0]


def test_crack_rule_takes_the_faint_neighbours_of_a_found_stretch():
    probability = np.zeros((32, 64), np.float32)
    probability[16, 4:60] = 0.25
    probability[16, 30] = 0.9
    image = np.zeros((32, 64, 3), np.float32)
    plain = crack_mask(probability, image, 0.5, CrackParams(high=1.0, plain=True))
    followed = crack_mask(probability, image, 0.5, CrackParams(low=0.4, high=1.0))
    assert plain.sum() == 1 and followed[16, 4:60].all()


@pytest.mark.parametrize("name", ["coffee", "chelsea", "astronaut"])
def test_spots_are_found_and_a_clean_photo_is_left_alone(photos, name):
    photo = photos[name]
    shares = []
    for seed in range(3):
        sample = synth_print.print_damage(photo, np.random.default_rng([26, seed]),
                                          kinds=["spot"], counts={"spot": (2, 2)})
        shares.append(_found(spot_mask(sample.image), sample.masks["spot"]))
    assert np.mean(shares) > 0.03, shares
    assert spot_mask(photo).mean() < 0.015  # astronaut: 1.04 % (its suit and flag)
    again = synth_print.print_damage(photo, np.random.default_rng([26, 0]), kinds=["spot"],
                                     counts={"spot": (2, 2)})
    assert np.array_equal(spot_mask(again.image), spot_mask(again.image))


def _corner(photo: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``photo`` with its top-left corner torn off to white paper, and the truth."""
    truth = np.zeros(photo.shape[:2], np.uint8)
    jag = np.array([[0, 0], [size, 0], [size * 0.7, size * 0.3], [size * 0.4, size * 0.5],
                    [size * 0.2, size * 0.8], [0, size]], np.int32)
    cv2.fillPoly(truth, [jag], 1)
    damaged = photo.copy()
    rng = np.random.default_rng(5)
    paper = np.array([0.95, 0.93, 0.86], np.float32) + rng.normal(0, 0.004, photo.shape)
    damaged[truth > 0] = paper[truth > 0]
    return damaged.astype(np.float32), truth > 0


# Not camera: its top-left corner is light grey sky, and a hole whose edge with the photo has
# little contrast is missed (the boundary test; docs/damage.md). IoU measured 0.978 (coffee,
# chelsea) and 0.996 (astronaut), 2026-12-08.
@pytest.mark.parametrize("name", ["coffee", "chelsea", "astronaut"])
def test_a_missing_corner_is_found_and_a_clean_photo_has_none(photos, name):
    photo = _half(photos[name])
    damaged, truth = _corner(photo, 90)
    mask = hole_mask(damaged)
    assert _found(mask, truth) > 0.8
    assert (mask & truth).sum() / (mask | truth).sum() > 0.9
    assert (mask & ~grow(truth, 6)).mean() < 0.005
    assert not hole_mask(photo).any()


@pytest.mark.parametrize("name", ["coffee", "rocket"])
def test_generated_holes_are_found_on_some_seeds(name):
    """The training generator's holes at half size, twelve seeds: measured IoU above 0.8 on 3
    (coffee) and 4 (rocket) of them, 0 on the others (bites and tears with a soft or
    low-contrast edge, or shaded by their rim of paper fibres, are missed; docs/damage.md)."""
    photo = _half(load_image(getattr(data, name)()))
    ious = []
    for seed in range(12):
        sample = synth_print.print_damage(photo, np.random.default_rng([26, seed]),
                                          kinds=["hole"], counts={"hole": (1, 1)})
        mask, truth = hole_mask(sample.image), sample.masks["hole"]
        ious.append((mask & truth).sum() / max((mask | truth).sum(), 1))
    assert sum(iou > 0.8 for iou in ious) >= 3, ious
    assert all(iou > 0.8 or iou == 0.0 for iou in ious), ious  # found whole or not at all


# Flat light skies and backdrops at the photo's edge (camera's and rocket's skies, astronaut's
# grey backdrop, coffee's white table) are not holes, at full and half size.
@pytest.mark.parametrize("name", ["camera", "rocket", "astronaut", "coffee"])
@pytest.mark.parametrize("half", [False, True])
def test_flat_skies_and_backdrops_are_not_holes(photos, name, half):
    photo = load_image(data.rocket()) if name == "rocket" else photos[name]
    photo = _half(photo) if half else photo
    assert not hole_mask(photo).any()
    assert print_labels(photo)["torn"] < 0.5


def test_the_mount_is_never_a_hole(photos):
    photo = _half(photos["coffee"])
    mounted = np.pad(photo, ((40, 40), (40, 40), (0, 0)), constant_values=0.9)
    mounted[..., 2] -= 0.05  # a cream card mount
    mounted = mounted.astype(np.float32)
    from restorer.mount import find_print

    region = find_print(mounted)
    assert region.mounted
    outside = ~region.mask
    assert not (hole_mask(mounted, outside=outside) & outside).any()
    damaged, truth = _corner(photo, 90)
    mounted[40:-40, 40:-40] = damaged
    found = hole_mask(mounted, outside=outside)
    assert _found(found[40:-40, 40:-40], truth) > 0.8 and not (found & outside).any()


def test_a_crease_across_a_smooth_photo_is_found():
    ys, xs = np.mgrid[0:256, 0:384].astype(np.float32)
    photo = np.stack([0.3 + 0.4 * xs / 384, 0.4 + 0.2 * ys / 256, 0.5 * np.ones_like(xs)], 2)
    shares = []
    for seed in range(3):
        sample = synth_print.print_damage(photo, np.random.default_rng([27, seed]),
                                          kinds=["crease"], counts={"crease": (1, 1)})
        shares.append(_found(crease_mask(sample.image), sample.masks["crease"]))
    assert max(shares) > 0.3, shares
    assert not crease_mask(photo).any()


@pytest.fixture(scope="module")
def detector() -> PrintDetector:
    return PrintDetector(SEGNET)


def test_stage_gives_per_kind_masks_that_make_up_the_mask(photos, detector):
    photo = _half(photos["chelsea"])
    sample = synth_print.print_damage(photo, np.random.default_rng(3), kinds=["crack", "spot"])
    options = PrintDetector.spec.defaults
    out = detector.run(Work(image=sample.image), options, lambda f, t: None)
    assert set(out.masks) == set(KINDS)
    assert np.array_equal(np.logical_or.reduce(list(out.masks.values())), out.mask)
    assert not out.masks["crease"].any() and not out.masks["hole"].any()  # off by default
    # Measured 0.12 with the cracks averaged over flips (0.19 without: on this small photo the
    # average drops marginal stretches, and its false alarms fall from 0.21 % to 0.05 %).
    assert _found(out.masks["crack"], sample.masks["crack"]) > 0.1
    assert 0.0 < out.info["defect_fraction"] < 0.3


def test_stage_follows_more_of_the_cracks_than_the_segnet_threshold(photos, detector):
    from restorer.stages.detect_learned import segnet_probability

    photo = _half(photos["coffee"])
    found_print, found_plain = [], []
    for seed in range(2):
        sample = synth_print.print_damage(photo, np.random.default_rng([28, seed]),
                                          kinds=["crack"])
        plain = segnet_probability(detector.runtime, sample.image) >= detector.threshold
        masks = detect_print_damage(sample.image, detector.runtime, detector.threshold)
        found_print.append(_found(masks.masks["crack"], sample.masks["crack"]))
        found_plain.append(_found(plain, sample.masks["crack"]))
    assert np.mean(found_print) > np.mean(found_plain) + 0.05, (found_print, found_plain)


def test_spotted_label_has_a_confidence_and_triage_keeps_it(photos):
    photo = _half(photos["coffee"])
    labels = print_labels(photo)
    assert set(labels) == set(CALIBRATION) == {"spotted", "torn"}
    assert 0.0 <= labels["spotted"] < 0.5  # the clean photo is not called spotted
    assert 0.0 <= labels["torn"] < 0.5
    measured = label_probabilities(0.1, 0.2, photo, damage=print_labels)
    assert list(measured) == ["blurred", "cracked", "torn", "spotted"]
    with pytest.raises(ValueError):
        label_probabilities(0.1, 0.2, photo, damage=lambda image: {"cracked": 1.0})


def test_spots_are_left_out_when_triage_did_not_find_the_photo_spotted(photos, detector):
    from restorer.stages.base import TriageResult

    photo = _half(photos["chelsea"])
    sample = synth_print.print_damage(photo, np.random.default_rng(4), kinds=["spot"])
    def triage(labels: dict[str, float]) -> TriageResult:
        return TriageResult(confidences={"clean": 1.0}, blurred=False, cracked=False,
                            method="test", labels=labels)

    options = PrintDetector.spec.defaults
    spotted = detector.run(Work(image=sample.image, triage=triage({"spotted": 0.9})), options,
                           lambda f, t: None)
    plain = detector.run(Work(image=sample.image, triage=triage({"spotted": 0.1})), options,
                         lambda f, t: None)
    assert spotted.masks["spot"].any() and not plain.masks["spot"].any()


def test_corners_of_letters_are_not_spots_but_specks_beside_them_are() -> None:
    """A median background leaves the corners of thick strokes behind (as on a real photo of
    painted characters); the ring test drops them and keeps the isolated specks."""
    rng = np.random.default_rng(0)
    grey = np.full((512, 512), 0.2, np.float32) + rng.normal(0, 0.02, (512, 512)).astype(np.float32)
    strokes = np.zeros((512, 512), np.uint8)
    for x in range(40, 480, 110):
        cv2.rectangle(strokes, (x, 60), (x + 70, 200), 1, 14)
        cv2.line(strokes, (x, 300), (x + 70, 440), 1, 14)
        cv2.line(strokes, (x + 70, 300), (x, 440), 1, 14)
    grey[strokes > 0] = 0.85
    specks = np.zeros((512, 512), np.uint8)
    for centre in [(95, 250), (205, 250), (315, 250), (425, 250), (30, 480), (480, 30)]:
        cv2.circle(specks, centre, 3, 1, -1)
    grey[specks > 0] = 0.8
    image = np.repeat(np.clip(grey, 0, 1)[..., None], 3, axis=2)
    near_strokes = cv2.dilate(strokes, np.ones((9, 9), np.uint8)) > 0
    plain, ringed = spot_mask(image, isolated=False), spot_mask(image)
    assert (plain & near_strokes).sum() > 5_000  # without the test: the corners are "spots"
    assert (ringed & near_strokes).sum() < 0.05 * (plain & near_strokes).sum()
    assert (ringed & (specks > 0)).sum() == (specks > 0).sum()


def test_torn_photo_has_its_hole_found_by_the_stage_after_triage(photos, detector):
    from restorer.stages.base import TriageResult

    damaged, truth = _corner(_half(photos["chelsea"]), 90)
    torn = TriageResult(confidences={"clean": 0.0}, blurred=False, cracked=False,
                        method="test", labels={"torn": 0.9})
    options = PrintDetector.spec.defaults
    assert options["holes"] is False
    found = detector.run(Work(image=damaged, triage=torn), options, lambda f, t: None)
    plain = detector.run(Work(image=damaged), options, lambda f, t: None)
    assert _found(found.masks["hole"], truth) > 0.8 and not plain.masks["hole"].any()
