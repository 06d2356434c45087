"""The triage network's training data: synthetic damage on clean photos, split by source.

Photos come from the data folder's clean sets, split by source photo (:data:`SPLITS`): training
photos never appear in validation. Each sample is one photo at a random size with one of the
four labels drawn evenly (see :mod:`restorer.train.triage`); everything is seeded, and
``workers`` draws seeded chunks in processes (:func:`chunk_seeds`). Images are float32
(H, W, 3) in [0, 1], views uint8.
"""

from __future__ import annotations

import functools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import cv2
import numpy as np

from restorer import synth
from restorer.synth_degrade import age, blur, scan
from restorer.imaging import load_image
from restorer.ops import fit_long_side
from restorer.stages.triage_net import (VIEW_COUNT, VIEW_SIZE, crop_origins, pad_to_view,
                                        training_views, working_copy)

__all__ = ["LABELS", "SPLITS", "Sample", "make_sample", "source_photos", "draw_samples",
           "chunk_seeds", "make_set", "make_pool", "pick_views", "evaluate", "CHUNK"]

LABELS = ("clean", "blurred", "cracked", "blurred+cracked")
#: (folder, slice) of ``DATA/clean`` per split. Held out: the same photos the detector's
#: benchmark holds out, plus the last Yale B faces.
SPLITS = {
    "train": (("kodak24", slice(None)), ("bsds-test", slice(0, 100)),
              ("faces-celebahq", slice(0, 14)), ("faces-gray-yaleb", slice(0, 40))),
    "heldout": (("bsds-test", slice(100, None)), ("faces-celebahq", slice(14, None)),
                ("faces-gray-yaleb", slice(150, 170))),
}
_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".tif", ".tiff")


@dataclass(frozen=True)
class Sample:
    """One synthetic photo: float32 (H, W, 3) [0, 1], its label index into LABELS, when
    cracked the crack mask bool (H, W), and when blurred the kind of blur ("gaussian",
    "defocus" or "motion")."""

    image: np.ndarray
    label: int
    mask: np.ndarray | None = None
    blur: str | None = None

    @property
    def targets(self) -> tuple[float, float]:
        """(blurred, cracked) as 0/1."""
        return float(self.label in (1, 3)), float(self.label in (2, 3))


def source_photos(data: Path, split: str) -> list[Path]:
    """Clean photo files of ``split`` under ``data/clean``, in a fixed order."""
    paths: list[Path] = []
    for folder, part in SPLITS[split]:
        files = sorted(p for p in (data / "clean" / folder).iterdir()
                       if p.suffix.lower() in _SUFFIXES)
        paths += files[part]
    if not paths:
        raise FileNotFoundError(f"no clean photos under {data / 'clean'}: pass --data")
    return paths


def _blur(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Blur that old photos show, at a strength a viewer would call blurred, and its kind."""
    kind = str(rng.choice(["gaussian", "gaussian", "defocus", "motion"]))
    strength = {"gaussian": rng.uniform(1.5, 4.0), "defocus": rng.uniform(2.0, 5.0),
                "motion": rng.uniform(2.5, 6.0)}[kind]
    return blur(image, rng, kind=kind, strength=float(strength)), kind


#: Damage a viewer could not see is not damage: blur must cost the photo at least this much
#: PSNR below ``BLUR_MAX_PSNR`` dB, cracks must differ from what they cover by ``CRACK_CONTRAST``
#: and reach across at least ``CRACK_EXTENT`` of the photo's short side (a crack drawn mostly
#: outside the frame can leave a 14-pixel fleck at the border, which no one calls cracked).
BLUR_MAX_PSNR = 34.0
CRACK_CONTRAST = 0.12
CRACK_EXTENT = 0.08


def make_sample(photo: np.ndarray, label: int, rng: np.random.Generator,
                tries: int = 4) -> Sample | None:
    """A synthetic photo with ``label`` from clean float32 (H, W, 3) ``photo``.

    The damage is redrawn when it would be invisible (blur on a flat photo, a light crack over
    a white sky, a crack that only grazes the border); None after ``tries`` invisible draws, so
    the caller picks another photo.
    """
    side = rng.uniform(320, 1024)
    image = fit_long_side(photo, side)
    if rng.random() < 0.5:
        image = np.ascontiguousarray(image[:, ::-1])
    blurred, cracked = label in (1, 3), label in (2, 3)
    kind = None
    if blurred:
        for _ in range(tries):
            candidate, kind = _blur(image, rng)
            if _psnr(image, candidate) <= BLUR_MAX_PSNR:
                break
        else:
            return None
        image = candidate
    image = age(image, rng)
    mask = None
    if cracked:
        for _ in range(tries):
            damaged = synth.damage(image, rng, cracks=True, crack_count=(1, 6))
            if (_extent(damaged.mask) >= CRACK_EXTENT
                    and _contrast(image, damaged) >= CRACK_CONTRAST):
                break
        else:
            return None
        image, mask = damaged.image, damaged.mask
    return Sample(scan(image, rng), label, mask, kind)


def _psnr(reference: np.ndarray, image: np.ndarray) -> float:
    error = float(np.mean((reference - image) ** 2))
    return float("inf") if error == 0 else 10.0 * np.log10(1.0 / error)


def _extent(mask: np.ndarray) -> float:
    """Longest side of the bounding box of bool (H, W) ``mask``, as a share of the short side;
    0 for an empty mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return 0.0
    return max(rows[-1] - rows[0], cols[-1] - cols[0]) / min(mask.shape)


def _contrast(before: np.ndarray, damaged: synth.Damaged) -> float:
    """Mean absolute change, over the crack pixels, of the most changed channel."""
    return float(np.abs(damaged.image - before).max(axis=2)[damaged.mask].mean())


def draw_samples(paths: Sequence[Path], count: int, seed: int) -> Iterator[Sample]:
    """``count`` seeded samples from ``paths``, labels in turn (balanced); a photo on which the
    damage would be invisible is replaced by another draw."""
    rng = np.random.default_rng(seed)
    photos: dict[Path, np.ndarray] = {}
    for index in range(count):
        sample = None
        while sample is None:
            path = paths[int(rng.integers(len(paths)))]
            if path not in photos:
                photos[path] = load_image(path)
            sample = make_sample(photos[path], index % len(LABELS), rng)
        yield sample


#: Samples per chunk when several processes draw the data (:func:`chunk_seeds`); a multiple of
#: the four labels, so every chunk is balanced.
CHUNK = 256


def chunk_seeds(count: int, seed: int, chunk: int = CHUNK) -> list[tuple[int, int]]:
    """(samples, seed) of each chunk of ``count`` samples drawn by several processes: chunk k
    holds ``chunk`` samples (the last one the rest) seeded from (``seed``, k), so the samples
    are the same for any number of processes."""
    return [(min(chunk, count - start),
             int(np.random.SeedSequence([seed, k]).generate_state(1)[0]))
            for k, start in enumerate(range(0, count, chunk))]


def _in_parallel(make: Callable[..., tuple[np.ndarray, ...]], paths: Sequence[Path], count: int,
                 seed: int, workers: int, chunk: int) -> tuple[np.ndarray, ...]:
    """``make(paths, n, seed_k)`` over :func:`chunk_seeds` in ``workers`` processes, the
    chunks' arrays joined in chunk order. Processes are spawned, not forked: the parent may
    hold TensorFlow's and torch's threads."""
    jobs = chunk_seeds(count, seed, chunk)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context) as pool:
        parts = list(pool.map(make, repeat(list(paths)), [n for n, _ in jobs],
                              [s for _, s in jobs]))
    return tuple(np.concatenate(arrays) for arrays in zip(*parts))


def make_set(paths: Sequence[Path], count: int, seed: int, workers: int = 1,
             chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """``count`` samples, labels balanced: views uint8 (N, 10, S, S, 3), targets float32 (N, 2).

    ``workers`` 1 draws them in one seeded stream (the shipped network's data); more draw
    :func:`chunk_seeds` in that many processes (other samples than one stream, the same for
    any number of processes).
    """
    if workers > 1:
        views, targets = _in_parallel(make_set, paths, count, seed, workers, chunk)
        return views, targets
    views = np.empty((count, VIEW_COUNT, VIEW_SIZE, VIEW_SIZE, 3), np.uint8)
    targets = np.empty((count, 2), np.float32)
    for index, sample in enumerate(draw_samples(paths, count, seed)):
        views[index] = _to_uint8(training_views(sample.image))
        targets[index] = sample.targets
    return views, targets


#: A crop shows a crack when at least this many of its pixels are crack (:func:`make_pool`).
CRACK_PIXELS = 24


def make_pool(paths: Sequence[Path], count: int, seed: int, candidates: int = 18,
              workers: int = 1, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` samples, labels balanced, as pools of crops from the whole tiling that
    :func:`pick_views` draws the network's views from at every batch.

    Returns views uint8 (N, ``candidates`` + 1, S, S, 3) (the crops, then the whole photo),
    crack flags bool (N, ``candidates``) (the crop holds at least ``CRACK_PIXELS`` crack
    pixels) and targets float32 (N, 2). The crops are drawn at random from the tiling the
    stage judges (:func:`restorer.stages.triage_net.crop_origins`), so the network trains on
    what it sees in use and a new set of views every epoch; a cracked photo's pool holds at
    least one crop with its crack, so no photo labelled cracked is shown without one.
    ``workers`` and ``chunk``: as in :func:`make_set`.
    """
    if workers > 1:
        views, flags, targets = _in_parallel(functools.partial(make_pool, candidates=candidates),
                                             paths, count, seed, workers, chunk)
        return views, flags, targets
    rng = np.random.default_rng([seed, 1])
    views = np.empty((count, candidates + 1, VIEW_SIZE, VIEW_SIZE, 3), np.uint8)
    flags = np.zeros((count, candidates), bool)
    targets = np.empty((count, 2), np.float32)
    for index, sample in enumerate(draw_samples(paths, count, seed)):
        work = working_copy(sample.image)
        crack = np.zeros(work.shape[:2], np.float32)
        if sample.mask is not None:  # the mask at the working copy's size, share per pixel
            crack = cv2.resize(sample.mask.astype(np.float32), work.shape[1::-1],
                               interpolation=cv2.INTER_AREA)
        work, crack = pad_to_view(work), pad_to_view(crack)
        origins = crop_origins(*work.shape[:2])
        counts = np.array([crack[t:t + VIEW_SIZE, l:l + VIEW_SIZE].sum() for t, l in origins])
        shown = np.flatnonzero(counts >= CRACK_PIXELS)
        order = rng.permutation(len(origins))
        if shown.size:
            order = _crack_first(order, shown, rng)
        chosen = order[np.arange(candidates) % len(order)]
        for slot, which in enumerate(chosen):
            top, left = origins[which]
            views[index, slot] = _to_uint8(work[top:top + VIEW_SIZE, left:left + VIEW_SIZE])
        flags[index] = counts[chosen] >= CRACK_PIXELS
        views[index, -1] = _to_uint8(cv2.resize(sample.image, (VIEW_SIZE, VIEW_SIZE),
                                                interpolation=cv2.INTER_AREA))
        targets[index] = sample.targets
    return views, flags, targets


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _crack_first(order: np.ndarray, shown: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices ``order`` with one of ``shown`` (crops showing the crack), drawn at random,
    moved to the front."""
    first = int(rng.choice(shown))
    return np.concatenate([[first], order[order != first]])


def pick_views(views: np.ndarray, flags: np.ndarray, targets: np.ndarray,
               rng: np.random.Generator, crops: int = VIEW_COUNT - 1) -> np.ndarray:
    """``crops`` crops of each pool of :func:`make_pool` at random, plus its whole photo:
    uint8 (N, ``crops`` + 1, S, S, 3). A cracked photo's pick holds at least one crop showing
    its crack."""
    count, pool = flags.shape
    out = np.empty((count, crops + 1) + views.shape[2:], views.dtype)
    for index in range(count):
        order = rng.permutation(pool)
        shown = np.flatnonzero(flags[index])
        if targets[index, 1] and shown.size:
            order = _crack_first(order, shown, rng)
        out[index, :crops] = views[index, order[:crops]]
        out[index, crops] = views[index, -1]
    return out


def evaluate(probabilities: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """Four-label accuracy, per-class precision/recall and confusion (rows = truth)."""
    predicted = (probabilities[:, 0] >= 0.5).astype(int) + 2 * (probabilities[:, 1] >= 0.5)
    truth = targets[:, 0].astype(int) + 2 * targets[:, 1].astype(int)
    confusion = np.zeros((4, 4), int)
    np.add.at(confusion, (truth, predicted), 1)
    per_class = {}
    for index, name in enumerate(LABELS):
        tp = confusion[index, index]
        per_class[name] = {"precision": float(tp / max(confusion[:, index].sum(), 1)),
                           "recall": float(tp / max(confusion[index].sum(), 1))}
    return {"accuracy": float(np.trace(confusion) / confusion.sum()), "per_class": per_class,
            "confusion": confusion.tolist()}
