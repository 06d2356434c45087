"""Seeded damage of real old prints, each kind with its truth mask (detector training, tests).

Four kinds (:data:`KINDS`), drawn by :func:`print_damage` in a fixed order over a photo:

- ``crack``: cracks and scratches of the emulsion, 0.7 to 12 px wide at the photo's own scale
  (log-uniform, so most are thin), light (paper showing) or dark (dirt), hard or soft edged,
  partly opaque with an opacity that varies along them, as crack webs
  (:func:`synth_shapes.network_alpha`), loose branching cracks (:func:`synth_shapes.crack_alpha`)
  or long scratches (:func:`synth_shapes.scratch_alpha`);
  a wide light crack may show a darker rim where the emulsion lifted.
- ``crease``: a fold, a long gently curved line often crossing the whole photo, drawn as a
  shaded ridge (one side lit, the other in shadow) with, mostly, a thin broken line of paper
  along its crest where the emulsion cracked.
- ``spot``: brown foxing (clusters of soft round spots), water stains (a dark tide line round a
  faintly tinted patch), mould (fuzzy clusters of small specks) and dust.
- ``hole``: missing corners, bites out of an edge and narrow tears from an edge, showing paper
  (white to cream, fibrous), card (grey to brown) or the scanner bed (flat white or black),
  often with a rim of white paper fibres along the torn edge.

Every function takes a ``numpy.random.Generator``; the same seed gives the same damage. The
truth of a kind is where that kind's layer changes the photo visibly, by at least
:data:`VISIBLE` in some channel (the soft edge of a crack is included as far as it shows); a
pixel changed by a later layer belongs to the later kind. :func:`old_print_damage` adds the
nuisances of an old scan that are not damage (toning, fading, grain, JPEG) around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import cv2
import numpy as np

from restorer import synth_degrade, synth_shapes

__all__ = ["KINDS", "VISIBLE", "PrintDamage", "crack_layer", "crease_layer", "spot_layer",
           "hole_layer", "print_damage", "old_print_damage"]

#: The kinds of damage, in drawing order; also the detector's legend.
KINDS: tuple[str, ...] = ("crack", "spot", "crease", "hole")
#: A pixel is damaged where a layer changes it by at least this much in some channel.
VISIBLE = 0.03
_SUPER = 4


@dataclass(frozen=True)
class PrintDamage:
    """A damaged print with its truth.

    ``image`` and ``clean`` float32 (H, W, 3) [0, 1]; ``masks`` maps every kind of
    :data:`KINDS` to a bool (H, W) mask (all False when that kind was not drawn); the masks do
    not overlap.
    """

    image: np.ndarray
    clean: np.ndarray
    masks: Mapping[str, np.ndarray]

    @property
    def mask(self) -> np.ndarray:
        """Bool (H, W): every damaged pixel, of any kind."""
        return np.logical_or.reduce([m for m in self.masks.values()])

    @property
    def kinds(self) -> frozenset[str]:
        """The kinds that left at least one damaged pixel."""
        return frozenset(k for k, m in self.masks.items() if m.any())


def _coverage(canvas: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return cv2.resize(canvas.astype(np.float32) / 255.0, shape[::-1],
                      interpolation=cv2.INTER_AREA)


def _smooth_field(shape: tuple[int, int], rng: np.random.Generator, low: float, high: float,
                  cells: int = 5) -> np.ndarray:
    """Smooth random field float32 (H, W) in [``low``, ``high``]."""
    grid = rng.uniform(low, high, (cells, cells)).astype(np.float32)
    return np.clip(cv2.resize(grid, shape[::-1], interpolation=cv2.INTER_CUBIC), low, high)


def _paper(shape: tuple[int, int], rng: np.random.Generator, *, fibres: float = 0.03
           ) -> np.ndarray:
    """Paper float32 (H, W, 3): white to cream, with a fibrous texture of strength ``fibres``."""
    white, cream = np.array([0.97, 0.96, 0.93]), np.array([0.93, 0.84, 0.66])
    base = (white + rng.uniform() * (cream - white)) * rng.uniform(0.85, 1.0)
    noise = rng.normal(0.0, 1.0, shape).astype(np.float32)
    angle = rng.uniform(0, 180)
    kernel = cv2.getRotationMatrix2D((3, 3), angle, 1.0)
    streak = np.zeros((7, 7), np.float32)
    streak[3, :] = 1.0 / 7
    streak = cv2.warpAffine(streak, kernel, (7, 7))
    texture = cv2.filter2D(noise, -1, streak / max(streak.sum(), 1e-6)) * fibres * 2
    return np.clip(base[None, None, :] + texture[..., None], 0.0, 1.0).astype(np.float32)


def _dirt(rng: np.random.Generator) -> np.ndarray:
    """A dark dirt colour (3,): grey-brown to black."""
    return (np.array([0.25, 0.2, 0.16]) * rng.uniform(0.15, 1.0)).astype(np.float32)


def _over(image: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return np.clip(image * (1.0 - a) + colour * a, 0.0, 1.0).astype(np.float32)


def crack_layer(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` float32 (H, W, 3) with one seeded set of cracks or scratches painted on."""
    shape = image.shape[:2]
    width = float(np.exp(rng.uniform(np.log(0.7), np.log(12.0))))
    spread = (max(0.6, width * 0.6), width * 1.4)
    style = rng.choice(["web", "loose", "scratch"], p=[0.4, 0.4, 0.2])
    if style == "web":
        alpha = synth_shapes.network_alpha(shape, rng, width=spread, cells=(8, 50))
    elif style == "loose":
        alpha = synth_shapes.crack_alpha(shape, rng, count=int(rng.integers(1, 5)), width=spread,
                                         branch_probability=rng.uniform(0.1, 0.6))
    else:
        alpha = synth_shapes.scratch_alpha(shape, rng, count=int(rng.integers(1, 4)), width=spread)
    softness = rng.choice([0.0, rng.uniform(0.4, 1.5)], p=[0.5, 0.5])
    if softness > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), softness)
    alpha = alpha * _smooth_field(shape, rng, rng.uniform(0.3, 0.8), 1.0)
    if rng.random() < 0.75:
        out = _over(image, alpha, _paper(shape, rng))
        if width >= 3.0 and rng.random() < 0.4:  # lifted emulsion: a darker rim round the crack
            rim = np.clip(cv2.dilate(alpha, np.ones((3, 3), np.uint8)) - alpha, 0.0, 1.0)
            out = _over(out, rim * rng.uniform(0.3, 0.7), _dirt(rng))
        return out
    return _over(image, alpha, _dirt(rng) + rng.normal(0, 0.02, (*shape, 1)).astype(np.float32))


def _curve(shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance (H, W) to a long, gently curved line across the photo, in px, and the
    position along it (H, W) in [0, 1] over the photo."""
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    centre = rng.uniform([0.15 * width, 0.15 * height], [0.85 * width, 0.85 * height])
    angle = rng.uniform(0, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)], np.float32)
    along = (xs - centre[0]) * direction[0] + (ys - centre[1]) * direction[1]
    across = -(xs - centre[0]) * direction[1] + (ys - centre[1]) * direction[0]
    diagonal = float(np.hypot(height, width))
    bow = rng.normal(0.0, 0.04) * diagonal
    wiggle, period, phase = rng.uniform(0, 0.006) * diagonal, rng.uniform(0.3, 1.0), rng.uniform(0, 6.3)
    t = along / diagonal
    offset = bow * (1 - 4 * t ** 2) + wiggle * np.sin(2 * np.pi * t / period + phase)
    slope = np.gradient(offset, axis=1) * direction[0] + np.gradient(offset, axis=0) * direction[1]
    return (across - offset) / np.sqrt(1.0 + slope ** 2), t + 0.5


def crease_layer(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` float32 (H, W, 3) with one seeded crease or fold drawn on it."""
    shape = image.shape[:2]
    distance, along = _curve(shape, rng)
    scale = max(shape) / 640.0
    ridge = rng.uniform(1.5, 8.0) * scale
    # Shading across the fold: derivative-of-Gaussian profile (one side lit, one in shadow).
    u = distance / ridge
    shade = u * np.exp(0.5 - 0.5 * u ** 2) * rng.uniform(0.08, 0.3) * rng.choice([-1, 1])
    # Where the fold ends: mostly it runs the whole length, else it stops inside the photo.
    start, stop = -1.0, 2.0
    if rng.random() < 0.35:
        start = rng.uniform(-0.2, 0.5)
        stop = start + rng.uniform(0.35, 1.2)
    taper = np.clip(np.minimum(along - start, stop - along) * 10.0, 0.0, 1.0)
    shade = shade * taper * _smooth_field(shape, rng, 0.5, 1.0)
    out = np.clip(image * (1.0 + shade[..., None]) + 0.3 * shade[..., None], 0.0, 1.0)
    if rng.random() < 0.8:  # the emulsion cracked along the crest: a thin line of paper
        core = rng.uniform(0.4, 2.5) * scale
        alpha = np.clip(core / 2 + 0.5 - np.abs(distance), 0.0, 1.0)
        gaps = _smooth_field(shape, rng, -1.0, 1.0, cells=int(rng.integers(6, 20)))
        alpha = alpha * taper * np.clip(gaps * 3.0 + rng.uniform(0.0, 2.0), 0.0, 1.0)
        out = _over(out, alpha * rng.uniform(0.5, 1.0), _paper(shape, rng))
    return out.astype(np.float32)


def _blob(canvas: np.ndarray, centre: np.ndarray, radius: float, rng: np.random.Generator,
          value: int = 255) -> None:
    """Fill an irregular round blob of ``radius`` (canvas px) at ``centre`` on ``canvas``."""
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    wobble = 1.0 + np.convolve(rng.normal(0, 0.15, 30), np.ones(4) / 4, "same")[3:27]
    points = centre + np.stack([np.cos(angles), np.sin(angles)], 1) * (radius * wobble)[:, None]
    cv2.fillPoly(canvas, [points.round().astype(np.int32)], value, cv2.LINE_AA)


def spot_layer(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` float32 (H, W, 3) with one seeded kind of spots: foxing, a water stain,
    mould or dust."""
    shape = image.shape[:2]
    height, width = shape
    scale = max(shape) / 640.0
    style = rng.choice(["foxing", "stain", "mould", "dust"], p=[0.35, 0.2, 0.15, 0.3])
    canvas = np.zeros((height * _SUPER, width * _SUPER), np.uint8)
    if style == "dust":
        alpha = synth_shapes.spot_alpha(shape, rng, count=int(rng.integers(10, 80)),
                                        radius=(0.5, 3.0 * scale))
        colour = _paper(shape, rng) if rng.random() < 0.5 else _dirt(rng)
        return _over(image, alpha * rng.uniform(0.6, 1.0), colour)
    if style == "stain":
        centre = rng.uniform([0, 0], [width, height])
        radius = rng.uniform(15, 90) * scale
        _blob(canvas, centre * _SUPER, radius * _SUPER, rng)
        patch = _coverage(canvas, shape)
        line = rng.uniform(0.7, 3.0) * scale
        edge = np.clip(patch - cv2.erode(patch, cv2.getStructuringElement(
            cv2.MORPH_ELLIPSE, (2 * int(line) + 1,) * 2)), 0.0, 1.0)
        edge = cv2.GaussianBlur(edge, (0, 0), 0.6)
        tint = np.array([0.62, 0.45, 0.25], np.float32) * rng.uniform(0.7, 1.1)
        out = _over(image, patch * rng.uniform(0.05, 0.25), tint)
        return _over(out, np.clip(edge * rng.uniform(0.4, 0.9), 0, 1), tint * 0.7)
    clusters = int(rng.integers(1, 4))
    for _ in range(clusters):
        middle = rng.uniform([0, 0], [width, height])
        spread = rng.uniform(10, 80) * scale
        count = int(rng.integers(5, 40)) if style == "foxing" else int(rng.integers(30, 150))
        for _ in range(count):
            centre = (middle + rng.normal(0, spread, 2)) * _SUPER
            radius = (rng.uniform(1.0, 8.0) if style == "foxing" else rng.uniform(0.5, 2.0))
            _blob(canvas, centre, radius * scale * _SUPER, rng)
    alpha = _coverage(canvas, shape)
    alpha = cv2.GaussianBlur(alpha, (0, 0), rng.uniform(0.5, 2.0) if style == "foxing" else 0.7)
    alpha = np.clip(alpha * rng.uniform(1.0, 1.6), 0.0, 1.0) * rng.uniform(0.4, 0.95)
    if style == "foxing":
        colour = np.array([0.55, 0.33, 0.16], np.float32) * rng.uniform(0.6, 1.1)
    else:
        colour = (np.array([0.85, 0.86, 0.8], np.float32) if rng.random() < 0.5
                  else np.array([0.25, 0.28, 0.22], np.float32))
    return _over(image, alpha, colour)


def _hole_outline(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Polygon (N, 2) in px of a missing corner, a bite out of an edge or a narrow tear."""
    height, width = shape
    short = min(height, width)
    style = rng.choice(["corner", "edge", "tear"], p=[0.45, 0.3, 0.25])
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64)
    if style == "corner":
        index = int(rng.integers(4))
        corner = corners[index]
        a, b = corners[(index + 1) % 4] - corner, corners[(index - 1) % 4] - corner
        a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
        size = rng.uniform(0.06, 0.35) * short
        p, q = corner + a * size * rng.uniform(0.5, 1.5), corner + b * size * rng.uniform(0.5, 1.5)
        outside = corner - (a + b) * 4
        edge = synth_shapes.jagged_path(p, q, rng)
        return np.vstack([outside[None], p + (p - corner) * 0.02, edge, q + (q - corner) * 0.02])
    side = int(rng.integers(4))
    start, end = corners[side], corners[(side + 1) % 4]
    run = end - start
    unit = run / np.linalg.norm(run)
    inward = np.array([-unit[1], unit[0]])
    if np.dot(inward, np.array([width / 2, height / 2]) - start) < 0:
        inward = -inward
    centre = start + run * rng.uniform(0.15, 0.85)
    if style == "edge":
        half, depth = rng.uniform(0.05, 0.25) * short, rng.uniform(0.02, 0.12) * short
    else:
        half, depth = rng.uniform(0.005, 0.02) * short, rng.uniform(0.1, 0.4) * short
    tip = centre + inward * depth + unit * rng.normal(0, 0.3) * depth
    left, right = centre - unit * half - inward * 4, centre + unit * half - inward * 4
    return np.vstack([left[None], synth_shapes.jagged_path(left + inward * 4, tip, rng),
                      synth_shapes.jagged_path(tip, right + inward * 4, rng)[1:], right[None]])


def hole_layer(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` float32 (H, W, 3) with a seeded missing corner, bite out of an edge or tear."""
    shape = image.shape[:2]
    canvas = np.zeros((shape[0] * _SUPER, shape[1] * _SUPER), np.uint8)
    outline = (_hole_outline(shape, rng) * _SUPER).round().astype(np.int32)
    cv2.fillPoly(canvas, [outline], 255, cv2.LINE_AA)
    alpha = _coverage(canvas, shape)
    backing = rng.choice(["paper", "card", "scanner"], p=[0.45, 0.3, 0.25])
    if backing == "paper":
        fill = _paper(shape, rng, fibres=rng.uniform(0.01, 0.05))
    elif backing == "card":
        tone = rng.uniform(0.1, 0.7)
        colour = np.array([tone, tone * rng.uniform(0.8, 1.0), tone * rng.uniform(0.6, 1.0)])
        fill = np.clip(colour + rng.normal(0, 0.015, (*shape, 1)), 0, 1).astype(np.float32)
    else:
        level = rng.choice([rng.uniform(0.9, 1.0), rng.uniform(0.0, 0.08)])
        fill = np.clip(np.full((*shape, 3), level) + rng.normal(0, 0.005, (*shape, 1)), 0,
                       1).astype(np.float32)
    out = _over(image, alpha, fill)
    if rng.random() < 0.6:  # paper fibres where the emulsion tore away: a white rim
        rim_width = rng.uniform(1.0, 4.0) * max(shape) / 640.0
        grown = cv2.dilate(canvas, cv2.getStructuringElement(
            cv2.MORPH_ELLIPSE, (2 * int(rim_width * _SUPER) + 1,) * 2))
        rim = np.clip(_coverage(grown, shape) - alpha, 0.0, 1.0)
        rim = rim * _smooth_field(shape, rng, 0.3, 1.0, cells=12)
        out = _over(out, rim, _paper(shape, rng))
    return out


_LAYERS = {"crack": crack_layer, "spot": spot_layer, "crease": crease_layer, "hole": hole_layer}
#: Chance that :func:`print_damage` draws each kind, when not told which.
_CHANCE = {"crack": 0.6, "spot": 0.45, "crease": 0.35, "hole": 0.3}


def print_damage(clean: np.ndarray, rng: np.random.Generator, *,
                 kinds: Iterable[str] | None = None,
                 counts: Mapping[str, tuple[int, int]] | None = None) -> PrintDamage:
    """Seeded old-print damage on float (H, W, 3) ``clean``, with per-kind truth.

    ``kinds`` names the kinds to draw (None: each by a coin toss, at least one); ``counts``
    how many layers of a kind, drawn per kind from the inclusive range (default crack 1 to 3,
    spot 1 to 3, crease 1 to 2, hole 1 to 2). A layer's truth is where it changes the photo by
    at least :data:`VISIBLE`.
    """
    clean = np.asarray(clean, dtype=np.float32)
    if kinds is None:
        chosen = [k for k in KINDS if rng.random() < _CHANCE[k]]
        if not chosen:
            chosen = [KINDS[int(rng.integers(len(KINDS)))]]
    else:
        chosen = list(kinds)
        unknown = sorted(set(chosen) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown damage kind(s) {', '.join(unknown)}; known: {KINDS}")
    ranges = {"crack": (1, 3), "spot": (1, 3), "crease": (1, 2), "hole": (1, 2),
              **(counts or {})}
    owner = np.zeros(clean.shape[:2], np.int8)  # 0 none, else 1 + index in KINDS
    image = clean
    for index, kind in enumerate(KINDS):
        if kind not in chosen:
            continue
        low, high = ranges[kind]
        for _ in range(int(rng.integers(low, high + 1))):
            painted = _LAYERS[kind](image, rng)
            owner[np.abs(painted - image).max(axis=2) >= VISIBLE] = index + 1
            image = painted
    masks = {kind: owner == index + 1 for index, kind in enumerate(KINDS)}
    return PrintDamage(image=image, clean=clean, masks=masks)


def old_print_damage(clean: np.ndarray, rng: np.random.Generator, *,
                     kinds: Iterable[str] | None = None) -> PrintDamage:
    """:func:`print_damage` on a toned or faded copy of ``clean`` (:func:`synth_degrade.age`),
    then film grain or JPEG (:func:`synth_degrade.scan`); ``clean`` of the result is the toned
    copy, unscanned."""
    toned = synth_degrade.age(np.asarray(clean, dtype=np.float32), rng)
    damaged = print_damage(toned, rng, kinds=kinds)
    return PrintDamage(image=synth_degrade.scan(damaged.image, rng), clean=toned,
                       masks=damaged.masks)
