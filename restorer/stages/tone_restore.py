"""Fade reversal: levels and white balance that bring back contrast and neutral greys.

Methods (measured against each other by bench/tone.py; the stage runs ``stretch``, the others
are the baselines it is measured against and are not offered until they earn it):

- ``stretch``: per-channel percentile stretch. Each dye of a colour print fades on its own, which
  lifts that channel's black and lowers its white (restorer.synth_tone's model is an affine map
  per channel), so stretching each channel's 0.5th..99.5th percentiles back to 0..1 gives the
  dyes back and re-neutralises greys.
- ``grayworld``: CIELAB L* stretched, then a*, b* shifted so the mean is neutral (gray-world).
- ``clahe``: CLAHE on L* (local contrast), then white-patch balance of the lightest 1 %.

A grayscale or toned print (restorer.tone.analyse_tone) is never balanced: one common levels map
is applied to L* and its chroma is kept, so a sepia print stays sepia; option ``neutral`` makes it
neutral grey instead. ``stretch`` leaves at most ``CLIP_SHARE`` of the pixels newly clipped at
0 or 1 per channel (``strength`` below 1 clips less); gray-world and CLAHE clip more (2 to 3 %).
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import cv2
import numpy as np

from restorer.stage_ids import TONE_RESTORE
from restorer.stages.base import Option, ProgressFn, StageKind, StageOutput, StageSpec, Work
from restorer.tone import analyse_tone

__all__ = ["CLIP_SHARE", "METHODS", "restore_tone", "ToneRestore"]

#: The share of pixels each side of the range a stretch may clip (0.5 % black, 0.5 % white).
_TAIL = 0.5
#: Most pixels the default ``stretch`` may leave clipped (0 or 1) in any channel beyond those
#: already so: the 0.5 % tails each side, plus ties at the percentile in 8-bit scans.
CLIP_SHARE = 0.015

METHODS = ("stretch", "grayworld", "clahe")


def _levels(values: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """``values`` with ``sample``'s 0.5th..99.5th percentiles mapped to 0..1 (never an
    expansion beyond 4x, which would only amplify noise in a flat photo)."""
    low, high = np.percentile(sample, [_TAIL, 100.0 - _TAIL])
    span = max(float(high - low), 0.25)
    return (values - low) / span


def _lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(image, dtype=np.float32), cv2.COLOR_RGB2Lab)


def _rgb(lab: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB)


def restore_tone(image: np.ndarray, *, method: str = "stretch", strength: float = 1.0,
                 neutral: bool = False, region: np.ndarray | None = None) -> np.ndarray:
    """Fade-reversed float32 (H, W, 3) [0, 1] ``image``.

    ``strength`` 0..1 blends from the input to the full correction; statistics come from where
    bool (H, W) ``region`` is True (the print without its mount), the map is applied everywhere.
    """
    sample = image if region is None or region.sum() < 64 else image[region]
    sample = sample.reshape(-1, 3)
    kind = analyse_tone(image).kind
    lab = _lab(image)
    if kind != "colour":  # grey or toned: one levels map on L*, chroma kept (or dropped)
        sample_l = _lab(sample[None])[0, :, 0] / 100.0
        lab[..., 0] = np.clip(_levels(lab[..., 0] / 100.0, sample_l), 0.0, 1.0) * 100.0
        if neutral or kind == "grayscale":
            lab[..., 1:] = 0.0
        out = _rgb(lab)
        if kind == "grayscale" or neutral:
            out = np.repeat(out.mean(axis=2, keepdims=True), 3, axis=2)
    elif method == "stretch":
        out = np.stack([_levels(image[..., c], sample[:, c]) for c in range(3)], axis=2)
    elif method == "grayworld":
        sample_lab = _lab(sample[None])[0]
        lab[..., 0] = np.clip(_levels(lab[..., 0] / 100.0, sample_lab[:, 0] / 100.0), 0, 1) * 100
        lab[..., 1:] -= sample_lab[:, 1:].mean(axis=0)
        out = _rgb(lab)
    elif method == "clahe":
        clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
        lightness = np.clip(lab[..., 0] * 2.55 + 0.5, 0, 255).astype(np.uint8)
        lab[..., 0] = clahe.apply(lightness).astype(np.float32) / 2.55
        out = _rgb(lab)
        flat = out.reshape(-1, 3) if region is None or region.sum() < 64 else out[region]
        bright = flat[flat.sum(axis=1) >= np.percentile(flat.sum(axis=1), 99.0)]
        out = out / np.maximum(bright.mean(axis=0), 1e-3)
    else:
        raise ValueError(f"unknown tone method '{method}'; use one of {', '.join(METHODS)}")
    out = np.clip(out, 0.0, 1.0)
    blended = image + strength * (out - image)
    return np.clip(blended, 0.0, 1.0).astype(np.float32)


class ToneRestore:
    """``tone.restore``: fade reversal and white balance (see the module docstring)."""

    spec: ClassVar[StageSpec] = StageSpec(
        id=TONE_RESTORE,
        kind=StageKind.TONE,
        method="stretch",
        title="Tone (fade reversal)",
        description="Brings back the contrast and the dyes of a faded print: levels and white "
                    "balance; a sepia or grey print keeps its tone unless 'neutral' is set.",
        options={
            "strength": Option.number(1.0, 0.0, 1.0, help="0 leaves the photo as it is, 1 is "
                                      "the full correction"),
            "neutral": Option.flag(False, help="make a sepia or toned print neutral grey"),
        },
    )

    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        """Restore the tone of ``work.image``; the info names the method."""
        progress(0.0, "measuring the fade")
        image = restore_tone(work.image, strength=options["strength"],
                             neutral=options["neutral"])
        progress(1.0, "done")
        return StageOutput(image=image, info={"method": "stretch",
                                              "tone": analyse_tone(work.image).kind})
