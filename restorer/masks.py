"""Mask post-processing shared by the detectors: hysteresis, growth, component measures.

Every function takes and returns bool (H, W) masks (True = defect) or float32 (H, W) maps;
nothing here knows which detector made them.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["hysteresis", "grow", "component_stats"]


def hysteresis(score: np.ndarray, low: float, high: float) -> np.ndarray:
    """Bool (H, W): the 8-connected components of ``score >= low`` that hold a ``score >= high``.

    A found stretch of a crack (above ``high``) is evidence for its fainter neighbours (down to
    ``low``), so a crack is followed along its whole length; an isolated faint pixel is not
    taken. ``score`` float (H, W); ``low <= high``.
    """
    if low > high:
        raise ValueError(f"hysteresis: low {low} is above high {high}")
    weak = (score >= low).astype(np.uint8)
    count, labels = cv2.connectedComponents(weak, connectivity=8)
    seeded = np.zeros(count, bool)
    seeded[labels[score >= high]] = True
    seeded[0] = False
    return seeded[labels]


def grow(mask: np.ndarray, radius: float) -> np.ndarray:
    """Bool (H, W) ``mask`` dilated by a disk of ``radius`` pixels (0: unchanged)."""
    if radius <= 0 or not mask.any():
        return mask.copy()
    side = 2 * int(np.ceil(radius)) + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def component_stats(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels int32 (H, W) of the 8-connected components of ``mask`` (0 = background) and
    their OpenCV stats int32 (N, 5): left, top, width, height, area."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return labels, stats
