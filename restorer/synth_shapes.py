"""Seeded shapes of defects, as coverage: what share of each pixel a defect covers.

Loose branching cracks (:func:`crack_alpha`), webs of jagged cracks (:func:`network_alpha`,
drawn along :func:`jagged_path`), long scratches (:func:`scratch_alpha`) and dust and spots
(:func:`spot_alpha`). Every function takes a ``numpy.random.Generator``; the same seed gives
the same shape. Shapes are drawn at 4x resolution and area-downsampled, so their edges are soft
like real ones. They are painted onto photos by :mod:`restorer.synth` and
:mod:`restorer.synth_print`.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["crack_alpha", "spot_alpha", "network_alpha", "jagged_path", "scratch_alpha"]

_SUPER = 4


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
