"""Seeded synthetic damage for tests, benchmarks and training: damaged photos with their truth.

Every function takes a ``numpy.random.Generator``; the same seed gives the same damage. This
module paints defects onto a photo and returns it with its truth (:func:`damage`,
:func:`defects`, :func:`aged_defects`, :func:`old_print`); the truth mask is where a defect
covers at least ``TRUTH_ALPHA`` of a pixel. The defects' shapes are drawn in
:mod:`restorer.synth_shapes`; blur, toning, fading, grain and JPEG (no truth mask) are in
:mod:`restorer.synth_degrade`. Both modules' names are re-exported here. Damage by kind is in
:mod:`restorer.synth_print`, tone damage in :mod:`restorer.synth_tone`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from restorer.synth_degrade import age, blur, scan
from restorer.synth_shapes import (crack_alpha, jagged_path, network_alpha, scratch_alpha,
                                   spot_alpha)

__all__ = [
    # Damaged photos with their truth (this module).
    "TRUTH_ALPHA", "Damaged", "DefectSample", "apply_cracks", "damage", "defects", "aged_defects",
    "old_print",
    # Re-exported: defect shapes (restorer.synth_shapes) and whole-photo changes with no truth
    # mask (restorer.synth_degrade).
    "crack_alpha", "spot_alpha", "network_alpha", "jagged_path", "scratch_alpha", "blur", "age",
    "scan",
]

TRUTH_ALPHA = 0.3

Polarity = Literal["light", "dark"]


@dataclass(frozen=True)
class Damaged:
    """A damaged photo with its truth: images float32 (H, W, 3) [0, 1], mask bool (H, W)."""

    image: np.ndarray
    clean: np.ndarray
    mask: np.ndarray
    blurred: bool
    cracked: bool


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


def old_print(clean: np.ndarray, rng: np.random.Generator) -> DefectSample:
    """A scanned old print with its defects, from float (H, W, 3) ``clean``.

    :func:`age` (toning, fading), then :func:`aged_defects`, then :func:`scan` (grain, JPEG);
    the truth is that of the defects.
    """
    sample = aged_defects(age(np.asarray(clean, dtype=np.float32), rng), rng)
    return DefectSample(image=scan(sample.image, rng), coverage=sample.coverage,
                        mask=sample.mask)
