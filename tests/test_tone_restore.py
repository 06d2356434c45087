"""tone.restore: brings back contrast and dyes, keeps greys grey and sepia sepia, clips little."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from restorer.pipeline import Pipeline
from restorer.planner import PlannedStage, plan_manual
from restorer.registry import default_registry
from restorer.stages.tone_restore import CLIP_SHARE, METHODS, restore_tone
from restorer.synth_tone import Fade, fade, sepia
from restorer.tone import analyse_tone


def _photo() -> np.ndarray:
    return data.astronaut().astype(np.float32) / 255.0


def _clipped(image: np.ndarray) -> float:
    """Largest share over channels of pixels at 0 or 1."""
    return float(max(((image[..., c] <= 0.0) | (image[..., c] >= 1.0)).mean() for c in range(3)))


@pytest.mark.parametrize("method", ["stretch", "grayworld"])
def test_fade_reversal_brings_the_print_back(method: str) -> None:
    photo = _photo()
    faded = fade(photo, Fade(0.25, 0.8, "yellow", 0.5))
    restored = restore_tone(faded, method=method)
    assert np.abs(restored - photo).mean() < 0.5 * np.abs(faded - photo).mean()


def test_stretch_neutralises_a_cast_grey() -> None:
    photo = _photo()
    photo[:40, :40] = 0.5  # a neutral grey patch
    faded = fade(photo, Fade(0.2, 0.85, "magenta", 0.6))
    assert np.ptp(faded[:40, :40].mean(axis=(0, 1))) > 0.05  # the cast shows on the grey
    restored = restore_tone(faded)
    assert np.ptp(restored[:40, :40].mean(axis=(0, 1))) < 0.02


def test_clips_at_most_the_stated_share() -> None:
    photo = data.chelsea().astype(np.float32) / 255.0  # few clipped pixels of its own
    faded = fade(photo, Fade(0.15, 0.9, "red", 0.4))
    before = _clipped(faded)
    assert _clipped(restore_tone(faded)) <= before + CLIP_SHARE


def test_grey_stays_grey_and_sepia_stays_sepia() -> None:
    gray = np.repeat(_photo().mean(axis=2, keepdims=True), 3, axis=2)
    pale_grey = 0.3 + 0.5 * gray
    restored = restore_tone(pale_grey)
    assert np.abs(restored - restored[..., :1]).max() < 1e-5
    assert np.ptp(restored) > 0.9  # the contrast is back
    pale_sepia = sepia(_photo(), pale=0.6)
    kept = restore_tone(pale_sepia)
    assert analyse_tone(kept).kind == "toned"
    assert (kept[..., 0] >= kept[..., 2] - 1e-3).mean() > 0.99  # still warm
    neutral = restore_tone(pale_sepia, neutral=True)
    assert np.abs(neutral - neutral[..., :1]).max() < 1e-5


def test_strength_zero_changes_nothing() -> None:
    faded = fade(_photo(), Fade(0.2, 0.8, "yellow", 0.5))
    assert np.allclose(restore_tone(faded, strength=0.0), faded)


def test_pipeline_keeps_the_restored_tone_of_a_sepia_print() -> None:
    pale_sepia = sepia(_photo(), pale=0.6)
    pipeline = Pipeline(default_registry())
    registry = pipeline.registry
    plan = plan_manual([PlannedStage("tone.restore")], {s.id: s for s in registry.specs()})
    result = pipeline.run(pale_sepia, plan)
    direct = restore_tone(pale_sepia)
    assert np.abs(result.image - direct).max() < 2e-3  # not re-projected onto the pale input
    assert result.tone.kind == "toned"
    neutral = pipeline.run(pale_sepia, plan, options={"tone.restore": {"neutral": True}})
    assert np.abs(neutral.image - neutral.image[..., :1]).max() < 1e-3
