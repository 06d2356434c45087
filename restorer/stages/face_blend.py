"""Blending restored faces back: the soft face mask, the inverse warp and the paste.

ParseNet segments the restored face; its face classes, blurred (as facexlib does), warped back
with the inverse alignment, give a soft mask ``m``. Each output pixel becomes
``x + fidelity * m * (restored - x)`` where ``x`` is the (upscaled) input.
"""

from __future__ import annotations

import cv2
import numpy as np

from restorer.stages.face_detect import FACE_SIZE

__all__ = ["face_mask", "inverse_map", "paste", "upscaled", "box_out"]

#: ParseNet classes blended back: skin, brows, eyes, glasses, ears, earring, nose, mouth, lips
#: (not 0 background, 14 neck, 16 cloth, 17 hair, 18 hat), as facexlib pastes them.
_FACE_CLASSES = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15])



def face_mask(classes: np.ndarray) -> np.ndarray:
    """Soft face mask float32 (512, 512) [0, 1] from ParseNet's int (512, 512) classes: the
    face classes, blurred twice, 0 in a 10 px border (as facexlib)."""
    mask = np.isin(classes, _FACE_CLASSES).astype(np.float32)
    mask = cv2.GaussianBlur(mask, (101, 101), 11)
    mask = cv2.GaussianBlur(mask, (101, 101), 11)
    border = 10
    mask[:border, :] = mask[-border:, :] = mask[:, :border] = mask[:, -border:] = 0.0
    return mask


def inverse_map(affine: np.ndarray, upscale: int) -> np.ndarray:
    """2x3 map from crop pixels to output pixels of a photo upscaled ``upscale`` times.

    OpenCV puts pixel centres at integers, so input x lands at ``u * x + (u - 1) / 2`` after an
    ``u`` times resize.
    """
    inverse = cv2.invertAffineTransform(affine) * upscale
    inverse[:, 2] += (upscale - 1) / 2
    return inverse


def paste(out: np.ndarray, face: np.ndarray, weight: np.ndarray, inverse: np.ndarray) -> None:
    """Blend ``face`` (512, 512, 3) into ``out`` (H, W, 3) in place: ``out += w * (face - out)``.

    ``weight`` (512, 512) in [0, 1] is warped with ``inverse`` like the face. Only the box the
    warped crop covers is touched; where ``w`` is 0 the pixel is left exactly as it was.
    """
    height, width = out.shape[:2]
    corners = np.array([[0, 0, 1], [FACE_SIZE, 0, 1], [0, FACE_SIZE, 1], [FACE_SIZE, FACE_SIZE, 1]],
                       dtype=np.float64) @ inverse.T
    x0, y0 = np.maximum(np.floor(corners.min(axis=0)).astype(int) - 1, 0)
    x1 = min(width, int(np.ceil(corners[:, 0].max())) + 2)
    y1 = min(height, int(np.ceil(corners[:, 1].max())) + 2)
    if x0 >= x1 or y0 >= y1:
        return
    local = inverse.copy()
    local[:, 2] -= (x0, y0)
    size = (int(x1 - x0), int(y1 - y0))
    face_roi = cv2.warpAffine(face, local, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    weight_roi = cv2.warpAffine(weight, local, size, flags=cv2.INTER_CUBIC,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    weight_roi = np.clip(weight_roi, 0.0, 1.0)[..., None]
    region = out[y0:y1, x0:x1]
    region += weight_roi * (np.clip(face_roi, 0.0, 1.0) - region)


def upscaled(image: np.ndarray, upscale: int) -> np.ndarray:
    """A new float32 copy of ``image`` resized ``upscale`` times (Lanczos, clipped to [0, 1])."""
    if upscale == 1:
        return image.copy()
    height, width = image.shape[:2]
    big = cv2.resize(image, (width * upscale, height * upscale), interpolation=cv2.INTER_LANCZOS4)
    return np.clip(big, 0.0, 1.0, out=big)


def box_out(box: tuple[float, ...], upscale: int, shape: tuple[int, int]) -> list[int]:
    """A face box in output pixels (x0, y0, x1, y1), clipped to the output."""
    height, width = shape
    x0, y0, x1, y1 = (v * upscale for v in box)
    return [int(np.clip(round(x0), 0, width)), int(np.clip(round(y0), 0, height)),
            int(np.clip(round(x1), 0, width)), int(np.clip(round(y1), 0, height))]
