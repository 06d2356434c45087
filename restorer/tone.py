"""Keep monochrome photos monochrome.

Old photos are often grayscale or toned (sepia, selenium, cyanotype). Restoration stages work on
RGB and can drift the colour; this module measures the input's tone once and projects the output
back onto it: grayscale stays exactly neutral, a toned print keeps the chroma it had at each
lightness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from restorer.ops import fit_long_side, luminance

__all__ = ["Tone", "analyse_tone", "apply_tone", "retone"]

ToneKind = Literal["colour", "grayscale", "toned"]

_BINS = 32
#: Long side (px) of the copy a tone (and restorer.fade a fade) is measured on.
MEASURE_SIDE = 512


@dataclass(frozen=True)
class Tone:
    """The measured tone of a photo.

    ``kind`` is colour, grayscale or toned. For toned photos ``a_curve`` and ``b_curve`` hold
    the mean CIELAB a*, b* per lightness bin (``_BINS`` bins over L* in [0, 100]).
    """

    kind: ToneKind
    a_curve: tuple[float, ...] = ()
    b_curve: tuple[float, ...] = ()


def _lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2Lab)


def analyse_tone(image: np.ndarray, *, gray_tol: float = 1.0 / 255.0) -> Tone:
    """Classify float (H, W, 3) [0, 1] ``image`` as colour, grayscale or toned.

    Grayscale: the channels differ by at most ``gray_tol`` almost everywhere. Toned: the chroma
    is explained by lightness alone (residual a*/b* spread small against the tint itself).
    """
    small = fit_long_side(image, MEASURE_SIDE)
    spread = small.max(axis=2) - small.min(axis=2)
    if np.quantile(spread, 0.995) <= gray_tol:
        return Tone("grayscale")
    lab = _lab(small).reshape(-1, 3)
    lightness, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    a_curve, b_curve = _curves(lightness, a, b)
    a_fit = np.interp(lightness, _centres(), a_curve)
    b_fit = np.interp(lightness, _centres(), b_curve)
    residual = np.sqrt(np.mean((a - a_fit) ** 2 + (b - b_fit) ** 2))
    chroma = float(np.sqrt(np.mean(a**2 + b**2)))
    # A toned print: little chroma overall, and what there is follows lightness (residual
    # spread a few units of a*/b*, which is below what any colour photo shows).
    if chroma < 25.0 and residual < 3.0:
        return Tone("toned", tuple(map(float, a_curve)), tuple(map(float, b_curve)))
    return Tone("colour")


def apply_tone(image: np.ndarray, tone: Tone) -> np.ndarray:
    """Project float (H, W, 3) [0, 1] ``image`` onto ``tone``; colour photos pass unchanged."""
    if tone.kind == "colour":
        return image
    if tone.kind == "grayscale":
        gray = luminance(image)
        return np.repeat(np.clip(gray, 0.0, 1.0)[..., None], 3, axis=2).astype(np.float32)
    lab = _lab(image)
    lightness = lab[..., 0]
    lab[..., 1] = np.interp(lightness, _centres(), np.asarray(tone.a_curve))
    lab[..., 2] = np.interp(lightness, _centres(), np.asarray(tone.b_curve))
    out = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _centres() -> np.ndarray:
    edges = np.linspace(0.0, 100.0, _BINS + 1)
    return (edges[:-1] + edges[1:]) / 2


def _curves(lightness: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean a*, b* per lightness bin; empty bins are filled by interpolation."""
    index = np.clip((lightness / 100.0 * _BINS).astype(int), 0, _BINS - 1)
    counts = np.bincount(index, minlength=_BINS)
    filled = counts > 0
    curves = []
    for channel in (a, b):
        sums = np.bincount(index, weights=channel, minlength=_BINS)
        means = np.zeros(_BINS)
        means[filled] = sums[filled] / counts[filled]
        means = np.interp(_centres(), _centres()[filled], means[filled])
        curves.append(means)
    return curves[0], curves[1]


#: Rows per band in :func:`retone` hold about this many pixels (bounds its temporaries).
_BAND_PIXELS = 1 << 20


def retone(final: np.ndarray, image: np.ndarray, tone: Tone) -> np.ndarray:
    """A new ``final`` with ``tone`` re-applied where it differs from ``image`` (everywhere when
    the size changed: an upscaled photo is all new), one band of rows at a time."""
    out = np.empty_like(final)
    rows = max(1, _BAND_PIXELS // final.shape[1])
    for top in range(0, final.shape[0], rows):
        band = final[top:top + rows]
        toned = apply_tone(band, tone)
        if final.shape == image.shape:
            changed = np.abs(band - image[top:top + rows]).max(axis=2) > 1.0 / 512.0
            toned = np.where(changed[..., None], toned, band)
        out[top:top + rows] = toned
    return out
