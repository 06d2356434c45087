"""Whole-image classical deblur: blind Gaussian PSF estimate + Richardson-Lucy, halo-free.

1. The blur is estimated from edges (re-blur gradient ratio, Zhuo and Sim 2011): at an edge
   blurred by a Gaussian of sigma s, re-blurring with s0 divides the gradient by
   R = sqrt(s^2 + s0^2) / s, so s = s0 / sqrt(R^2 - 1). The median over strong edges is robust.
2. Richardson-Lucy deconvolution of the luminance with that Gaussian (separable, so each
   iteration is two OpenCV Gaussian blurs: fast on a 24 MP scan).
3. Over- and undershoot are clamped to the local range of the blurred input (no halos), and the
   change is damped where the photo is flat (grain is not amplified). Chroma is untouched, so
   grayscale and toned photos keep their tone.
4. Large scans are deconvolved tile by tile, each with enough context (:func:`deblur_halo`)
   that the result equals the untiled one: memory follows the tile, not the photo.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import cv2
import numpy as np

from restorer.ops import luminance
from restorer.stage_ids import DEBLUR_RL
from restorer.stages.base import Option, ProgressFn, StageKind, StageOutput, StageSpec, Work

__all__ = ["estimate_blur_sigma", "estimate_blur_sigmas", "estimate_noise",
           "richardson_lucy_gaussian", "deblur", "deblur_halo", "RichardsonLucyDeblur"]

_S0 = 1.0


def estimate_blur_sigma(luma: np.ndarray) -> float:
    """Gaussian blur sigma (pixels) of float32 (H, W) ``luma`` in [0, 1]; 0 when sharp."""
    return estimate_blur_sigmas(luma)[0]


#: Edge orientations (over 180 degrees) :func:`estimate_blur_sigmas` takes the median of
#: separately, and the fewest edge pixels an orientation needs to count.
ORIENTATIONS = 8
_ORIENTATION_PIXELS = 25


def estimate_blur_sigmas(luma: np.ndarray, exclude: np.ndarray | None = None
                         ) -> tuple[float, float]:
    """(median, widest orientation's median) edge blur sigma in pixels, each in [0, 8], of
    float32 (H, W) ``luma`` in [0, 1]; (0, 0) when there are too few edges to tell.

    The first is :func:`estimate_blur_sigma`. The second takes the median separately over the
    edges of each of ``ORIENTATIONS`` gradient orientations and keeps the largest: motion blur
    widens only the edges across its direction, so the median over all edges, most of them
    left sharp, underrates it. Edges where bool (H, W) ``exclude`` is True are left out (the
    sharp edges of cracks and scratches made after the photo was taken say nothing of its
    blur).
    """
    edges = cv2.Canny(np.clip(luma * 255.0 + 0.5, 0, 255).astype(np.uint8), 30, 90,
                      L2gradient=True) > 0
    if exclude is not None:
        edges &= ~exclude
    if edges.sum() < 50:
        return 0.0, 0.0
    grad, gx, gy = _gradient(luma)
    grad = grad[edges]
    grad_reblur = _gradient(cv2.GaussianBlur(luma, (0, 0), _S0))[0][edges]
    ratio = grad / np.maximum(grad_reblur, 1e-6)
    kept = (ratio > 1.01) & (grad > 0.02)
    if kept.sum() < 50:
        return 0.0, 0.0
    sigma = _S0 / np.sqrt(np.square(ratio[kept]) - 1.0)
    angle = np.mod(np.arctan2(gy[edges][kept], gx[edges][kept]), np.pi)
    orientation = np.rint(angle / np.pi * ORIENTATIONS).astype(int) % ORIENTATIONS
    widest = max((float(np.median(sigma[orientation == k])) for k in range(ORIENTATIONS)
                  if np.count_nonzero(orientation == k) >= _ORIENTATION_PIXELS), default=0.0)
    median = float(np.median(sigma))
    return float(np.clip(median, 0.0, 8.0)), float(np.clip(max(widest, median), 0.0, 8.0))


def estimate_noise(luma: np.ndarray) -> float:
    """Standard deviation of white noise in float32 (H, W) ``luma`` (Immerkaer 1996, robust).

    The 3x3 kernel cancels planes and ramps; the median of its absolute response over a
    Gaussian scales to sigma (the kernel's L2 norm is 6).
    """
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    response = cv2.filter2D(luma, cv2.CV_32F, kernel)[1:-1, 1:-1]
    return float(np.median(np.abs(response)) * 1.4826 / 6.0)


def _gradient(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradient magnitude (per pixel, a unit step gives 1 / 2) and the horizontal and
    vertical 3 x 3 Sobel derivatives of float32 (H, W) ``luma``."""
    gx = cv2.Sobel(luma, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(luma, cv2.CV_32F, 0, 1, ksize=3)
    return np.sqrt(gx * gx + gy * gy) / 8.0, gx, gy


def richardson_lucy_gaussian(luma: np.ndarray, sigma: float, iterations: int) -> np.ndarray:
    """Richardson-Lucy deconvolution of float32 (H, W) ``luma`` by a Gaussian of ``sigma``."""
    eps = 1e-4
    observed = luma + eps
    estimate = observed.copy()
    for _ in range(iterations):
        reblurred = cv2.GaussianBlur(estimate, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        ratio = observed / np.maximum(reblurred, eps)
        estimate *= cv2.GaussianBlur(ratio, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return estimate - eps


def _kernel_radius(sigma: float) -> int:
    """Radius of the kernel OpenCV's GaussianBlur uses for float images at ``sigma``."""
    return (int(round(sigma * 4 * 2 + 1)) | 1) // 2


def deblur_halo(sigma: float, iterations: int) -> int:
    """Pixels of context a tile needs for its core to match the untiled result exactly.

    Each Richardson-Lucy iteration blurs twice, so a pixel depends on input up to
    ``2 * iterations`` kernel radii away; the range clamp and noise weighting reach less far.
    """
    return max(2 * iterations * _kernel_radius(sigma), int(np.ceil(2.0 * sigma)), _kernel_radius(2.0))


def _sharpen_luma(luma: np.ndarray, sigma: float, iterations: int, noise: float,
                  strength: float) -> np.ndarray:
    """The luminance change, float32 (H, W), of deconvolving ``luma`` by a Gaussian of ``sigma``."""
    sharp = richardson_lucy_gaussian(luma, sigma, iterations)
    radius = max(1, int(np.ceil(2.0 * sigma)))
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * radius + 1,) * 2)
    sharp = np.clip(sharp, cv2.erode(luma, kernel), cv2.dilate(luma, kernel))
    # Damp the change where the neighbourhood is flat compared with the noise level.
    local_std = np.sqrt(np.maximum(
        cv2.GaussianBlur(luma * luma, (0, 0), 2.0) - cv2.GaussianBlur(luma, (0, 0), 2.0) ** 2, 0.0))
    weight = np.clip((local_std - 2.0 * noise) / (4.0 * noise + 1e-3), 0.0, 1.0)
    return (sharp - luma) * weight * np.float32(strength)


def deblur(
    image: np.ndarray,
    *,
    sigma: float | None = None,
    strength: float = 1.0,
    iterations: int = 12,
    min_sigma: float = 1.0,
    tile: int | None = 2048,
) -> tuple[np.ndarray, float]:
    """Deblur float (H, W, 3) [0, 1] ``image``; returns (image, sigma used).

    ``sigma`` None estimates it; ``strength`` in [0, 1] scales the correction. An estimated
    sigma below ``min_sigma`` means sharp (sharp photos measure 0.5-0.9 px: their own edges
    are not ideal steps); the image is then returned unchanged.

    Blur and noise are estimated on the whole photo; the deconvolution then runs on tiles of
    ``tile`` px (None: one piece) with :func:`deblur_halo` px of context, so memory stays
    bounded on large scans and the result equals the untiled one (up to float rounding).
    """
    luma = luminance(image)
    used = estimate_blur_sigma(luma) if sigma is None else float(sigma)
    if (sigma is None and used < min_sigma) or used <= 0.0 or strength <= 0.0:
        return image, used
    noise = estimate_noise(luma)
    del luma  # tiles take their luminance from their own crop
    amount = float(np.clip(strength, 0.0, 1.0))
    height, width = image.shape[:2]
    step = max(height, width) if tile is None else max(64, int(tile))
    halo = deblur_halo(used, iterations)
    out = np.empty(image.shape, np.float32)
    for top in range(0, height, step):
        for left in range(0, width, step):
            bottom, right = min(height, top + step), min(width, left + step)
            y0, x0 = max(0, top - halo), max(0, left - halo)
            y1, x1 = min(height, bottom + halo), min(width, right + halo)
            delta = _sharpen_luma(luminance(image[y0:y1, x0:x1]), used, iterations, noise,
                                  amount)[top - y0:bottom - y0, left - x0:right - x0]
            np.clip(image[top:bottom, left:right] + delta[..., None], 0.0, 1.0,
                    out=out[top:bottom, left:right])
    return out, used


class RichardsonLucyDeblur:
    """Stage: blind Gaussian Richardson-Lucy deblur of the whole photo."""

    spec: ClassVar[StageSpec] = StageSpec(
        id=DEBLUR_RL,
        kind=StageKind.DEBLUR,
        method="rl",
        title="Richardson-Lucy (estimated Gaussian blur)",
        description="Estimates the blur from edges and deconvolves the luminance without halos.",
        options={
            "strength": Option.number(1.0, 0.0, 1.0, help="share of the correction applied"),
            "sigma": Option.number(None, 0.3, 8.0, optional=True,
                                   help="Gaussian blur sigma in px (null: estimated from edges)"),
            "iterations": Option.integer(12, 1, 100, help="Richardson-Lucy iterations"),
            "tile": Option.integer(2048, 0, 16384,
                                   help="tile side in px for large scans (0: one piece)"),
        },
    )

    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        progress(0.0, "estimating blur and deconvolving")
        out, sigma = deblur(work.image, sigma=options["sigma"], strength=float(options["strength"]),
                            iterations=int(options["iterations"]),
                            tile=int(options.get("tile") or 0) or None)
        return StageOutput(image=out, info={"sigma": round(sigma, 3), "changed": out is not work.image})
