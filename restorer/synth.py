"""Seeded synthetic damage for tests, benchmarks and training.

Every function takes a ``numpy.random.Generator``; the same seed gives the same damage. Cracks
are drawn at 4x resolution and area-downsampled, so their edges are soft like real ones; the
returned truth mask is where the crack covers at least ``TRUTH_ALPHA`` of a pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from restorer.ops import luminance

__all__ = [
    "TRUTH_ALPHA",
    "Damaged",
    "crack_alpha",
    "apply_cracks",
    "blur",
    "damage",
    "spot_alpha",
    "DefectSample",
    "defects",
    "network_alpha",
    "jagged_path",
    "scratch_alpha",
    "aged_defects",
    "age",
    "scan",
    "old_print",
]

TRUTH_ALPHA = 0.3
_SUPER = 4

Polarity = Literal["light", "dark"]
BlurKind = Literal["gaussian", "defocus", "motion"]


@dataclass(frozen=True)
class Damaged:
    """A damaged photo with its truth: images float32 (H, W, 3) [0, 1], mask bool (H, W)."""

    image: np.ndarray
    clean: np.ndarray
    mask: np.ndarray
    blurred: bool
    cracked: bool


def crack_alpha(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    count: int = 3,
    width: tuple[float, float] = (1.0, 5.0),
    branch_probability: float = 0.35,
) -> np.ndarray:
    """Coverage in [0, 1], float32 (H, W), of ``count`` curved, branching cracks.

    Each crack is a random walk with smoothly varying direction, ``width`` pixels wide (drawn
    per crack from the range), and may fork into thinner branches.
    """
    height, width_px = shape
    canvas = np.zeros((height * _SUPER, width_px * _SUPER), np.uint8)
    diagonal = float(np.hypot(height, width_px))
    for _ in range(count):
        start = rng.uniform([0, 0], [width_px, height])
        angle = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(0.25, 0.8) * diagonal
        crack_width = rng.uniform(*width)
        _walk(canvas, rng, start, angle, length, crack_width, branch_probability, depth=0)
    return _coverage(canvas, (height, width_px))


def _coverage(canvas: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Coverage float32 (H, W) in [0, 1] of uint8 ``canvas`` drawn at ``_SUPER`` times ``shape``
    (area-downsampled: soft edges)."""
    alpha = cv2.resize(canvas.astype(np.float32) / 255.0, shape[::-1],
                       interpolation=cv2.INTER_AREA)
    return np.clip(alpha, 0.0, 1.0)


def _walk(
    canvas: np.ndarray,
    rng: np.random.Generator,
    start: np.ndarray,
    angle: float,
    length: float,
    width: float,
    branch_probability: float,
    depth: int,
) -> None:
    step = 3.0
    points = [start.copy()]
    drift = 0.0
    position = start.copy()
    for _ in range(int(length / step)):
        # A slowly wandering heading plus jagged step-to-step jitter, like a real crack.
        drift = 0.9 * drift + rng.normal(0.0, 0.02)
        angle += drift
        heading = angle + rng.normal(0.0, 0.25)
        position = position + step * np.array([np.cos(heading), np.sin(heading)])
        points.append(position.copy())
        if depth < 2 and rng.random() < branch_probability * step / length * 3:
            _walk(canvas, rng, position.copy(), angle + rng.choice([-1, 1]) * rng.uniform(0.4, 1.2),
                  length * rng.uniform(0.2, 0.5), max(1.0, width * rng.uniform(0.5, 0.9)),
                  branch_probability, depth + 1)
    pts = (np.array(points) * _SUPER).round().astype(np.int32).reshape(-1, 1, 2)
    # Width varies a little along the crack: draw it in a few chunks.
    for chunk in np.array_split(np.arange(len(pts)), max(1, len(pts) // 12)):
        if len(chunk) < 2:
            continue
        thickness = max(1, int(round(width * rng.uniform(0.75, 1.25) * _SUPER)))
        cv2.polylines(canvas, [pts[chunk[0]:chunk[-1] + 2]], False, 255, thickness, cv2.LINE_AA)


def apply_cracks(
    image: np.ndarray,
    alpha: np.ndarray,
    rng: np.random.Generator,
    *,
    polarity: Polarity = "light",
) -> np.ndarray:
    """Paint cracks of coverage ``alpha`` onto float (H, W, 3) ``image``.

    Light cracks show the paper base (near white, slightly warm, with fibre texture); dark ones
    are dirt-filled (near black). Returns float32 (H, W, 3) in [0, 1].
    """
    height, width = alpha.shape
    if polarity == "light":
        base = np.array([0.97, 0.95, 0.90], np.float32) * rng.uniform(0.88, 1.0)
    else:
        base = np.array([0.08, 0.07, 0.06], np.float32) * rng.uniform(0.3, 1.5)
    texture = rng.normal(0.0, 0.03, (height, width, 1)).astype(np.float32)
    colour = np.clip(base + texture, 0.0, 1.0)
    opacity = rng.uniform(0.8, 1.0)
    a = (alpha * opacity)[..., None]
    return np.clip(image * (1.0 - a) + colour * a, 0.0, 1.0).astype(np.float32)


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


def damage(
    clean: np.ndarray,
    rng: np.random.Generator,
    *,
    cracks: bool = True,
    blurred: bool = False,
    crack_count: tuple[int, int] = (2, 6),
    crack_width: tuple[float, float] = (1.0, 5.0),
    blur_strength: tuple[float, float] = (1.5, 3.5),
) -> Damaged:
    """Apply seeded blur and/or cracks (each light or dark) to ``clean`` float (H, W, 3).

    Blur is applied first (the print was blurred, then cracked).
    """
    image = clean
    if blurred:
        kind = rng.choice(["gaussian", "defocus", "motion"])
        image = blur(image, rng, kind=kind, strength=rng.uniform(*blur_strength))
    mask = np.zeros(clean.shape[:2], bool)
    if cracks:
        image, coverage = _add_cracks(image, rng, crack_count, crack_width)
        mask = coverage >= TRUTH_ALPHA
    return Damaged(image=image, clean=clean, mask=mask, blurred=blurred, cracked=cracks)


def _add_cracks(
    image: np.ndarray,
    rng: np.random.Generator,
    crack_count: tuple[int, int],
    crack_width: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Draw a seeded number of cracks, half light (rounded up) and half dark, on float (H, W, 3).

    Returns the cracked image float32 (H, W, 3) and the cracks' coverage float32 (H, W).
    """
    coverage = np.zeros(image.shape[:2], np.float32)
    count = int(rng.integers(crack_count[0], crack_count[1] + 1))
    for polarity in ("light", "dark"):
        share = count // 2 if polarity == "dark" else count - count // 2
        if share == 0:
            continue
        alpha = crack_alpha(image.shape[:2], rng, count=share, width=crack_width)
        image = apply_cracks(image, alpha, rng, polarity=polarity)
        np.maximum(coverage, alpha, out=coverage)
    return image, coverage


def spot_alpha(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    count: int = 30,
    radius: tuple[float, float] = (0.5, 3.0),
) -> np.ndarray:
    """Coverage in [0, 1], float32 (H, W), of ``count`` dust specks and small spots.

    Each is an ellipse (radius in pixels drawn per spot, elongation up to 3:1, random angle),
    drawn at 4x resolution and area-downsampled like the cracks; a third are short fibres
    (curved strokes 4 to 15 px long and under 1.5 px wide).
    """
    height, width = shape
    canvas = np.zeros((height * _SUPER, width * _SUPER), np.uint8)
    for _ in range(count):
        centre = rng.uniform([0, 0], [width, height]) * _SUPER
        if rng.random() < 1.0 / 3.0:
            length = rng.uniform(4.0, 15.0)
            angle = rng.uniform(0, 2 * np.pi)
            bend = rng.normal(0.0, 0.3, 4).cumsum() + angle
            steps = np.stack([np.cos(bend), np.sin(bend)], axis=1) * length / 4 * _SUPER
            points = (centre + np.vstack([[0.0, 0.0], steps.cumsum(axis=0)])).round()
            thickness = max(1, int(round(rng.uniform(0.6, 1.5) * _SUPER)))
            cv2.polylines(canvas, [points.astype(np.int32).reshape(-1, 1, 2)], False, 255,
                          thickness, cv2.LINE_AA)
            continue
        major = rng.uniform(*radius) * _SUPER
        minor = major / rng.uniform(1.0, 3.0)
        axes = (max(1, int(round(major))), max(1, int(round(minor))))
        cv2.ellipse(canvas, (int(centre[0]), int(centre[1])), axes, rng.uniform(0, 180), 0, 360,
                    255, -1, cv2.LINE_AA)
    return _coverage(canvas, (height, width))


@dataclass(frozen=True)
class DefectSample:
    """A photo with defects for detector training and tests.

    ``image`` float32 (H, W, 3) [0, 1]; ``coverage`` float32 (H, W) [0, 1], how much of each
    pixel the defects cover; ``mask`` bool (H, W), coverage >= ``TRUTH_ALPHA``.
    """

    image: np.ndarray
    coverage: np.ndarray
    mask: np.ndarray


def defects(
    clean: np.ndarray,
    rng: np.random.Generator,
    *,
    crack_count: tuple[int, int] = (2, 6),
    crack_width: tuple[float, float] = (1.0, 5.0),
    spot_count: tuple[int, int] = (0, 40),
) -> DefectSample:
    """Seeded cracks (light and dark, as in :func:`damage`) plus dust and spots on ``clean``.

    Spots take the polarity of a coin toss per batch: light ones show the paper, dark ones are
    dirt. ``crack_count`` (0, 0) gives a photo with dust only; with ``spot_count`` (0, 0) too,
    the photo is returned undamaged (a negative example).
    """
    image, coverage = _add_cracks(np.asarray(clean, dtype=np.float32), rng, crack_count,
                                  crack_width)
    spots = int(rng.integers(spot_count[0], spot_count[1] + 1))
    if spots:
        alpha = spot_alpha(clean.shape[:2], rng, count=spots)
        image = apply_cracks(image, alpha, rng, polarity=rng.choice(["light", "dark"]))
        np.maximum(coverage, alpha, out=coverage)
    return DefectSample(image=image, coverage=coverage, mask=coverage >= TRUTH_ALPHA)


def network_alpha(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    cells: tuple[int, int] = (12, 60),
    width: tuple[float, float] = (0.6, 2.0),
    keep: tuple[float, float] = (0.35, 0.8),
) -> np.ndarray:
    """Coverage in [0, 1], float32 (H, W), of a web of jagged cracks (emulsion craquelure).

    Seed points scattered over a random part of the photo are joined along the edges of their
    Delaunay triangulation; a share ``keep`` of the edges is drawn, each as a jagged polyline
    (midpoint displacement) ``width`` pixels wide, so the cracks meet at junctions like those
    of a cracked print rather than running alone.
    """
    height, width_px = shape
    canvas = np.zeros((height * _SUPER, width_px * _SUPER), np.uint8)
    count = int(rng.integers(cells[0], cells[1] + 1))
    # The web covers an axis-aligned part of the photo: from a third of it to all of it.
    span = rng.uniform(0.35, 1.0, 2) * [width_px, height]
    origin = rng.uniform([0, 0], [width_px, height] - span)
    points = origin + rng.uniform(0, 1, (count, 2)) * span
    subdiv = cv2.Subdiv2D((0, 0, width_px + 1, height + 1))
    for x, y in points:
        subdiv.insert((float(np.clip(x, 0, width_px)), float(np.clip(y, 0, height))))
    edges = subdiv.getEdgeList()
    inside = (edges[:, [0, 2]] >= 0).all(1) & (edges[:, [0, 2]] <= width_px).all(1) & \
        (edges[:, [1, 3]] >= 0).all(1) & (edges[:, [1, 3]] <= height).all(1)
    edges = edges[inside]
    chosen = edges[rng.random(len(edges)) < rng.uniform(*keep)]
    line_width = rng.uniform(*width)
    for x0, y0, x1, y1 in chosen:
        path = jagged_path(np.array([x0, y0]), np.array([x1, y1]), rng)
        pts = (path * _SUPER).round().astype(np.int32).reshape(-1, 1, 2)
        thickness = max(1, int(round(line_width * rng.uniform(0.7, 1.3) * _SUPER)))
        cv2.polylines(canvas, [pts], False, 255, thickness, cv2.LINE_AA)
    return _coverage(canvas, (height, width_px))


def jagged_path(start: np.ndarray, end: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Points (N, 2) of a jagged path from ``start`` to ``end`` by midpoint displacement."""
    path = np.stack([start, end]).astype(np.float64)
    roughness = rng.uniform(0.04, 0.1)
    while True:
        segment = np.diff(path, axis=0)
        lengths = np.hypot(segment[:, 0], segment[:, 1])
        if lengths.max() < 2.0:
            return path
        normal = np.stack([-segment[:, 1], segment[:, 0]], axis=1)
        middle = path[:-1] + segment / 2 + normal * rng.normal(0.0, roughness, (len(segment), 1))
        merged = np.empty((len(path) + len(middle), 2))
        merged[0::2], merged[1::2] = path, middle
        path = merged


def scratch_alpha(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    count: int = 2,
    width: tuple[float, float] = (0.6, 2.0),
) -> np.ndarray:
    """Coverage in [0, 1], float32 (H, W), of ``count`` long, nearly straight scratches.

    Each runs across much of the photo with a slight bow, ``width`` pixels wide, and may be
    broken into dashes where the stylus lifted.
    """
    height, width_px = shape
    canvas = np.zeros((height * _SUPER, width_px * _SUPER), np.uint8)
    diagonal = float(np.hypot(height, width_px))
    for _ in range(count):
        centre = rng.uniform([0, 0], [width_px, height])
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(0.3, 1.0) * diagonal
        t = np.linspace(-0.5, 0.5, max(8, int(length / 4)))
        bow = rng.normal(0.0, 0.02) * length * (1 - 4 * t ** 2)
        direction = np.array([np.cos(angle), np.sin(angle)])
        normal = np.array([-direction[1], direction[0]])
        path = centre + np.outer(t * length, direction) + np.outer(bow, normal)
        pts = (path * _SUPER).round().astype(np.int32).reshape(-1, 1, 2)
        thickness = max(1, int(round(rng.uniform(*width) * _SUPER)))
        dashed = rng.random() < 0.4
        for chunk in np.array_split(np.arange(len(pts)), max(1, len(pts) // 10)):
            if len(chunk) < 2 or (dashed and rng.random() < 0.3):
                continue
            cv2.polylines(canvas, [pts[chunk[0]:chunk[-1] + 2]], False, 255, thickness,
                          cv2.LINE_AA)
    return _coverage(canvas, (height, width_px))


def _fade(shape: tuple[int, int], rng: np.random.Generator, low: float) -> np.ndarray:
    """Smooth random opacity float32 (H, W) in [``low``, 1]: defects fade in and out."""
    grid = rng.uniform(low, 1.0, (6, 6)).astype(np.float32)
    field = cv2.resize(grid, shape[::-1], interpolation=cv2.INTER_CUBIC)
    return np.clip(field, low, 1.0)


def _paint(image: np.ndarray, alpha: np.ndarray, rng: np.random.Generator, low: float,
           light: bool) -> np.ndarray:
    """Paint coverage ``alpha`` onto float32 (H, W, 3) ``image`` in a paper or dirt colour.

    Paper ranges from white to cream, dirt from grey-brown to black; the opacity fades
    smoothly between ``low`` and 1 across the photo. Returns float32 (H, W, 3) in [0, 1].
    """
    if light:
        white, cream = np.array([0.97, 0.96, 0.93]), np.array([0.95, 0.86, 0.66])
        base = (white + rng.uniform() * (cream - white)) * rng.uniform(0.8, 1.0)
    else:
        base = np.array([0.25, 0.2, 0.16]) * rng.uniform(0.1, 1.0)
    texture = rng.normal(0.0, 0.03, (*alpha.shape, 1))
    colour = np.clip(base + texture, 0.0, 1.0).astype(np.float32)
    a = (alpha * _fade(alpha.shape, rng, low))[..., None]
    return np.clip(image * (1.0 - a) + colour * a, 0.0, 1.0).astype(np.float32)


def aged_defects(clean: np.ndarray, rng: np.random.Generator) -> DefectSample:
    """Seeded damage like that of real old prints on float (H, W, 3) ``clean``.

    Mostly light (the paper shows through), thin and often faint: a web of jagged cracks
    (:func:`network_alpha`), long scratches (:func:`scratch_alpha`), loose cracks
    (:func:`crack_alpha`, 0.6 to 3 px) and dust; each present by a coin toss (at least one
    of the first three), each light with probability 0.8, its opacity fading between 0.35 and
    0.6 at the faintest and 1. The truth is where a defect covers the pixel, however faint.
    """
    image = np.asarray(clean, dtype=np.float32)
    coverage = np.zeros(image.shape[:2], np.float32)
    present = rng.random(3) < (0.55, 0.45, 0.5)
    if not present.any():
        present[rng.integers(3)] = True
    shape = image.shape[:2]
    layers = []
    if present[0]:
        layers.append(network_alpha(shape, rng))
    if present[1]:
        layers.append(scratch_alpha(shape, rng, count=int(rng.integers(1, 5))))
    if present[2]:
        layers.append(crack_alpha(shape, rng, count=int(rng.integers(1, 5)), width=(0.6, 3.0)))
    spots = int(rng.integers(0, 30))
    if spots:
        layers.append(spot_alpha(shape, rng, count=spots, radius=(0.5, 2.5)))
    for alpha in layers:
        image = _paint(image, alpha, rng, rng.uniform(0.35, 0.6), light=rng.random() < 0.8)
        np.maximum(coverage, alpha, out=coverage)
    return DefectSample(image=image, coverage=coverage, mask=coverage >= TRUTH_ALPHA)


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


def old_print(clean: np.ndarray, rng: np.random.Generator) -> DefectSample:
    """A scanned old print with its defects, from float (H, W, 3) ``clean``.

    :func:`age` (toning, fading), then :func:`aged_defects`, then :func:`scan` (grain, JPEG);
    the truth is that of the defects.
    """
    sample = aged_defects(age(np.asarray(clean, dtype=np.float32), rng), rng)
    return DefectSample(image=scan(sample.image, rng), coverage=sample.coverage,
                        mask=sample.mask)
