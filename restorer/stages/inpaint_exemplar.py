"""Exemplar-based inpainting (Criminisi, Perez and Toyama 2004), compact and vectorised.

The hole is filled patch by patch from its boundary inwards. The next patch is centred on the
boundary pixel of highest priority ``P = C * D``: ``C`` the confidence (the mean certainty of
the patch's known pixels, 1 for original pixels, inherited for filled ones) and ``D`` the data
term ``|isophote . normal|``, which favours patches where a strong edge meets the hole, so
linear structures are continued before flat areas. Its unknown pixels are copied from the
best-matching complete patch of the original known area (least sum of squared differences
over the known pixels, ``cv2.matchTemplate`` with a mask).

Runs on crops around each masked region (:class:`CropInpainter`), so the source search covers
that crop: ``radius`` (patch half-size) x ``context`` pixels of surroundings, and at most
64 px around each target patch.
"""

from __future__ import annotations

from typing import Any, Mapping

import cv2
import numpy as np

from restorer.ops import luminance
from restorer.stage_ids import INPAINT_EXEMPLAR
from restorer.stages.base import Option, StageKind, StageSpec
from restorer.stages.inpaint import CropInpainter

__all__ = ["ExemplarInpainter", "criminisi"]

_EPS = 1e-3


def criminisi(image: np.ndarray, mask: np.ndarray, *, radius: int = 4, search: int = 64) -> np.ndarray:
    """Fill bool (H, W) ``mask`` in float32 (H, W, 3) ``image`` with (2r+1)^2 exemplars.

    Source patches are searched within ``search`` px of the target patch (the whole image when
    none is there). Returns float32 (H, W, 3); unmasked pixels are unchanged. When no complete
    source patch exists at all, the holes get the mean of the known pixels.
    """
    r = radius
    size = 2 * r + 1
    pad = ((r, r), (r, r))
    work = np.pad(image.astype(np.float32), pad + ((0, 0),), mode="reflect")
    hole = np.pad(mask, pad, mode="constant", constant_values=False)
    inside = np.pad(np.ones(mask.shape, bool), pad, constant_values=False)
    # Source patch centres: inside the photo, the whole patch known in the original.
    source = cv2.erode((~hole & inside).astype(np.uint8), np.ones((size, size), np.uint8),
                       borderValue=0).astype(bool)
    if not source.any():
        out = image.copy()
        out[mask] = image[~mask].mean(axis=0) if (~mask).any() else 0.5
        return out
    confidence = (~hole).astype(np.float32)
    priority = np.full(hole.shape, -np.inf, np.float32)
    patch_confidence = np.zeros(hole.shape, np.float32)
    height, width = hole.shape
    _update(work, hole, confidence, priority, patch_confidence, (0, height, 0, width), r)
    while hole.any():
        # Holes lie at least r px inside the padded arrays, so every patch fits.
        y, x = (int(v) for v in np.unravel_index(int(np.argmax(priority)), priority.shape))
        target = (slice(y - r, y + r + 1), slice(x - r, x + r + 1))
        unknown = hole[target].copy()
        sy, sx = _best_source(work, source, target, unknown, search)
        if sy < 0:
            sy, sx = _best_source(work, source, target, unknown, max(height, width))
        work[target][unknown] = work[sy - r:sy + r + 1, sx - r:sx + r + 1][unknown]
        confidence[target][unknown] = patch_confidence[y, x]
        hole[target] &= ~unknown
        box = (max(0, y - size), min(height, y + size + 1), max(0, x - size), min(width, x + size + 1))
        _update(work, hole, confidence, priority, patch_confidence, box, r)
    return work[r:-r, r:-r].copy()


def _best_source(work: np.ndarray, source: np.ndarray, target: tuple[slice, slice],
                 unknown: np.ndarray, search: int) -> tuple[int, int]:
    """Centre (y, x) of the complete source patch nearest in SSD over the known pixels."""
    r = unknown.shape[0] // 2
    y, x = target[0].start + r, target[1].start + r
    height, width = source.shape
    y0, y1 = max(0, y - r - search), min(height, y + r + search + 1)
    x0, x1 = max(0, x - r - search), min(width, x + r + search + 1)
    known = np.repeat((~unknown)[..., None], 3, axis=2).astype(np.float32)
    scores = cv2.matchTemplate(work[y0:y1, x0:x1], work[target], cv2.TM_SQDIFF, mask=known)
    valid = source[y0 + r:y0 + r + scores.shape[0], x0 + r:x0 + r + scores.shape[1]]
    if not valid.any():
        return -1, -1
    scores = np.where(valid, scores, np.inf)
    sy, sx = np.unravel_index(int(np.argmin(scores)), scores.shape)
    return int(sy) + y0 + r, int(sx) + x0 + r


def _update(work: np.ndarray, hole: np.ndarray, confidence: np.ndarray, priority: np.ndarray,
            patch_confidence: np.ndarray, box: tuple[int, int, int, int], r: int) -> None:
    """Recompute the fill front's priorities ``C * D`` inside ``box`` (y0, y1, x0, x1)."""
    height, width = hole.shape
    y0, y1, x0, x1 = box
    m = r + 2  # margin so that filters inside the box see their whole support
    ey0, ey1, ex0, ex1 = max(0, y0 - m), min(height, y1 + m), max(0, x0 - m), min(width, x1 + m)
    h = hole[ey0:ey1, ex0:ex1]
    known = (~h).astype(np.uint8)
    front = h & (cv2.dilate(known, np.ones((3, 3), np.uint8)) > 0)
    size = 2 * r + 1
    conf = cv2.boxFilter(confidence[ey0:ey1, ex0:ex1], -1, (size, size),
                         borderType=cv2.BORDER_CONSTANT)
    grey = luminance(work[ey0:ey1, ex0:ex1])
    solid = cv2.erode(known, np.ones((3, 3), np.uint8), borderValue=1).astype(np.float32)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3) * solid
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3) * solid
    # Isophote near each front pixel: the mean known gradient of its 5x5 neighbourhood.
    weight = cv2.boxFilter(solid, -1, (5, 5), normalize=False) + 1e-6
    gx = cv2.boxFilter(gx, -1, (5, 5), normalize=False) / weight
    gy = cv2.boxFilter(gy, -1, (5, 5), normalize=False) / weight
    nx = cv2.Sobel(h.astype(np.float32), cv2.CV_32F, 1, 0, ksize=3)
    ny = cv2.Sobel(h.astype(np.float32), cv2.CV_32F, 0, 1, ksize=3)
    # |isophote . normal| with the isophote the gradient turned by 90 degrees.
    data = np.abs(gx * ny - gy * nx) / (np.hypot(nx, ny) + 1e-6) + _EPS
    iy0, iy1, ix0, ix1 = y0 - ey0, y1 - ey0, x0 - ex0, x1 - ex0
    inner = front[iy0:iy1, ix0:ix1]
    priority[y0:y1, x0:x1] = np.where(inner, (conf * data)[iy0:iy1, ix0:ix1], -np.inf)
    patch_confidence[y0:y1, x0:x1] = conf[iy0:iy1, ix0:ix1]


class ExemplarInpainter(CropInpainter):
    """Stage: Criminisi's exemplar-based inpainting (patch copying, structure first)."""

    spec = StageSpec(
        id=INPAINT_EXEMPLAR,
        kind=StageKind.INPAINT,
        method="exemplar",
        title="Exemplar (Criminisi)",
        description="Copies best-matching patches from the surroundings, continuing edges "
                    "first (Criminisi et al. 2004).",
        requires=frozenset({"image", "mask"}),
        options={"radius": Option.integer(4, 2, 12, help="patch radius in px")},
    )
    context = 8

    def fill(self, crop: np.ndarray, mask: np.ndarray, options: Mapping[str, Any]) -> np.ndarray:
        return criminisi(crop, mask, radius=int(options["radius"]))
