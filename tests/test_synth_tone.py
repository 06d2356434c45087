"""Tone generators are seeded and deterministic; the fade measure reads them."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from restorer.fade import measure_fade
from restorer.synth_tone import Fade, fade, mount, random_fade, sepia


@pytest.fixture()
def photo() -> np.ndarray:
    """A colourful float32 (96, 128, 3) photo with full range: gradients and patches."""
    yy, xx = np.mgrid[0:96, 0:128].astype(np.float32)
    image = np.stack([xx / 127, yy / 95, 1 - xx / 127], axis=2)
    image[10:40, 10:40] = (0.9, 0.2, 0.1)
    image[50:80, 70:110] = (0.05, 0.05, 0.05)
    image[5:20, 90:120] = (1.0, 1.0, 1.0)
    return image.astype(np.float32)


def test_generators_are_seeded_and_deterministic(photo: np.ndarray) -> None:
    one, two, other = random_fade(photo, 7), random_fade(photo, 7), random_fade(photo, 8)
    assert one.truth == two.truth and np.array_equal(one.image, two.image)
    assert one.truth != other.truth
    first, again = mount(photo, 3), mount(photo, 3)
    assert np.array_equal(first.image, again.image)
    assert np.array_equal(first.print_mask, again.print_mask) and first.box == again.box
    assert one.image.dtype == np.float32 and 0.0 <= one.image.min() <= one.image.max() <= 1.0


def test_fade_truth_is_what_the_image_shows(photo: np.ndarray) -> None:
    truth = Fade(black=0.2, white=0.8, cast="none", cast_strength=0.0)
    faded = fade(photo, truth)
    assert faded.min() == pytest.approx(0.2, abs=1e-6) and faded.max() == pytest.approx(0.8)
    assert truth.contrast_lost == pytest.approx(0.4)
    yellow = fade(photo, Fade(0.0, 1.0, "yellow", 1.0))
    assert (yellow[..., 0] >= photo[..., 0] - 1e-6).all()  # cyan dye lost: red lifted
    assert np.allclose(yellow[..., 2], photo[..., 2])  # the yellow dye stays


def test_sepia_is_a_tone(photo: np.ndarray) -> None:
    toned = sepia(photo)
    assert (toned[..., 0] >= toned[..., 2] - 1e-6).all()  # warm everywhere
    assert measure_fade(toned).tone == "toned"
    assert measure_fade(toned).cast == 0.0  # sepia's tint is not a cast


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_fade_measure_reads_the_generated_fade(name: str) -> None:
    image = getattr(data, name)().astype(np.float32) / 255.0
    clean = measure_fade(image)
    assert clean.probability < 0.5
    assert measure_fade(random_fade(image, 1).image).probability > 0.5
    levels = random_fade(image, 1, cast=False)  # levels only: the range shrinks by white - black
    span = levels.truth.white - levels.truth.black
    measured = measure_fade(levels.image)
    assert measured.contrast_lost == pytest.approx(1 - span * (1 - clean.contrast_lost), abs=0.02)


def test_mount_truth_marks_the_print(photo: np.ndarray) -> None:
    mounted = mount(photo, 5, max_angle=0.0)
    x0, y0, x1, y1 = mounted.box
    assert mounted.print_mask[y0:y1, x0:x1].all()
    assert mounted.print_mask.sum() == photo.shape[0] * photo.shape[1]
    assert np.allclose(mounted.image[y0:y1, x0:x1], photo, atol=1e-5)
