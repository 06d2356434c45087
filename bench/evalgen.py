"""A second damage generator, for evaluation only (never imported by training code).

Written apart from ``restorer.synth`` / ``restorer.synth_print`` on purpose: other code (random
walks and scikit-image drawing instead of midpoint displacement and OpenCV polylines), other
parameters, its own truth rule. The detector never saw this damage, so what a bench measures
on it says how far detection generalises beyond its own generator.

Kinds, as in the legend of ``restorer.synth_print.KINDS``:

- ``crack``: thin branching crack webs (0.5 to 3 px), mostly light, soft-edged, of uneven
  opacity: random walks that branch, drawn with anti-aliased lines and blurred.
- ``crease``: a straight fold right across the photo, shaded as a smooth step (one side
  darker) with a bright hairline on the ridge.
- ``hole``: a torn-off corner or edge with a rough, random-walk edge, showing card.
- ``spot``: Gaussian brown foxing spots and grey dust specks.

Truth of a kind: pixels its layer moved by more than :data:`TRUTH` in mean absolute value over
the channels (the training generator uses the maximum over channels and another bound). Every
function takes a ``numpy.random.Generator`` and is deterministic given it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.draw import line_aa, polygon

__all__ = ["KINDS", "TRUTH", "EvalSample", "crack_web", "fold", "torn", "foxing", "damage"]

KINDS: tuple[str, ...] = ("crack", "spot", "crease", "hole")
TRUTH = 0.025


@dataclass(frozen=True)
class EvalSample:
    """``image``, ``clean`` float32 (H, W, 3) [0, 1]; ``masks`` kind -> bool (H, W)."""

    image: np.ndarray
    clean: np.ndarray
    masks: dict[str, np.ndarray]

    @property
    def mask(self) -> np.ndarray:
        """Bool (H, W): every damaged pixel."""
        return np.logical_or.reduce(list(self.masks.values()))


def _blend(image: np.ndarray, alpha: np.ndarray, colour: np.ndarray | float) -> np.ndarray:
    return np.clip(image + alpha[..., None] * (np.asarray(colour, np.float32) - image),
                   0.0, 1.0).astype(np.float32)


def _walk(alpha: np.ndarray, start: np.ndarray, heading: float, steps: int,
          rng: np.random.Generator, depth: int) -> None:
    """Draw a branching random walk on ``alpha`` (float (H, W)), 1-px anti-aliased segments."""
    height, width = alpha.shape
    point = start.astype(np.float64)
    for _ in range(steps):
        heading += rng.normal(0.0, 0.35)
        step = rng.uniform(2.0, 6.0)
        nxt = point + step * np.array([np.cos(heading), np.sin(heading)])
        r0, c0, r1, c1 = (int(round(v)) for v in (point[1], point[0], nxt[1], nxt[0]))
        rr, cc, val = line_aa(r0, c0, r1, c1)
        keep = (rr >= 0) & (rr < height) & (cc >= 0) & (cc < width)
        np.maximum.at(alpha, (rr[keep], cc[keep]), val[keep].astype(np.float32))
        point = nxt
        if not (0 <= point[0] < width and 0 <= point[1] < height):
            return
        if depth < 3 and rng.random() < 0.06:
            _walk(alpha, point, heading + rng.choice([-1, 1]) * rng.uniform(0.5, 1.3),
                  int(steps * rng.uniform(0.2, 0.6)), rng, depth + 1)


def crack_web(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Thin branching crack webs, mostly light, soft-edged, on float (H, W, 3) ``image``."""
    height, width = image.shape[:2]
    alpha = np.zeros((height, width), np.float32)
    for _ in range(int(rng.integers(2, 7))):
        start = rng.uniform([0, 0], [width, height])
        _walk(alpha, start, rng.uniform(0, 2 * np.pi), int(rng.integers(30, 160)), rng, 0)
    thickness = rng.uniform(0.5, 3.0)
    if thickness > 1.2:
        alpha = ndimage.grey_dilation(alpha, size=int(round(thickness)))
    alpha = ndimage.gaussian_filter(alpha, rng.uniform(0.5, 1.1))
    alpha = np.clip(alpha * rng.uniform(1.2, 2.0), 0.0, 1.0)
    opacity = ndimage.zoom(rng.uniform(0.35, 1.0, (4, 4)), (height / 4, width / 4), order=1)
    alpha = alpha * opacity[:height, :width].astype(np.float32)
    light = rng.random() < 0.8
    colour = np.array([0.92, 0.9, 0.85]) if light else np.array([0.12, 0.1, 0.09])
    return _blend(image, alpha, colour)


def fold(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A straight fold across float (H, W, 3) ``image``: a shaded step and a bright ridge."""
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
    signed = (xs - cx) * np.sin(angle) - (ys - cy) * np.cos(angle)
    soft = rng.uniform(2.0, 6.0) * max(height, width) / 512.0
    step = np.tanh(signed / soft)
    ridge = np.exp(-(signed / (0.4 * soft)) ** 2)
    shade = 1.0 - rng.uniform(0.04, 0.15) * (1.0 + step) * np.exp(-np.abs(signed) / (4 * soft))
    out = np.clip(image * shade[..., None], 0.0, 1.0)
    return _blend(out, (ridge * rng.uniform(0.4, 0.9)).astype(np.float32), 0.95)


def torn(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A torn-off corner or edge of float (H, W, 3) ``image`` with a rough edge, card behind."""
    height, width = image.shape[:2]
    n = 40
    if rng.random() < 0.5:  # corner: a rough line from one edge to the neighbouring one
        a, b = rng.uniform(0.1, 0.3) * width, rng.uniform(0.1, 0.3) * height
        t = np.linspace(0, 1, n)
        xs, ys = a * (1 - t), b * t
        rough = np.cumsum(rng.normal(0, 1.2, (n, 2)), axis=0)
        xs, ys = xs + rough[:, 0], ys + rough[:, 1]
        rows, cols = np.r_[ys, -2, -2], np.r_[xs, -2, a]
        rows[0], cols[-1] = -2, cols[0]
    else:  # a bite out of the bottom edge
        left, right = sorted(rng.uniform(0.1, 0.9, 2) * width)
        right = max(right, left + 0.08 * width)
        depth = rng.uniform(0.04, 0.15) * height
        t = np.linspace(0, 1, n)
        cols = left + (right - left) * t
        rows = height - depth * np.sin(np.pi * t) + np.cumsum(rng.normal(0, 1.0, n))
        rows, cols = np.r_[height + 2, rows, height + 2], np.r_[left, cols, right]
    if rng.random() < 0.5:  # flip to another corner or edge
        rows = height - 1 - rows
    if rng.random() < 0.5:
        cols = width - 1 - cols
    rr, cc = polygon(rows, cols, (height, width))
    alpha = np.zeros((height, width), np.float32)
    alpha[rr, cc] = 1.0
    card = np.array([0.55, 0.5, 0.42]) * rng.uniform(0.5, 1.5)
    return _blend(image, alpha, np.clip(card, 0, 1))


def foxing(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian brown foxing spots and grey dust specks on float (H, W, 3) ``image``."""
    height, width = image.shape[:2]
    alpha = np.zeros((height, width), np.float32)
    for _ in range(int(rng.integers(8, 40))):
        r, c = int(rng.integers(height)), int(rng.integers(width))
        alpha[r, c] = rng.uniform(0.5, 1.0)
    sigma = rng.uniform(1.0, 3.5)
    alpha = np.clip(ndimage.gaussian_filter(alpha, sigma) * 2 * np.pi * sigma ** 2, 0, 0.9)
    out = _blend(image, alpha.astype(np.float32), np.array([0.5, 0.35, 0.2]))
    dust = (rng.random((height, width)) < 0.0008).astype(np.float32)
    dust = np.clip(ndimage.gaussian_filter(dust, 0.7) * 4, 0, 0.8)
    return _blend(out, dust.astype(np.float32), 0.4 if rng.random() < 0.5 else 0.85)


_LAYERS = {"crack": crack_web, "spot": foxing, "crease": fold, "hole": torn}


def damage(clean: np.ndarray, rng: np.random.Generator, kinds: tuple[str, ...] = ("crack",)
           ) -> EvalSample:
    """``kinds`` of damage, one layer each in :data:`KINDS` order, on float (H, W, 3) ``clean``.

    A later layer owns the pixels it changes.
    """
    image = np.asarray(clean, np.float32)
    masks = {k: np.zeros(image.shape[:2], bool) for k in KINDS}
    for kind in KINDS:
        if kind not in kinds:
            continue
        painted = _LAYERS[kind](image, rng)
        moved = np.abs(painted - image).mean(axis=2) > TRUTH
        for other in masks.values():
            other &= ~moved
        masks[kind] = moved
        image = painted
    return EvalSample(image=image, clean=np.asarray(clean, np.float32), masks=masks)
