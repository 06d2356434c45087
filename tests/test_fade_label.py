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


def test_a_toned_print_is_faded_when_its_blacks_are_lifted_not_when_it_is_only_dark() -> None:
    clean = _grey()
    # A mildly faded sepia print: blacks lifted to 0.17, whites down to 0.88 (range lost ~0.3,
    # under the grey rule's 0.40, as on the pale historic sepia prints).
    mild = sepia(fade(clean, Fade(black=0.17, white=0.88, cast="none", cast_strength=0.0)))
    assert faded_label(mild) > 0.7
    assert faded_label(np.repeat(mild.mean(axis=2, keepdims=True), 3, axis=2)) < 0.3
    # A dark toned frame: the same range lost, all of it at the top; its blacks are black.
    dark = sepia(fade(clean, Fade(black=0.0, white=0.68, cast="none", cast_strength=0.0)))
    assert faded_label(dark) < 0.1


def test_the_summary_line_names_what_was_found_not_the_old_four_classes() -> None:
    from restorer.stages.base import TriageResult

    triage = TriageResult(confidences={"clean": 0.9, "blurred": 0.05, "cracked": 0.05,
                                       "both": 0.0},
                          blurred=False, cracked=False, method="test",
                          labels={"blurred": 0.05, "cracked": 0.05, "faded": 0.83,
                                  "spotted": 0.55})
    assert triage.label == "clean"
    assert triage.headline == "faded 0.83, spotted 0.55"
    nothing = TriageResult(confidences=triage.confidences, blurred=False, cracked=False,
                           method="test", labels={"faded": 0.1})
    assert nothing.headline == "clean"
