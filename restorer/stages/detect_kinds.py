"""Classical detectors of three kinds of old-print damage: spots, creases, holes.

Every detector takes a float32 (H, W, 3) [0, 1] photo and returns a bool (H, W) mask (True =
that kind of damage). Sizes are in pixels at a 512 px short side and scale with the photo.
Thresholds were chosen on ``restorer.synth_print`` (the training generator) by
``bench/print_kinds.py``; the separate evaluation generator only judges them.

- :func:`spot_mask`: foxing, stains, mould, dust: small compact marks that differ from a median
  background at two scales by more than the local texture does (brownish marks, foxing, need
  less contrast) and stand apart from what surrounds them (the corners of letters and strokes,
  which a median background also leaves behind, run on into the stroke: on the real
  oldphoto3's painted characters this test removes 85 % of the flagged pixels, on the real
  specks of scratched/a, b and d it keeps 66 to 87 %; on the training generator P_d 0.196 ->
  0.116 at P_fa 0.0070 -> 0.0036). The ``spotted`` label is still measured without the ring
  test, as it was calibrated: refitted with it, a clean skimage ``coffee`` (its crema's bubbles)
  was called spotted.
- :func:`crease_mask`: long, straight or gently curved lines of shading crossing the photo:
  Canny edges of the smoothed luma, probabilistic Hough segments longer than a third of the
  short side, kept where the edge runs along most of the segment, drawn as a band.
- :func:`hole_mask`: tears and missing corners: flat regions with no photographic content
  (no shading across them, not a clipped highlight or shadow) shaped like a loss (a solid bite
  from one side or a corner) that meet the photo along a sharp boundary. Chosen on the
  training generator against flat skies and backdrops of clean photos (docs/damage.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from restorer.masks import component_stats, grow, hysteresis
from restorer.ops import luminance

__all__ = ["KindParams", "spot_mask", "crease_lines", "crease_mask", "hole_mask"]


@dataclass(frozen=True)
class KindParams:
    """Thresholds of the three detectors (contrasts in [0, 1] units, sizes at 512 px).

    Spots: seeds differ from the background by ``spot_contrast`` and ``spot_salience`` times the
    local texture, brownish ones by ``spot_brown`` less; marks span at most ``spot_max`` px and
    are at most ``spot_elongation`` times longer than wide, and at most ``spot_ring`` of the
    ring round a mark looks like the mark. Creases: Hough segments of at
    least ``crease_length`` x the short side with ``crease_support`` of their length on an
    edge, drawn ``crease_band`` px wide. Holes: see :func:`hole_mask`.
    """

    spot_contrast: float = 0.08
    spot_salience: float = 8.0
    spot_brown: float = 0.03
    spot_max: float = 20.0
    spot_elongation: float = 3.0
    spot_grow: float = 1.0
    spot_ring: float = 0.25
    crease_lines: int = 2000
    crease_count: int = 2
    crease_length: float = 0.3
    crease_support: float = 0.55
    crease_band: float = 3.0
    hole_flat: float = 0.03
    hole_area: float = 0.004
    hole_max: float = 0.15
    hole_edge: float = 0.15
    hole_slope: float = 0.015
    hole_drift: float = 0.01
    hole_clip: float = 0.98
    hole_solidity: float = 0.8
    hole_elsewhere: float = 1.0


def _scale(image: np.ndarray) -> float:
    return min(image.shape[:2]) / 512.0


def _odd(value: float) -> int:
    return max(3, int(round(value))) | 1


def spot_mask(image: np.ndarray, params: KindParams = KindParams(), *,
              isolated: bool = True) -> np.ndarray:
    """Bool (H, W): small compact marks (spots, foxing, dust, mould) of float32 (H, W, 3)
    ``image``; ``isolated`` False skips the ring test (the ``spotted`` label's statistic, as
    calibrated)."""
    scale = _scale(image)
    luma = luminance(image).astype(np.float32)
    brown = (image[..., 0] - image[..., 2]).astype(np.float32)
    luma8 = np.clip(luma * 255 + 0.5, 0, 255).astype(np.uint8)
    brown8 = np.clip((brown + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    found = np.zeros(luma.shape, bool)
    for size in (9.0, 25.0):
        k = min(_odd(size * scale), 255)
        diff = luma - cv2.medianBlur(luma8, k).astype(np.float32) / 255.0
        browner = brown - (cv2.medianBlur(brown8, k).astype(np.float32) / 127.5 - 1.0)
        texture = cv2.blur(np.abs(diff), (_odd(4 * k),) * 2)
        brown_texture = cv2.blur(np.abs(browner), (_odd(4 * k),) * 2)
        score = np.maximum(np.abs(diff) / params.spot_contrast, browner / params.spot_brown)
        salient = ((np.abs(diff) >= params.spot_salience * texture)
                   | (browner >= params.spot_salience * brown_texture))
        found |= hysteresis(np.where(salient, score, 0.0), 0.6, 1.0)
    labels, stats = component_stats(found)
    sides = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    thin = np.minimum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    area = stats[:, cv2.CC_STAT_AREA]
    fill = area / np.maximum(stats[:, cv2.CC_STAT_WIDTH] * stats[:, cv2.CC_STAT_HEIGHT], 1)
    keep = ((sides <= params.spot_max * scale) & (sides <= params.spot_elongation
                                                   * np.maximum(thin, 1)) & (fill >= 0.3))
    keep[0] = False
    if isolated:
        keep &= _isolated(labels, luma, max(2, int(round(2 * scale))), params.spot_ring)
    return grow(keep[labels], params.spot_grow * scale)


def _isolated(labels: np.ndarray, luma: np.ndarray, reach: int, most: float) -> np.ndarray:
    """Bool (N,): which of the N labelled marks (int32 (H, W), 0 = none) stand apart from
    their surroundings: at most ``most`` of the ring ``reach`` px round a mark has a luma
    nearer the mark's mean than the ring's own median. A spot sits on a background; the corner
    of a letter or a stroke, which a median background also leaves behind, runs on into the
    stroke beside it."""
    count = int(labels.max()) + 1
    kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
    owner = cv2.dilate(labels.astype(np.float32), kernel).astype(np.int32)
    ring = (labels == 0) & (owner > 0)
    area = np.bincount(labels.ravel(), minlength=count).astype(np.float64)
    inside = np.bincount(labels.ravel(), weights=luma.ravel(), minlength=count) / np.maximum(area, 1)
    owners, values = owner[ring], luma[ring].astype(np.float64)
    if owners.size == 0:
        return np.ones(count, bool)
    order = np.argsort(owners, kind="stable")
    owners, values = owners[order], values[order]
    starts = np.searchsorted(owners, np.arange(count))
    ends = np.searchsorted(owners, np.arange(count), side="right")
    median = np.array([np.median(values[a:b]) if b > a else 0.0 for a, b in zip(starts, ends)])
    near = np.abs(values - inside[owners]) < np.abs(values - median[owners])
    share = np.bincount(owners, weights=near, minlength=count) / np.maximum(
        np.bincount(owners, minlength=count), 1)
    return share <= most


def crease_lines(image: np.ndarray, params: KindParams = KindParams()
                 ) -> list[tuple[float, tuple[int, int, int, int]]]:
    """The crease candidates of float32 (H, W, 3) ``image``: (support, (x0, y0, x1, y1)) of
    the distinct lines crossing the photo, best first.

    Lines are probabilistic Hough segments of the Canny edges of the smoothed luma, at least
    ``crease_length`` x the short side, extended to the photo's borders; the support is the
    share of the extended line that runs on an edge whose gradient is across the line.
    """
    scale = _scale(image)
    luma = luminance(image).astype(np.float32)
    smooth = cv2.GaussianBlur(luma, (0, 0), 1.5 * scale)
    edges = cv2.Canny(np.clip(smooth * 255, 0, 255).astype(np.uint8), 12, 30)
    height, width = luma.shape
    short = min(height, width)
    length = int(params.crease_length * short)
    lines = cv2.HoughLinesP(edges, 1, np.pi / 360, threshold=max(20, length // 2),
                            minLineLength=length, maxLineGap=int(0.05 * short))
    if lines is None:
        return []
    near = cv2.dilate(edges, np.ones((3, 3), np.uint8)) > 0
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1)
    magnitude = np.hypot(gx, gy) + 1e-6
    reach = float(np.hypot(height, width))
    steps = np.arange(-reach, reach, 1.0, dtype=np.float32)
    found: list[tuple[float, tuple[int, int, int, int]]] = []
    for x0, y0, x1, y1 in lines.reshape(-1, 4)[:params.crease_lines]:
        run = float(np.hypot(x1 - x0, y1 - y0))
        direction = np.array([x1 - x0, y1 - y0], np.float32) / max(run, 1.0)
        xs = np.round(x0 + steps * direction[0]).astype(int)
        ys = np.round(y0 + steps * direction[1]).astype(int)
        inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
        xs, ys = xs[inside], ys[inside]
        across = np.abs(gx[ys, xs] * -direction[1] + gy[ys, xs] * direction[0]) / magnitude[ys, xs]
        support = float((near[ys, xs] & (across >= 0.9)).mean())
        found.append((support, (int(xs[0]), int(ys[0]), int(xs[-1]), int(ys[-1]))))
    found.sort(key=lambda item: -item[0])
    distinct: list[tuple[float, tuple[int, int, int, int]]] = []
    for support, line in found:
        middle = np.array([(line[0] + line[2]) / 2, (line[1] + line[3]) / 2])
        if all(np.hypot(*(middle - [(o[0] + o[2]) / 2, (o[1] + o[3]) / 2])) > 0.05 * short
               for _, o in distinct):
            distinct.append((support, line))
        if len(distinct) >= params.crease_count:
            break
    return distinct


def crease_mask(image: np.ndarray, params: KindParams = KindParams()) -> np.ndarray:
    """Bool (H, W): bands ``crease_band`` px wide along the :func:`crease_lines` of float32
    (H, W, 3) ``image`` with a support of at least ``crease_support``."""
    mask = np.zeros(image.shape[:2], np.uint8)
    band = max(1, int(round(params.crease_band * _scale(image))))
    for support, (x0, y0, x1, y1) in crease_lines(image, params):
        if support >= params.crease_support:
            cv2.line(mask, (x0, y0), (x1, y1), 1, 2 * band + 1)
    return mask.astype(bool)


def hole_mask(image: np.ndarray, params: KindParams = KindParams(),
              outside: np.ndarray | None = None) -> np.ndarray:
    """Bool (H, W): paper, card or scanner bed showing through tears and missing corners.

    A candidate is a flat region (spread at most ``hole_flat`` over a small window) covering
    ``hole_area`` to ``hole_max`` of the photo that touches the print's edge. What shows
    through a hole has no photographic content, so a candidate is kept only when it has no
    shading (:func:`_hole_kept`): its colour drifts by at most ``hole_slope`` across it (a
    plane fitted to its luma) and ``hole_drift`` locally; it is not a blown highlight or a
    crushed shadow (mean luma below ``hole_clip`` and above 1 - ``hole_clip``); its boundary
    with the photo is sharp all along (20th percentile of the strongest gradient at least
    ``hole_edge``); its colour is foreign to the photo (flat pixels of its colour elsewhere,
    away from it, cover at most ``hole_elsewhere`` x its area: a brick or a leaf cut by the
    frame has its like elsewhere); and it has the shape of a loss: solid (``hole_solidity`` of
    its convex hull) and touching one side of the print, or two sides at a corner (a sky or a
    backdrop spans a side and more). ``outside`` bool (H, W) marks the mount or scanner bed
    round the print (never flagged).
    """
    scale = _scale(image)
    side = _odd(7 * scale)
    mean = cv2.blur(image, (side, side))
    spread = np.sqrt(np.maximum(cv2.blur(image * image, (side, side)) - mean * mean, 0.0))
    flat = spread.max(axis=2) <= params.hole_flat
    inside = np.ones(flat.shape, bool) if outside is None else ~outside
    flat &= inside
    mask = np.zeros(flat.shape, bool)
    if not inside.any():
        return mask
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    labels, stats = component_stats(flat)
    # The print's edge: the photo's border, or the mount's inner edge when there is one.
    edge = touching_border_mask(flat.shape)
    if outside is not None and outside.any():
        edge |= grow(outside, 2.0)
    border = np.zeros(len(stats), bool)
    border[labels[edge]] = True
    border[0] = False
    area = stats[:, cv2.CC_STAT_AREA] / flat.size
    candidates = np.flatnonzero(border & (area >= params.hole_area) & (area <= params.hole_max))
    if len(candidates) == 0:
        return mask
    luma = luminance(image).astype(np.float32)
    gradient = cv2.morphologyEx(luma, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    strongest = cv2.dilate(gradient, np.ones((side + 2, side + 2), np.uint8))
    # The boundary that counts is the one with the photo, not with the frame or the mount.
    beyond = touching_border_mask(flat.shape, side)
    if outside is not None and outside.any():
        beyond |= grow(outside, side)
    low = cv2.GaussianBlur(image, (0, 0), 2 * scale)
    for label in candidates:
        region = labels == label
        ring = grow(region, side // 2 + 1) & ~region & ~beyond
        if ring.any() and _hole_kept(image, luma, region, strongest[ring], box, params):
            colour = image[region].mean(axis=0)
            alike = flat & (np.abs(low - colour).max(axis=2) <= 0.04) & ~grow(region, 3 * side)
            if alike.sum() <= params.hole_elsewhere * region.sum():
                mask |= grow(region, side // 2 + 1)
    return mask & inside


def _hole_kept(image: np.ndarray, luma: np.ndarray, region: np.ndarray, boundary: np.ndarray,
               box: tuple[int, int, int, int], params: KindParams) -> bool:
    """Whether candidate ``region`` (bool (H, W)) of float32 (H, W, 3) ``image`` looks like a
    hole (:func:`hole_mask`); ``boundary`` the strongest gradients on its ring, ``box`` the
    print's (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    sides = [region[y0:y0 + 2, x0:x1].any(), region[y0:y1, x1 - 2:x1].any(),
             region[y1 - 2:y1, x0:x1].any(), region[y0:y1, x0:x0 + 2].any()]
    corner = any(region[y, x] for y, x in ((y0, x0), (y0, x1 - 1), (y1 - 1, x0), (y1 - 1, x1 - 1)))
    if not (sum(sides) == 1 or (sum(sides) == 2 and corner)):
        return False
    if float(np.percentile(boundary, 20)) < params.hole_edge:
        return False
    inner = cv2.erode(region.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    inner = inner if inner.sum() >= 20 else region
    level = float(luma[inner].mean())
    if level >= params.hole_clip or level <= 1.0 - params.hole_clip:
        return False
    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    hull = float(cv2.contourArea(cv2.convexHull(np.vstack(contours))))
    if region.sum() < params.hole_solidity * hull:
        return False
    unit = 512.0 * _scale(image)
    ys, xs = np.nonzero(inner)
    design = np.stack([np.ones(len(xs)), xs / unit, ys / unit], 1)
    coef = np.linalg.lstsq(design, luma[ys, xs].astype(np.float64), rcond=None)[0]
    extent = max(int(np.ptp(xs)), int(np.ptp(ys))) / unit
    if float(np.hypot(coef[1], coef[2])) * extent > params.hole_slope:
        return False
    # Local drift: the region's own colours low-passed (weighted by the region, so the photo
    # beside it does not leak in).
    weight = inner.astype(np.float32)
    sigma = 4 * _scale(image)
    total = cv2.GaussianBlur(weight, (0, 0), sigma) + 1e-6
    low = np.stack([cv2.GaussianBlur(np.ascontiguousarray(image[..., c]) * weight, (0, 0), sigma)
                    / total for c in range(3)], -1)[inner]
    return float(low.std(axis=0).max()) <= params.hole_drift


def touching_border_mask(shape: tuple[int, int], margin: int = 2) -> np.ndarray:
    """Bool (H, W): the ``margin`` px frame of an image of ``shape``."""
    edge = np.zeros(shape, bool)
    edge[:margin], edge[-margin:], edge[:, :margin], edge[:, -margin:] = True, True, True, True
    return edge
