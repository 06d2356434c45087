"""Seeded changes of a whole photo that leave no truth mask: blur, and an old print's look.

:func:`blur` (Gaussian, defocus or motion), :func:`age` (toning and fading of an old print) and
:func:`scan` (film grain and JPEG compression). Every function takes a
``numpy.random.Generator``; the same seed gives the same result. Images are float32 (H, W, 3)
RGB in [0, 1].
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from restorer.ops import luminance

__all__ = ["blur", "age", "scan"]

BlurKind = Literal["gaussian", "defocus", "motion"]


def blur(image: np.ndarray, rng: np.random.Generator, *, kind: BlurKind = "gaussian",
         strength: float = 2.0) -> np.ndarray:
    """Blur float (H, W, 3) ``image``: Gaussian (sigma), defocus disk (radius) or motion (length).

    ``strength`` is in pixels. Returns float32 (H, W, 3).
    """
    if kind == "gaussian":
        out = cv2.GaussianBlur(image, (0, 0), strength, borderType=cv2.BORDER_REFLECT)
    else:
        size = int(np.ceil(strength)) * 2 + 1
        kernel = np.zeros((size, size), np.float32)
        centre = size // 2
        if kind == "defocus":
            cv2.circle(kernel, (centre, centre), int(round(strength)), 1.0, -1, cv2.LINE_AA)
        else:
            angle = rng.uniform(0, np.pi)
            dx, dy = np.cos(angle) * strength, np.sin(angle) * strength
            cv2.line(kernel, (int(round(centre - dx)), int(round(centre - dy))),
                     (int(round(centre + dx)), int(round(centre + dy))), 1.0, 1, cv2.LINE_AA)
        kernel /= kernel.sum()
        out = cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def age(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Toning and fading of an old print (not damage): float32 (H, W, 3) [0, 1]."""
    out = image
    if rng.random() < 0.5:
        grey = luminance(out)
        tint = (np.array([1.0, 1.0, 1.0], np.float32) if rng.random() < 0.4 else
                np.array([1.0, rng.uniform(0.82, 0.95), rng.uniform(0.6, 0.85)], np.float32))
        out = grey[..., None] * tint
    if rng.random() < 0.4:
        low, high = rng.uniform(0.0, 0.2), rng.uniform(0.75, 1.0)
        out = low + (high - low) * out
        out = out * np.array([1.0, 0.97, rng.uniform(0.85, 0.97)], np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def scan(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Film grain and JPEG compression of a scan (not damage): float32 (H, W, 3) [0, 1]."""
    out = image
    if rng.random() < 0.5:
        sigma = rng.uniform(0.005, 0.03)
        grain = rng.normal(0.0, sigma, out.shape[:2]).astype(np.float32)
        if rng.random() < 0.5:  # clumped grain
            grain = cv2.GaussianBlur(grain, (0, 0), 0.7) * 1.6
        out = out + grain[..., None]
    out = np.clip(out, 0.0, 1.0).astype(np.float32)
    if rng.random() < 0.5:
        quality = int(rng.integers(40, 95))
        ok, buf = cv2.imencode(".jpg", (out[..., ::-1] * 255 + 0.5).astype(np.uint8),
                               [cv2.IMWRITE_JPEG_QUALITY, quality])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255.0
    return np.ascontiguousarray(out, dtype=np.float32)
