"""The detectors' training data: seeded synthetic damage on clean photos split by source,
candidate points and their descriptors (see :mod:`restorer.train.detector`). Images are float32
(H, W, 3) in [0, 1], masks and truth bool (H, W) or float coverage in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from restorer import synth, synth_degrade
from restorer.errors import RestorerError
from restorer.features import describe, patches, texture_planes
from restorer.imaging import load_image
from restorer.ops import fit_long_side
from restorer.stages.detect import find_candidates
from restorer.stages.detect_learned import CANDIDATES

__all__ = ["TRAINING", "HELD_OUT", "POSITIVE", "NEGATIVE", "Example", "PointSet", "list_photos",
           "make_examples", "detection_rates", "sample_points", "cached_points"]

#: (folder, slice) of ``<data>/clean`` used for training and validation.
TRAINING: tuple[tuple[str, slice], ...] = (
    ("kodak24", slice(None)), ("bsds-test", slice(0, 100)), ("faces-celebahq", slice(0, 14)),
    ("opencv-samples", slice(None)), ("faces-gray-yaleb", slice(None, None, 6)),
)
#: (folder, slice) never used in training: the test photos.
HELD_OUT: tuple[tuple[str, slice], ...] = (
    ("bsds-test", slice(100, None)), ("faces-celebahq", slice(14, None)),
)
_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".pgm")
#: Coverage at or above which a pixel is a defect, and below which it is clean (between: unused).
POSITIVE, NEGATIVE = synth.TRUTH_ALPHA, 0.05


def list_photos(data: Path, split: Sequence[tuple[str, slice]]) -> list[Path]:
    """The photo files of ``split`` under ``data/clean``, sorted per folder."""
    paths: list[Path] = []
    for folder, part in split:
        found = sorted(p for p in (data / "clean" / folder).glob("*")
                       if p.suffix.lower() in _SUFFIXES)
        if not found:
            raise RestorerError(f"no photos in {data / 'clean' / folder}: pass --data pointing "
                                "at the shared data folder (see its SOURCES.md)")
        paths += found[part]
    return paths


@dataclass(frozen=True)
class Example:
    """One training image: float32 (H, W, 3) image and float32 (H, W) defect coverage."""

    name: str
    image: np.ndarray
    coverage: np.ndarray


def make_examples(paths: Sequence[Path], size: int, seed: int, *,
                  aged: bool = False) -> list[Example]:
    """Two seeded damaged versions of every photo, and every third photo undamaged.

    With ``aged``, every photo also gets a third version that looks like a scanned old print
    (:func:`restorer.synth.old_print`: toned or faded, damaged with crack webs, long scratches
    and faint thin cracks, then grainy or JPEG-compressed), and every third photo is also used
    aged and scanned but undamaged, so grain and compression are learnt as no defect.
    """
    examples = []
    for index, path in enumerate(paths):
        clean = fit_long_side(load_image(path), size)
        for variant in range(2):
            sample = synth.defects(clean, np.random.default_rng([seed, index, variant]))
            examples.append(Example(f"{path.name}#{variant}", sample.image, sample.coverage))
        if aged:
            sample = synth.old_print(clean, np.random.default_rng([seed, index, 2]))
            examples.append(Example(f"{path.name}#aged", sample.image, sample.coverage))
        if index % 3 == 0:
            examples.append(Example(f"{path.name}#clean", clean,
                                    np.zeros(clean.shape[:2], np.float32)))
            if aged:
                rng = np.random.default_rng([seed, index, 3])
                examples.append(Example(f"{path.name}#aged-clean",
                                        synth_degrade.scan(synth_degrade.age(clean, rng), rng),
                                        np.zeros(clean.shape[:2], np.float32)))
    return examples


def detection_rates(mask: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(false-alarm, correct-detection) probability of bool ``mask`` against bool ``truth``.

    False alarm: flagged share of the defect-free pixels; correct detection: flagged share of
    the defect pixels (1.0 when there are none).
    """
    negatives = ~truth
    false_alarm = float((mask & negatives).sum() / max(negatives.sum(), 1))
    detection = float((mask & truth).sum() / truth.sum()) if truth.any() else 1.0
    return false_alarm, detection


@dataclass
class PointSet:
    """Sampled candidates: descriptors per window, RGB patches, labels, example index."""

    descriptors: dict[int, np.ndarray]
    windows: dict[int, np.ndarray]
    labels: np.ndarray
    owner: np.ndarray


def sample_points(examples: Sequence[Example], windows: Sequence[int], per_class: int,
                  seed: int) -> PointSet:
    """Up to ``per_class`` positive and negative candidates per example, described."""
    descriptors: dict[int, list[np.ndarray]] = {w: [] for w in windows}
    rgb: dict[int, list[np.ndarray]] = {w: [] for w in windows}
    labels, owner = [], []
    for index, example in enumerate(examples):
        rng = np.random.default_rng([seed, 1, index])
        candidates = find_candidates(example.image, CANDIDATES)
        coverage = example.coverage[candidates.mask]
        ys, xs = np.nonzero(candidates.mask)
        chosen = []
        for wanted in (coverage >= POSITIVE, coverage < NEGATIVE):
            where = np.flatnonzero(wanted)
            chosen.append(rng.choice(where, min(per_class, len(where)), replace=False))
        pick = np.sort(np.concatenate(chosen))
        labels.append((coverage[pick] >= POSITIVE).astype(np.float32))
        owner.append(np.full(len(pick), index))
        for window in windows:
            planes = texture_planes(example.image, candidates.light - candidates.dark, window)
            descriptors[window].append(describe(planes, ys[pick], xs[pick]))
            rgb[window].append(patches(example.image, ys[pick], xs[pick], window))
    return PointSet({w: np.concatenate(v) for w, v in descriptors.items()},
                    {w: np.concatenate(v) for w, v in rgb.items()},
                    np.concatenate(labels), np.concatenate(owner))


def cached_points(cache: Path | None, name: str, make: Callable[[], PointSet]) -> PointSet:
    """``make()``, kept in ``cache/name.npz`` when ``cache`` is given (and reused from there)."""
    path = None if cache is None else cache / f"{name}.npz"
    if path is not None and path.is_file():
        with np.load(path) as stored:
            windows = sorted(int(k[2:]) for k in stored.files if k.startswith("d_"))
            return PointSet({w: stored[f"d_{w}"] for w in windows},
                            {w: stored[f"r_{w}"] for w in windows},
                            stored["labels"], stored["owner"])
    points = make()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, labels=points.labels, owner=points.owner,
                 **{f"d_{w}": v for w, v in points.descriptors.items()},
                 **{f"r_{w}": v for w, v in points.windows.items()})
    return points


# ------------------------------------------------------------------------------------ training
