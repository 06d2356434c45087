"""Morphological crack and scratch detection (the candidate stage of seed paper 000).

White top-hat finds thin structures lighter than their surroundings (scratches, cracks through
the emulsion showing paper), black-hat finds darker ones (dirt-filled cracks). Thresholds adapt
to the image's own response statistics; hysteresis keeps faint parts connected to clear ones;
components that are not thin and elongated are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Mapping

import cv2
import numpy as np
from skimage.morphology import skeletonize

from restorer.ops import luminance
from restorer.stages.base import ProgressFn, StageKind, StageOutput, StageSpec, Work

__all__ = ["MorphParams", "structuring_size", "tophat_responses", "detect_morphological",
           "MorphologicalDetector"]

Polarity = Literal["both", "light", "dark"]


@dataclass(frozen=True)
class MorphParams:
    """Tuning of the morphological detector.

    sensitivity in [0, 1] lowers the thresholds (more detections); ``min_contrast`` is the
    smallest top-hat response (luma units) ever accepted; ``salience`` how many times the mean
    response around it a seed must reach; ``dilate`` grows the final mask by that many pixels
    (at full resolution) to cover soft crack edges; images over ``work_pixels`` are analysed
    downscaled to that size and the mask is scaled back.
    """

    sensitivity: float = 0.5
    polarity: Polarity = "both"
    min_contrast: float = 0.15
    dilate: int = 1
    min_length_frac: float = 0.08
    min_elongation: float = 5.0
    salience: float = 5.0
    work_pixels: int = 4_000_000
    line_factor: float = 1.5


def structuring_size(shape: tuple[int, int]) -> int:
    """Odd structuring-element diameter for an image of ``shape`` (H, W).

    Must exceed the widest crack we look for: 11 px up to about 1 MP, growing with the short
    side beyond (a 6000 px scan gets 25 px).
    """
    size = max(11, int(round(min(shape) / 240.0)))
    return size | 1


def _line_kernels(length: int, count: int = 12) -> list[np.ndarray]:
    """``count`` one-pixel line structuring elements of ``length`` (odd) at even angles."""
    centre = length // 2
    kernels = []
    for angle in np.arange(count) * np.pi / count:
        kernel = np.zeros((length, length), np.uint8)
        dx, dy = np.cos(angle) * centre, np.sin(angle) * centre
        cv2.line(kernel, (int(round(centre - dx)), int(round(centre - dy))),
                 (int(round(centre + dx)), int(round(centre + dy))), 1, 1)
        kernels.append(kernel)
    return kernels


def tophat_responses(
    luma: np.ndarray, size: int, line_length: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Linear top-hat and black-hat of float32 (H, W) ``luma``; both float32 (H, W) >= 0.

    A thin line survives an opening by a line structuring element along its own direction but
    not an opening by a disk of diameter ``size``: the supremum of line openings minus the disk
    opening keeps elongated light structures and drops small bright texture (Zana and Klein's
    vessel filter). The dark response is the dual, with closings.
    """
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    lines = _line_kernels((line_length or size) | 1)
    border = cv2.BORDER_REFLECT
    open_lines = np.max([cv2.morphologyEx(luma, cv2.MORPH_OPEN, k, borderType=border)
                         for k in lines], axis=0)
    close_lines = np.min([cv2.morphologyEx(luma, cv2.MORPH_CLOSE, k, borderType=border)
                          for k in lines], axis=0)
    light = open_lines - cv2.morphologyEx(luma, cv2.MORPH_OPEN, disk, borderType=border)
    dark = cv2.morphologyEx(luma, cv2.MORPH_CLOSE, disk, borderType=border) - close_lines
    return np.maximum(light, 0.0), np.maximum(dark, 0.0)


def detect_morphological(image: np.ndarray, params: MorphParams = MorphParams()) -> np.ndarray:
    """Defect mask of float (H, W, 3) [0, 1] ``image``: bool (H, W), True = crack/scratch."""
    height, width = image.shape[:2]
    scale = min(1.0, float(np.sqrt(params.work_pixels / (height * width))))
    if scale < 1.0:
        size_small = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size_small, interpolation=cv2.INTER_AREA)
    luma = luminance(image)
    size = structuring_size(luma.shape)
    light, dark = tophat_responses(luma, size, int(size * params.line_factor))
    responses = {"light": light, "dark": dark}
    wanted = ("light", "dark") if params.polarity == "both" else (params.polarity,)
    mask = np.zeros(luma.shape, bool)
    for name in wanted:
        mask |= _threshold(responses[name], params, size)
    mask = _keep_thin_elongated(mask, params, size)
    if scale < 1.0:
        mask = cv2.resize(mask.astype(np.uint8), (width, height),
                          interpolation=cv2.INTER_NEAREST).astype(bool)
    if params.dilate > 0 and mask.any():
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * params.dilate + 1,) * 2)
        mask = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
    return mask


def _threshold(response: np.ndarray, params: MorphParams, size: int) -> np.ndarray:
    """Hysteresis threshold on the response, seeded only where the response stands out.

    Seeds need a response above ``high`` (set from the response's robust spread, never below
    ``min_contrast``) and ``salience`` times the mean response around them: a crack over a
    smooth area is salient, busy texture (foliage, fabric, hair) is not. Weaker pixels
    (above ``low``) join when connected to a seed.
    """
    sample = response[::4, ::4] if response.size > 4_000_000 else response
    median = float(np.median(sample))
    mad = float(np.median(np.abs(sample - median))) * 1.4826
    k_high = 9.0 - 5.0 * params.sensitivity
    high = max(params.min_contrast, median + k_high * mad)
    low = high * 0.5
    window = 4 * size + 1
    surround = cv2.boxFilter(response, -1, (window, window), borderType=cv2.BORDER_REFLECT)
    salience = params.salience * (1.5 - params.sensitivity)
    seeds = (response >= high) & (response >= salience * surround)
    weak = (response >= low) & (response >= 0.5 * salience * surround)
    count, labels = cv2.connectedComponents(weak.astype(np.uint8), connectivity=8)
    seeded = np.zeros(count, bool)
    seeded[labels[seeds]] = True
    seeded[0] = False
    return seeded[labels]


def _keep_thin_elongated(mask: np.ndarray, params: MorphParams, size: int) -> np.ndarray:
    """Drop components whose skeleton is short or that are wide relative to their length."""
    if not mask.any():
        return mask
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    skeleton = skeletonize(mask)
    area = np.bincount(labels.ravel(), minlength=count).astype(np.float64)
    length = np.bincount(labels[skeleton], minlength=count).astype(np.float64)
    width = area / np.maximum(length, 1.0)
    min_length = max(size * 1.5, params.min_length_frac * min(mask.shape))
    keep = (length >= min_length) & (length / np.maximum(width, 1.0) >= params.min_elongation)
    keep &= width <= size / 2.0
    keep[0] = False
    return keep[labels]


class MorphologicalDetector:
    """Stage: top-hat/black-hat candidates with an adaptive threshold and a shape filter."""

    spec: ClassVar[StageSpec] = StageSpec(
        id="detect.morph",
        kind=StageKind.DETECT,
        method="morph",
        title="Morphological (top-hat / black-hat)",
        description="Thin light and dark lines found by morphological filtering and a shape test.",
        produces=frozenset({"mask"}),
        options={"sensitivity": 0.5, "polarity": "both", "dilate": 1},
    )

    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        params = MorphParams(
            sensitivity=float(options["sensitivity"]),
            polarity=options["polarity"],
            dilate=int(options["dilate"]),
        )
        progress(0.0, "finding cracks and scratches")
        mask = detect_morphological(work.image, params)
        return StageOutput(mask=mask, info={"defect_fraction": float(mask.mean())})
