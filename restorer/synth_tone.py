"""Seeded generators of the tone damage real prints have, each returned with its truth.

Fading (contrast lost, blacks lifted, whites lowered), colour casts (dyes that aged unevenly: the
cyan dye of a colour print fades first, leaving it yellow-red or magenta), pale sepia, and a print
laid on a card mount or a scanner bed. Every generator takes an ``np.random.Generator`` (or a
seed) and is deterministic for a given seed. Images are float32 (H, W, 3) RGB in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

__all__ = ["Fade", "FadedPrint", "MountedPrint", "fade", "random_fade", "sepia", "mount"]

CastKind = Literal["none", "yellow", "magenta", "red"]

#: Per-channel (R, G, B) dye loss of each cast: how much each channel's dye density is lost.
#: Losing cyan dye lifts red; losing blue-green (yellow dye survives) leaves yellow/magenta.
_CAST_DYE_LOSS: dict[str, tuple[float, float, float]] = {
    "none": (0.0, 0.0, 0.0),
    "yellow": (0.6, 0.45, 0.0),   # cyan and magenta fade, yellow dye stays: yellowed
    "magenta": (0.55, 0.0, 0.45),  # cyan and yellow fade: magenta shift
    "red": (0.8, 0.15, 0.05),     # cyan fades first: red-orange cast
}


@dataclass(frozen=True)
class Fade:
    """The truth of one fade.

    ``black`` and ``white``: where the print's black and white now lie (0 <= black < white <= 1);
    ``cast``: which dye aged; ``cast_strength`` in [0, 1]; ``contrast_lost`` = 1 - (white - black).
    """

    black: float
    white: float
    cast: CastKind
    cast_strength: float

    @property
    def contrast_lost(self) -> float:
        """Share of the tonal range lost, in [0, 1]."""
        return 1.0 - (self.white - self.black)


@dataclass(frozen=True)
class FadedPrint:
    """A faded image and the truth that made it."""

    image: np.ndarray
    truth: Fade


@dataclass(frozen=True)
class MountedPrint:
    """A print on a mount: ``image`` (H, W, 3), ``print_mask`` bool (H, W) True on the print,
    ``box`` (x0, y0, x1, y1) of the print before rotation, ``angle`` in degrees."""

    image: np.ndarray
    print_mask: np.ndarray
    box: tuple[int, int, int, int]
    angle: float


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def fade(image: np.ndarray, truth: Fade) -> np.ndarray:
    """Apply ``truth`` to float32 (H, W, 3) [0, 1] ``image``: the cast first (dye density lost
    per channel, which lifts the channel towards white), then the levels (black, white)."""
    loss = np.asarray(_CAST_DYE_LOSS[truth.cast], dtype=np.float32) * truth.cast_strength
    # Density d = 1 - v per channel; a dye that loses a share keeps (1 - loss) of its density.
    cast = 1.0 - (1.0 - image) * (1.0 - loss)
    out = truth.black + (truth.white - truth.black) * cast
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def random_fade(image: np.ndarray, seed: int | np.random.Generator, *,
                cast: bool = True) -> FadedPrint:
    """``image`` faded by a random, plausible amount: blacks lifted to 0.05..0.35, whites lowered
    to 0.75..0.97, and (when ``cast`` and the photo is in colour) one dye cast of strength
    0.2..0.8."""
    rng = _rng(seed)
    black = float(rng.uniform(0.05, 0.35))
    white = float(rng.uniform(0.75, 0.97))
    kind: CastKind = "none"
    strength = 0.0
    if cast:
        kind = ("yellow", "magenta", "red")[int(rng.integers(3))]
        strength = float(rng.uniform(0.2, 0.8))
    truth = Fade(black, white, kind, strength)
    return FadedPrint(fade(image, truth), truth)


def sepia(image: np.ndarray, *, strength: float = 1.0, pale: float = 0.0) -> np.ndarray:
    """A sepia print of ``image``: luminance toned brown (``strength`` 0..1 of the tint), then
    ``pale`` 0..1 of its contrast lost towards a light buff (a pale, faded sepia)."""
    gray = cv2.cvtColor(image.astype(np.float32), cv2.COLOR_RGB2GRAY)[..., None]
    tint = np.array([1.07, 0.74, 0.43], dtype=np.float32)  # a warm brown at mid-grey
    toned = gray * (1.0 + strength * (tint - 1.0) * (1.0 - gray))
    buff = np.array([0.93, 0.86, 0.74], dtype=np.float32)
    out = (1.0 - pale) * toned + pale * (0.35 * toned + 0.65 * buff)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def mount(image: np.ndarray, seed: int | np.random.Generator, *, margin: float = 0.12,
          max_angle: float = 2.0, bed: bool = False) -> MountedPrint:
    """``image`` laid on a card mount (or a scanner bed when ``bed``): a border of 0.5..1.5 x
    ``margin`` of the print's size on each side, the print rotated by up to ``max_angle``
    degrees. The mount is a uniform-ish card (cream, grey or dark) with a little grain and an
    illumination gradient; the scanner bed is near white or near black."""
    rng = _rng(seed)
    height, width = image.shape[:2]
    pads = [int(round(s * margin * rng.uniform(0.5, 1.5))) + 2
            for s in (height, height, width, width)]
    top, bottom, left, right = pads
    out_h, out_w = height + top + bottom, width + left + right
    if bed:
        colour = np.full(3, 0.97 if rng.random() < 0.5 else 0.04, dtype=np.float32)
    else:
        cards = np.array([[0.86, 0.80, 0.66], [0.55, 0.55, 0.52], [0.20, 0.17, 0.14],
                          [0.72, 0.62, 0.48]], dtype=np.float32)
        colour = cards[int(rng.integers(len(cards)))]
    yy, xx = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
    gradient = 1.0 + 0.04 * rng.uniform(-1, 1) * (xx / out_w - 0.5) \
        + 0.04 * rng.uniform(-1, 1) * (yy / out_h - 0.5)
    grain = rng.normal(0.0, 0.01, (out_h, out_w, 1)).astype(np.float32)
    canvas = np.clip(colour * gradient[..., None] + grain, 0.0, 1.0).astype(np.float32)
    angle = float(rng.uniform(-max_angle, max_angle))
    placed = np.zeros((out_h, out_w, 3), np.float32)
    placed[top:top + height, left:left + width] = image
    inside = np.zeros((out_h, out_w), np.float32)
    inside[top:top + height, left:left + width] = 1.0
    centre = (left + width / 2.0, top + height / 2.0)
    rotation = cv2.getRotationMatrix2D(centre, angle, 1.0)
    placed = cv2.warpAffine(placed, rotation, (out_w, out_h), flags=cv2.INTER_LINEAR)
    inside = cv2.warpAffine(inside, rotation, (out_w, out_h), flags=cv2.INTER_LINEAR)
    alpha = inside[..., None]
    composite = np.clip(alpha * placed + (1.0 - alpha) * canvas, 0.0, 1.0).astype(np.float32)
    return MountedPrint(composite, inside >= 0.5, (left, top, left + width, top + height), angle)
