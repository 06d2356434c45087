"""Morphological crack and scratch detection (the candidate stage of seed paper 000).

1. Sources. Light cracks show the paper base: bright in every channel and nearly colourless.
   Dark cracks are filled with dirt: dark in every channel. So light structures are looked for
   in ``whiteness = min(R, G, B) - w * chroma`` and dark ones in ``blackness = max(R, G, B) +
   w * chroma`` (chroma = max - min). On a colour photo a red lip or a blue iris is neither
   white nor black and gives little response. Grey and toned (sepia) prints carry no colour
   evidence: both sources are their luma.
2. Response. A linear top-hat (Zana and Klein): the supremum of openings by line segments at
   12 angles minus the opening by a disk wider than any crack keeps thin elongated structures
   and drops blobs. Real cracks are jagged, so a straight segment rarely fits inside a 1 px
   crack; the openings are taken on the image grey-dilated by a small square and clipped back
   to the image (a tolerant line opening), so a line fits in a crack that wanders by a pixel.
   The dark response is the light response of the inverted blackness.
3. Candidates. Hysteresis: seeds stand out in absolute contrast and against the mean response
   around them (salience: a crack over a smooth area stands out, busy texture does not);
   weaker pixels join when connected to a seed.
4. Evidence. Each connected candidate is scored by ``length * contrast * salience`` (skeleton
   length normalised to a 512 px short side, mean response, mean response over the mean
   surrounding response): a long, contrasted, isolated line is a crack, a short or faint one
   in texture is not. Light candidates that are coloured, dark ones that are not dark, and
   lines hugging the image border (frame edges, scan borders) lose evidence. Candidates with
   enough evidence that are thin are kept.
5. The mask can be grown by ``dilate`` pixels (option; default 0). The weak hysteresis level
   already takes in the soft crack edges: measured with Telea on bench/classical.py's held-out
   set, whole-photo PSNR after inpainting the detected mask is 30.5 dB at 0 px, 29.4 at 1 px and
   28.9 at 2 px (a grown mask also grows every false alarm).

Images above ``work_pixels`` are analysed downscaled, large ones at a second, coarse scale
for wide cracks; the masks are scaled back to full size and united.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Mapping

import cv2
import numpy as np

from restorer.ops import luminance
from restorer.stage_ids import DETECT_MORPH
from restorer.stages.base import Option, ProgressFn, StageKind, StageOutput, StageSpec, Work
from restorer.tone import analyse_tone

__all__ = ["MorphParams", "Candidates", "structuring_size", "tophat_responses",
           "find_candidates", "detect_morphological", "MorphologicalDetector"]

Polarity = Literal["both", "light", "dark"]

_BORDER = cv2.BORDER_REFLECT
#: Floor of the surrounding mean response in the salience ratio (a crack on a flat sky).
_SURROUND_FLOOR = 0.01
#: Side of the window, in structuring-element diameters, that "surrounding" means.
_SURROUND_WINDOW = 4


@dataclass(frozen=True)
class MorphParams:
    """Tuning of the morphological detector.

    ``sensitivity`` in [0, 1] scales every threshold (0.5 is the tuned default; 1 halves them,
    0 doubles them). ``min_contrast`` is the smallest response (in [0, 1] units) a seed needs,
    ``salience`` how many times the mean response around it; weaker pixels join a seed down to
    ``weak_fraction`` of both. ``evidence`` is the least length * contrast * salience a
    candidate needs (length in pixels at a 512 px short side). ``chroma_weight`` is w in the
    whiteness/blackness sources; ``max_chroma`` the chroma above which a light candidate loses
    evidence (e-fold per 0.1) and ``max_dark_level`` the blackness above which a dark one does.
    ``line_factor`` sets the line length relative to the disk, ``line_tolerance`` the grey
    dilation (pixels) that lets the lines follow jagged cracks. Components must be thinner than
    ``max_width`` times the disk and ``min_elongation`` times longer than wide. ``dilate`` grows
    the final mask (pixels at the analysis resolution, scaled up with the mask) to cover soft
    crack edges; images over ``work_pixels`` are analysed downscaled to that size, and large
    ones once more with a short side of ``coarse_side`` (see :func:`detect_morphological`).
    """

    sensitivity: float = 0.5
    polarity: Polarity = "both"
    min_contrast: float = 0.08
    dilate: int = 0
    salience: float = 3.0
    weak_fraction: float = 0.625
    evidence: float = 130.0
    chroma_weight: float = 1.0
    max_chroma: float = 0.10
    max_dark_level: float = 0.30
    min_elongation: float = 3.0
    max_width: float = 0.75
    border_penalty: float = 5.0
    work_pixels: int = 4_000_000
    coarse_side: int = 640
    line_factor: float = 1.5
    line_tolerance: int = 1


def structuring_size(shape: tuple[int, int]) -> int:
    """Odd structuring-element diameter for an image of ``shape`` (H, W).

    Must exceed the widest crack we look for: 11 px up to about 1 MP, growing with the short
    side beyond (a 6000 px scan gets 25 px).
    """
    size = max(11, int(round(min(shape) / 240.0)))
    return size | 1


def _line_kernels(length: int, count: int = 12) -> list[np.ndarray]:
    """``count`` one-pixel line structuring elements of ``length`` (odd) at even angles."""
    centre = length // 2
    kernels = []
    for angle in np.arange(count) * np.pi / count:
        kernel = np.zeros((length, length), np.uint8)
        dx, dy = np.cos(angle) * centre, np.sin(angle) * centre
        cv2.line(kernel, (int(round(centre - dx)), int(round(centre - dy))),
                 (int(round(centre + dx)), int(round(centre + dy))), 1, 1)
        kernels.append(kernel)
    return kernels


def _line_tophat(source: np.ndarray, size: int, line_length: int, tolerance: int) -> np.ndarray:
    """Light linear top-hat of float32 (H, W) ``source``: float32 (H, W) >= 0."""
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    widened = source
    if tolerance > 0:
        widened = cv2.dilate(source, np.ones((2 * tolerance + 1,) * 2, np.uint8),
                             borderType=_BORDER)
    open_lines = np.zeros_like(source)
    for kernel in _line_kernels(line_length | 1):
        np.maximum(open_lines, cv2.morphologyEx(widened, cv2.MORPH_OPEN, kernel,
                                                borderType=_BORDER), out=open_lines)
    if tolerance > 0:
        np.minimum(open_lines, source, out=open_lines)
    response = open_lines - cv2.morphologyEx(source, cv2.MORPH_OPEN, disk, borderType=_BORDER)
    return np.maximum(response, 0.0, out=response)


def tophat_responses(
    luma: np.ndarray, size: int, line_length: int | None = None, tolerance: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Linear top-hat and black-hat of float32 (H, W) ``luma``; both float32 (H, W) >= 0.

    A thin line survives an opening by a line structuring element along its own direction but
    not an opening by a disk of diameter ``size``: the supremum of line openings minus the disk
    opening keeps elongated light structures and drops small bright texture (Zana and Klein's
    vessel filter). The dark response is the dual (the light response of ``1 - luma``).
    ``tolerance`` > 0 opens a copy grey-dilated by a (2 t + 1) square and clips the result to
    ``luma``, so lines fit inside cracks that wander by up to t pixels.
    """
    length = (line_length or size) | 1
    luma = np.ascontiguousarray(luma, dtype=np.float32)
    light = _line_tophat(luma, size, length, tolerance)
    dark = _line_tophat(np.ascontiguousarray(1.0 - luma), size, length, tolerance)
    return light, dark


def _sources(image: np.ndarray, chroma_weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whiteness, blackness and chroma (max - min) of float (H, W, 3) ``image``."""
    image = np.asarray(image, dtype=np.float32)
    red, green, blue = image[..., 0], image[..., 1], image[..., 2]
    # Channel-wise minimum/maximum: much faster than a reduction over a length-3 axis.
    low = np.minimum(np.minimum(red, green), blue)
    high = np.maximum(np.maximum(red, green), blue)
    chroma = high - low
    whiteness = low - chroma_weight * chroma
    blackness = high + chroma_weight * chroma
    return whiteness, blackness, chroma


def detect_morphological(image: np.ndarray, params: MorphParams = MorphParams()) -> np.ndarray:
    """Defect mask of float (H, W, 3) [0, 1] ``image``: bool (H, W), True = crack/scratch.

    The image is analysed at up to ``work_pixels`` and, when that is much larger than
    ``coarse_side`` (short side), again at ``coarse_side``: the structuring element is sized
    to the analysed image, so the coarse pass finds cracks too wide for the fine one (a crack
    of 0.5 mm is 12 px on a 600 dpi scan). The coarse pass adds only cracks the fine pass did
    not touch, so thin ones keep their fine outline.
    """
    height, width = image.shape[:2]
    colour = analyse_tone(image).kind == "colour"
    mask = np.zeros((height, width), bool)
    scales = _scales(height, width, params)
    # Every pass grows its mask by ``dilate`` pixels of the finest analysis: a coarse mask,
    # scaled up, is already as wide as the crack it found.
    radius = int(np.ceil(params.dilate / scales[0])) if params.dilate > 0 else 0
    for scale in scales:
        small = image
        if scale < 1.0:
            size_small = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(image, size_small, interpolation=cv2.INTER_AREA)
        found = _detect_at(np.asarray(small, dtype=np.float32), colour, params)
        if not found.any():
            continue
        if scale < 1.0:
            found = cv2.resize(found.astype(np.uint8), (width, height),
                               interpolation=cv2.INTER_NEAREST).astype(bool)
        if radius > 0:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
            found = cv2.dilate(found.astype(np.uint8), kernel).astype(bool)
        if mask.any():
            # A crack the finer pass already covers keeps its finer outline; a wide one the
            # finer pass only traced along its edges takes the coarse outline.
            count, labels = cv2.connectedComponents(found.astype(np.uint8), connectivity=8)
            area = np.bincount(labels.ravel(), minlength=count)
            covered = np.bincount(labels[mask], minlength=count)
            traced = covered >= 0.5 * area
            traced[0] = True
            found = ~traced[labels]
        mask |= found
    return mask


@dataclass(frozen=True)
class Candidates:
    """Candidate crack pixels of one image at its own resolution, before any evidence test.

    ``mask`` bool (H, W) is the union of the light and dark hysteresis candidates; ``light``
    and ``dark`` are the float32 (H, W) >= 0 linear top-hat responses they were found in.
    """

    mask: np.ndarray
    light: np.ndarray
    dark: np.ndarray


def find_candidates(image: np.ndarray, params: MorphParams = MorphParams()) -> Candidates:
    """Hysteresis candidates of float (H, W, 3) [0, 1] ``image``, analysed at its own size.

    Steps 1 to 3 of the module docstring for both polarities (``params.polarity`` is ignored),
    without the evidence test and without dilation: what a learned classifier then filters.
    Lower ``params.min_contrast``/``salience`` (or a higher ``sensitivity``) for more recall.
    """
    image = np.asarray(image, dtype=np.float32)
    size = structuring_size(image.shape[:2])
    line_length = int(size * params.line_factor) | 1
    if analyse_tone(image).kind == "colour":
        whiteness, blackness, _ = _sources(image, params.chroma_weight)
    else:
        whiteness = blackness = luminance(image)
    responses = []
    mask = np.zeros(image.shape[:2], bool)
    for source in (np.ascontiguousarray(whiteness), np.ascontiguousarray(1.0 - blackness)):
        response = _line_tophat(source, size, line_length, params.line_tolerance)
        mask |= _hysteresis(response, _surround(response, size), params)
        responses.append(response)
    return Candidates(mask=mask, light=responses[0], dark=responses[1])


def _scales(height: int, width: int, params: MorphParams) -> list[float]:
    """Analysis scales (<= 1): the ``work_pixels`` one, plus a coarse one for large scans."""
    fine = min(1.0, float(np.sqrt(params.work_pixels / (height * width))))
    coarse = params.coarse_side / min(height, width)
    return [fine, coarse] if coarse * 1.8 <= fine else [fine]


def _detect_at(image: np.ndarray, colour: bool, params: MorphParams) -> np.ndarray:
    """Mask of float32 (H, W, 3) ``image`` at its own resolution, before dilation."""
    size = structuring_size(image.shape[:2])
    line_length = int(size * params.line_factor) | 1
    if colour:
        whiteness, blackness, chroma = _sources(image, params.chroma_weight)
    else:
        # Grey or toned (sepia) print: colour carries no crack evidence, the luma does.
        whiteness = blackness = luminance(image)
        chroma = np.zeros_like(whiteness)
    wanted = ("light", "dark") if params.polarity == "both" else (params.polarity,)
    mask = np.zeros(image.shape[:2], bool)
    for name in wanted:
        if name == "light":
            source, level = whiteness, None
        else:
            source, level = np.ascontiguousarray(1.0 - blackness), blackness
        response = _line_tophat(source, size, line_length, params.line_tolerance)
        surround = _surround(response, size)
        candidates = _hysteresis(response, surround, params)
        mask |= _keep_cracks(candidates, response, surround, chroma if level is None else None,
                             level, params, size)
    return mask


def _surround(response: np.ndarray, size: int) -> np.ndarray:
    """Mean of float32 (H, W) ``response`` over a window of a few crack-widths: float32 (H, W)."""
    window = (_SURROUND_WINDOW * size) | 1
    return cv2.boxFilter(response, -1, (window, window), borderType=_BORDER)


def _strictness(params: MorphParams) -> float:
    """Threshold multiplier from ``sensitivity``: 2 at 0, 1 at 0.5, 0.5 at 1."""
    return float(2.0 ** (1.0 - 2.0 * np.clip(params.sensitivity, 0.0, 1.0)))


def _hysteresis(response: np.ndarray, surround: np.ndarray, params: MorphParams) -> np.ndarray:
    """Candidate pixels: components of weak pixels that contain a seed.

    Seeds need a response of at least ``min_contrast`` and ``salience`` times the mean response
    around them; weak pixels ``weak_fraction`` of both.
    """
    strict = _strictness(params)
    high, salience = params.min_contrast * strict, params.salience * strict
    weak_f = params.weak_fraction
    seeds = (response >= high) & (response >= salience * surround)
    weak = (response >= weak_f * high) & (response >= weak_f * salience * surround)
    count, labels = cv2.connectedComponents(weak.astype(np.uint8), connectivity=8)
    seeded = np.zeros(count, bool)
    seeded[labels[seeds]] = True
    seeded[0] = False
    return seeded[labels]


def _keep_cracks(
    candidates: np.ndarray,
    response: np.ndarray,
    surround: np.ndarray,
    chroma: np.ndarray | None,
    level: np.ndarray | None,
    params: MorphParams,
    size: int,
) -> np.ndarray:
    """Keep the candidate components with enough crack evidence that are thin.

    Each component's log evidence (see the module docstring) is compared with the threshold;
    ``chroma`` (light polarity) or ``level`` (blackness, dark polarity) feed the colour tests.
    """
    if not candidates.any():
        return candidates
    from skimage.morphology import skeletonize  # scikit-image's morphology takes 0.5 s to import

    count, labels = cv2.connectedComponents(candidates.astype(np.uint8), connectivity=8)
    where = np.flatnonzero(labels)
    flat = labels.ravel()[where]
    area = np.bincount(flat, minlength=count).astype(np.float64)

    def mean(values: np.ndarray) -> np.ndarray:
        return (np.bincount(flat, weights=values.ravel()[where], minlength=count)
                / np.maximum(area, 1.0))

    length = np.bincount(labels[skeletonize(candidates)], minlength=count).astype(np.float64)
    length = np.maximum(length, 1.0)
    contrast = mean(response)
    salience = contrast / np.maximum(mean(surround), _SURROUND_FLOOR)
    length_512 = length * 512.0 / max(min(candidates.shape), 128)
    log_evidence = (np.log(length_512) + np.log(np.maximum(contrast, 1e-6))
                    + np.log(np.maximum(salience, 1e-6)))
    if chroma is not None:
        log_evidence -= 10.0 * np.maximum(mean(chroma) - params.max_chroma, 0.0)
    if level is not None:
        log_evidence -= 10.0 * np.maximum(mean(level) - params.max_dark_level, 0.0)
    edge = np.zeros(candidates.shape, bool)
    edge[:3], edge[-3:], edge[:, :3], edge[:, -3:] = True, True, True, True
    border = np.bincount(labels[edge], minlength=count) / np.maximum(area, 1.0)
    log_evidence -= params.border_penalty * border
    margin = log_evidence - np.log(params.evidence * _strictness(params))
    width = area / length
    shape_ok = ((width <= params.max_width * size)
                & (length >= params.min_elongation * np.maximum(width, 1.0)))
    keep = (margin >= 0.0) & shape_ok
    keep[0] = False
    return keep[labels]


class MorphologicalDetector:
    """Stage: top-hat/black-hat candidates with an adaptive threshold and an evidence test."""

    spec: ClassVar[StageSpec] = StageSpec(
        id=DETECT_MORPH,
        kind=StageKind.DETECT,
        method="morph",
        title="Morphological (top-hat / black-hat)",
        description="Thin light and dark lines found by morphological filtering, kept when "
                    "long, contrasted and paper-white or dirt-black.",
        produces=frozenset({"mask"}),
        options={"sensitivity": Option.number(0.5, 0.0, 1.0, help="higher flags more"),
                 "polarity": Option.choice("both", ("light", "dark", "both"),
                                           help="light scratches, dark cracks, or both"),
                 "dilate": Option.integer(0, 0, 16, help="grow the mask by this many px")},
    )

    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        params = MorphParams(
            sensitivity=float(options["sensitivity"]),
            polarity=options["polarity"],
            dilate=int(options["dilate"]),
        )
        progress(0.0, "finding cracks and scratches")
        mask = detect_morphological(work.image, params)
        return StageOutput(mask=mask, info={"defect_fraction": float(mask.mean())})
