"""Small array operations shared by stages (all on the internal image convention)."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["luminance", "is_grey", "keep_grey", "fit_long_side", "mask_regions", "Box"]

Box = tuple[int, int, int, int]  # y0, y1, x0, x1 (half-open)

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def luminance(image: np.ndarray) -> np.ndarray:
    """float (H, W, 3) RGB [0, 1] -> float32 (H, W) Rec.601 luma in [0, 1]."""
    return np.ascontiguousarray(image @ _LUMA, dtype=np.float32)


def is_grey(image: np.ndarray) -> bool:
    """True when float (H, W, 3) ``image`` has R = G = B at every pixel."""
    return bool(np.array_equal(image[..., 0], image[..., 1])
                and np.array_equal(image[..., 1], image[..., 2]))


def keep_grey(source: np.ndarray, out: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """``out`` (float32 (H, W, 3) [0, 1]) with its luminance in all three channels when
    ``source`` is grey (only at bool (H, W) ``where`` when given), else ``out`` itself: a
    network that mixes channels must not tint a grey photo."""
    if not is_grey(source):
        return out
    grey = np.repeat(np.clip(luminance(out), 0.0, 1.0)[..., None], 3, axis=2)
    if where is None:
        return grey
    kept = out.copy()
    kept[where] = grey[where]
    return kept


def fit_long_side(image: np.ndarray, side: float) -> np.ndarray:
    """Float (H, W) or (H, W, C) [0, 1] shrunk (area) so its long side is at most ``side``;
    never enlarged (then only made float32 and contiguous).

    Returns float32 (h, w[, C]) in [0, 1], contiguous; each side at least 1 px.
    """
    height, width = image.shape[:2]
    scale = side / max(height, width)
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(np.clip(image, 0.0, 1.0), dtype=np.float32)


def mask_regions(mask: np.ndarray, *, margin: int, max_gap: int | None = None) -> list[Box]:
    """Boxes around the connected parts of bool (H, W) ``mask``, each grown by ``margin``.

    Boxes that touch or overlap (after growing) are merged, so every masked pixel lies in
    exactly one box with at least ``margin`` pixels of context around it (clipped at borders).
    ``max_gap`` (default ``margin``) is the distance under which two parts share a box.
    """
    height, width = mask.shape
    gap = margin if max_gap is None else max_gap
    if not mask.any():
        return []
    # Closing the gaps first makes nearby fragments one component: fewer, larger boxes.
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=max(1, gap // 2))
    count, _, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    boxes = [
        (
            max(0, int(y) - margin),
            min(height, int(y + h) + margin),
            max(0, int(x) - margin),
            min(width, int(x + w) + margin),
        )
        for x, y, w, h, _ in stats[1:count]
    ]
    return _merge_boxes(boxes)


def _merge_boxes(boxes: list[Box]) -> list[Box]:
    merged = True
    while merged:
        merged = False
        out: list[Box] = []
        for box in boxes:
            for i, other in enumerate(out):
                if box[0] < other[1] and other[0] < box[1] and box[2] < other[3] and other[2] < box[3]:
                    out[i] = (min(box[0], other[0]), max(box[1], other[1]),
                              min(box[2], other[2]), max(box[3], other[3]))
                    merged = True
                    break
            else:
                out.append(box)
        boxes = out
    return boxes
