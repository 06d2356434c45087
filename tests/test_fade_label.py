"""Triage's "faded" label: measured on grey and toned prints, absent on colour prints."""

from __future__ import annotations

import numpy as np
from skimage import data

from restorer.fade import faded_label
from restorer.stages.triage_labels import label_probabilities
from restorer.synth_tone import Fade, fade, sepia


def _grey(name: str = "camera") -> np.ndarray:
    """A clean full-range grey photo, float32 (H, W, 3) in [0, 1]."""
    grey = getattr(data, name)().astype(np.float32) / 255.0
    return np.repeat(grey[..., None], 3, axis=2)


def test_a_pale_grey_or_sepia_print_is_faded_and_the_clean_one_is_not() -> None:
    clean = _grey()
    assert faded_label(clean) < 0.1
    pale = fade(clean, Fade(black=0.25, white=0.75, cast="none", cast_strength=0.0))
    assert faded_label(pale) > 0.9
    assert faded_label(sepia(pale)) > 0.9
    assert faded_label(sepia(clean)) < 0.1  # a full-range sepia print: a tone, not a fault


def test_a_colour_print_has_no_faded_label() -> None:
    colour = data.astronaut().astype(np.float32) / 255.0
    assert faded_label(colour) is None
    assert "faded" not in label_probabilities(0.1, 0.2, colour, faded_label)
    labels = label_probabilities(0.1, 0.2, _grey(), faded_label)
    assert list(labels) == ["blurred", "cracked", "faded"] and 0.0 <= labels["faded"] <= 1.0
