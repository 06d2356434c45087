"""Damage of old prints, kind by kind: cracks followed whole, spots, creases, tears and holes.

``detect.print`` runs the shipped SegNet (``weights/detector_segnet.safetensors``) once and
four per-kind detectors on the photo (float32 (H, W, 3) [0, 1]):

- cracks (:func:`crack_mask`): hysteresis on the SegNet probability (a found stretch is
  evidence for its fainter neighbours), optionally bridged by a ridge response of the
  probability, then grown to cover the soft edge; rules chosen by ``bench/crack_follow.py`` on
  the training generator;
- spots, creases, holes: classical detectors in :mod:`restorer.stages.detect_kinds`.

The mask the inpainter gets is the union; every kind's mask is in the output's ``info``
(``masks``) for the legend and the damage labels (:func:`print_labels`). The mount or scanner
bed round a print (:func:`restorer.mount.find_print`) is never flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np

from restorer.masks import grow, hysteresis
from restorer.stages.base import Option, ProgressFn, StageKind, StageOutput, StageSpec, Work

__all__ = ["CrackParams", "crack_probability", "crack_mask", "PrintDetector"]


#: (scale, weight) pairs of :func:`crack_probability`.
Scales = tuple[tuple[float, float], ...]


def crack_probability(model: Any, image: np.ndarray, scales: Scales = ((1.0, 1.0),)
                      ) -> np.ndarray:
    """Float32 (H, W) [0, 1]: the most of weight x the SegNet ``model``'s probability over the
    (scale, weight) pairs ``scales``.

    The network was trained on cracks 1 to 5 px wide; a 10 px crack is a 5 px one in the photo
    downscaled by 2, so the photo is analysed at each scale (area-downscaled, probability
    scaled back bilinearly); a coarse scale's weight below 1 keeps its texture false alarms
    down. ``image`` float32 (H, W, 3) [0, 1].
    """
    import cv2

    from restorer.stages.detect_learned import segnet_probability

    height, width = image.shape[:2]
    best = np.zeros((height, width), np.float32)
    for scale, weight in scales:
        small = image
        if scale < 1.0:
            size = (max(8, round(width * scale)), max(8, round(height * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        probability = segnet_probability(model, np.ascontiguousarray(small, np.float32))
        if scale < 1.0:
            probability = cv2.resize(probability, (width, height), interpolation=cv2.INTER_LINEAR)
        np.maximum(best, weight * probability, out=best)
    return best


@dataclass(frozen=True)
class CrackParams:
    """Crack rule on the SegNet probability, thresholds as multiples of its calibrated one.

    Pixels of at least ``low`` x threshold join a crack when connected to a pixel of at least
    ``high`` x threshold (``plain``: one threshold, ``high``). ``ridge`` > 0 adds that much of
    the probability's ridge response (Sato, 1 to 3 px) before the hysteresis, bridging gaps
    along a line; the mask is then grown by ``grow`` px (the soft edge). ``scales`` are the
    (scale, weight) pairs of :func:`crack_probability`.
    """

    low: float = 1.0
    high: float = 1.5
    ridge: float = 0.0
    grow: float = 0.0
    plain: bool = False
    scales: Scales = ((1.0, 1.0), (0.5, 0.5))


def crack_mask(probability: np.ndarray, image: np.ndarray, threshold: float,
               params: CrackParams = CrackParams()) -> np.ndarray:
    """Crack mask bool (H, W) from the SegNet's float32 (H, W) [0, 1] ``probability`` of
    float32 (H, W, 3) ``image`` and its calibrated ``threshold``."""
    score = probability
    if params.ridge > 0:
        from skimage.filters import sato

        score = probability + params.ridge * sato(probability, sigmas=(1, 2, 3),
                                                  black_ridges=False).astype(np.float32)
    if params.plain:
        mask = score >= params.high * threshold
    else:
        mask = hysteresis(score, params.low * threshold, params.high * threshold)
    return grow(mask, params.grow)


class PrintDetector:
    """Stage: the SegNet's cracks followed whole plus spots, creases and holes, per kind."""

    spec: ClassVar[StageSpec] = StageSpec(
        id="detect.print",
        kind=StageKind.DETECT,
        method="print",
        title="Old-print damage (cracks, spots, creases, tears)",
        description="The segmentation network's cracks followed along their whole length and "
                    "grown over their soft edge, with classical detectors for spots and "
                    "foxing, creases and folds, tears and missing corners; the mount is left "
                    "alone.",
        produces=frozenset({"mask"}),
        weights=("detect_segnet",),
        options={"sensitivity": Option.number(0.5, 0.0, 1.0, help="higher flags more")},
    )

    def __init__(self, path: Path) -> None:
        from restorer.stages.detect_learned import load_segnet

        self.model, self.threshold = load_segnet(path, self.spec.id)

    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        raise NotImplementedError
