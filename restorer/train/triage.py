"""Train the triage network (``triage.net``) from scratch on synthetic damage.

    python -m restorer.train.triage --data ../shared/data --out weights/triage_net.keras

Photos come from the data folder's clean sets, split by source photo (:data:`SPLITS`): training
photos never appear in validation. Each sample is one photo at a random size (long side 320 to
1024 px, never enlarged) with one of the four labels drawn evenly: clean, blurred (Gaussian,
defocus or slight motion), cracked (1 to 6 light and dark cracks from :mod:`restorer.synth`), or
both (blur first: the print was blurred, then cracked). Old-photo nuisances that are not damage
are applied to every class alike (:func:`restorer.synth.age` and :func:`restorer.synth.scan`:
sepia or grey toning, fading, film grain, JPEG),
so that the network does not call every old-looking photo damaged. Everything is seeded.
Drawing a sample takes 25 to 35 ms of one core; ``--workers N`` draws the training samples in
N processes (seeded chunks, :func:`chunk_seeds`), for the large sets a many-core GPU host can
train on. ``--keras-backend torch`` trains on Keras' torch backend, on the GPU when one is
present (the pinned TensorFlow is CPU-only); the saved ``.keras`` file is the same and the
stage runs it on Keras' torch backend.

``--fusion`` fits only the stage's fusion (:func:`fit_fusion`): the network at ``--out`` and
the detector at ``--segnet`` measure 800 samples of the training photos with fresh damage, two
logistic regressions combine their answers (blur: the network's blur logit and the edge-width
blur sigma over all edges and over the widest orientation, away from the edges the detector
flags; cracks: the network's crack logit and the detector's flagged share, longest defect and
mean probability of what it flags, averaged over flips), and ``--fusion-out`` (safetensors,
with the sha256 of the detector and network files and the measurements' recipe in its
metadata) and a JSON report (network alone against fused, on held-out samples) are written.

Two architectures share the multi-view wrapper (:func:`build_model`): ``compact`` (separable
convolutions, the shipped one) and ``inception`` (Keras' InceptionV3, ``weights=None``, the
paper's network at this input size), so they can be compared on accuracy, size and latency.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import cv2
import numpy as np
import torch
from safetensors.torch import save_file

from restorer import synth
from restorer.backends import KERAS_BACKENDS
from restorer.synth import age, scan
from restorer.imaging import load_image
from restorer.weights import sha256_file
from restorer.stages.triage_net import (VIEW_COUNT, VIEW_SIZE, Fusion, Measurement, Recipe,
                                        TriageNetwork, crop_origins, fitted_on, fuse,
                                        fusion_inputs, load_triage_model, pad_to_view,
                                        training_views, working_copy)

__all__ = ["LABELS", "SPLITS", "Sample", "make_sample", "source_photos", "chunk_seeds",
           "make_set", "make_pool", "pick_views", "KERAS_BACKENDS", "use_keras_backend",
           "build_model", "augment", "train", "evaluate", "main"]

log = logging.getLogger(__name__)

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
    return synth.blur(image, rng, kind=kind, strength=float(strength)), kind


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
    height, width = photo.shape[:2]
    side = rng.uniform(320, 1024)
    scale = min(1.0, side / max(height, width))
    image = photo
    if scale < 1.0:
        image = cv2.resize(photo, (round(width * scale), round(height * scale)),
                           interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        image = image[:, ::-1]
    image = np.ascontiguousarray(image, dtype=np.float32)
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


def use_keras_backend(name: str) -> None:
    """Train with Keras on ``name`` (one of ``KERAS_BACKENDS``): "tensorflow" (the pinned build
    is CPU-only) or "torch" (torch's CUDA build: on a GPU when one is present). The ``.keras``
    file is the same either way; the stage runs it on torch. Imports Keras on that backend;
    raises RuntimeError when Keras already runs on another backend in this process."""
    if name not in KERAS_BACKENDS:
        raise ValueError(f"unknown Keras backend '{name}': use one of {', '.join(KERAS_BACKENDS)}")
    from restorer.backends import keras as import_keras

    running = import_keras(name).backend.backend()
    if running != name:
        raise RuntimeError(f"Keras already runs on {running} in this process; "
                           f"train on {name} in a new process")


def build_model(arch: str = "compact", seed: int = 0) -> Any:
    """Keras model: (N, V, S, S, 3) float in [0, 1], any number V of views -> (N, 2) sigmoid
    (p_blur, p_crack)."""
    from restorer.backends import keras as import_keras

    keras = import_keras()
    layers = keras.layers

    keras.utils.set_random_seed(seed)
    view = keras.Input((VIEW_SIZE, VIEW_SIZE, 3))
    if arch == "compact":
        x = layers.Conv2D(16, 3, padding="same", use_bias=False)(view)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        for width, pool in ((32, True), (64, True), (96, True), (128, False)):
            x = layers.SeparableConv2D(width, 3, padding="same", use_bias=False)(x)
            x = layers.ReLU()(layers.BatchNormalization()(x))
            if pool:
                x = layers.MaxPooling2D()(x)
        features = layers.Concatenate()([layers.GlobalMaxPooling2D()(x),
                                         layers.GlobalAveragePooling2D()(x)])
    elif arch == "inception":
        base = keras.applications.InceptionV3(include_top=False, weights=None,
                                              input_shape=(VIEW_SIZE, VIEW_SIZE, 3))
        # InceptionV3 expects [-1, 1].
        features = layers.GlobalAveragePooling2D()(base(layers.Rescaling(2.0, -1.0)(view)))
    else:
        raise ValueError(f"unknown architecture '{arch}': use compact or inception")
    backbone = keras.Model(view, features, name=f"{arch}_backbone")
    photo = keras.Input((None, VIEW_SIZE, VIEW_SIZE, 3))  # any number of views
    per_view = layers.TimeDistributed(backbone)(photo)
    pooled = layers.Concatenate()([layers.GlobalMaxPooling1D()(per_view),
                                   layers.GlobalAveragePooling1D()(per_view)])
    hidden = layers.Dropout(0.2)(layers.Dense(64, activation="relu")(pooled))
    out = layers.Dense(2, activation="sigmoid")(hidden)
    return keras.Model(photo, out, name=f"triage_{arch}")


def _as_float(views: np.ndarray) -> np.ndarray:
    return views.astype(np.float32) / 255.0


def augment(views: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each sample of uint8 (N, 10, S, S, 3) ``views`` turned by a random multiple of 90
    degrees and mirrored at random (all its views alike): blur and cracks have no direction,
    so a training photo is seen in eight orientations. Returns a new array."""
    out = np.empty_like(views)
    for index, sample in enumerate(views):
        turned = np.rot90(sample, int(rng.integers(4)), axes=(1, 2))
        out[index] = turned[:, :, ::-1] if rng.random() < 0.5 else turned
    return out


def train(model: Any, train_set: tuple[np.ndarray, np.ndarray],
          val_set: tuple[np.ndarray, np.ndarray], *, epochs: int, batch: int = 32,
          budget_s: float | None = None, seed: int = 0, lr: float = 1e-3,
          flags: np.ndarray | None = None) -> list[dict[str, float]]:
    """Adam + binary cross-entropy on :func:`augment`-ed batches, learning rate falling from
    ``lr`` on a cosine; stops early after ``budget_s`` seconds. Returns the history.

    With ``flags``, ``train_set`` holds pools of :func:`make_pool` and every batch draws its
    views from them (:func:`pick_views`); else its views are used as they are."""
    from restorer.backends import keras as import_keras

    keras = import_keras()

    model.compile(optimizer=keras.optimizers.Adam(lr), loss="binary_crossentropy",
                  metrics=[keras.metrics.BinaryAccuracy(name="acc")])
    views, targets = train_set
    val = (_as_float(val_set[0]), val_set[1])
    rng = np.random.default_rng(seed)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(len(views))
        model.optimizer.learning_rate.assign(lr * 0.5 * (1 + np.cos(np.pi * epoch / epochs)))
        losses = []
        for start in range(0, len(order), batch):
            chunk = np.sort(order[start:start + batch])
            chosen = (views[chunk] if flags is None
                      else pick_views(views[chunk], flags[chunk], targets[chunk], rng))
            losses.append(float(model.train_on_batch(_as_float(augment(chosen, rng)),
                                                     targets[chunk])[0]))
        val_loss, val_acc = model.evaluate(*val, batch_size=32, verbose=0)
        entry = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_loss": float(val_loss),
                 "val_bit_acc": float(val_acc), "seconds": time.perf_counter() - started}
        history.append(entry)
        log.info("epoch %d: %s", epoch + 1, entry)
        if budget_s is not None and entry["seconds"] > budget_s:
            log.info("time budget of %.0f s spent after %d epochs", budget_s, epoch + 1)
            break
    return history


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


def measure_samples(network: TriageNetwork, paths: Sequence[Path], count: int, seed: int,
                    recipe: Recipe) -> tuple[list[Measurement], np.ndarray]:
    """:class:`Measurement` (taken as ``recipe`` says) of ``count`` seeded samples (labels
    balanced) and their targets float32 (N, 2) (blurred, cracked)."""
    samples = list(draw_samples(paths, count, seed))
    return ([network.measure(s.image, recipe) for s in samples],
            np.array([s.targets for s in samples], np.float32))


def fit_logistic(inputs: np.ndarray, labels: np.ndarray,
                 l2: float = 1e-2) -> tuple[np.ndarray, float]:
    """Weights (K,) and bias of an L2-penalised logistic regression of float (N, K) ``inputs``
    on 0/1 ``labels`` (N,), by Newton's method."""
    x = np.hstack([inputs, np.ones((len(inputs), 1))]).astype(np.float64)
    penalty = np.diag([l2] * inputs.shape[1] + [0.0])
    w = np.zeros(x.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        step = np.linalg.solve(x.T @ (x * (p * (1 - p))[:, None]) + penalty,
                               x.T @ (p - labels) + penalty @ w)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


def _fusion_inputs(measured: Sequence[Measurement]) -> tuple[np.ndarray, np.ndarray]:
    """Blur inputs (N, 3) and crack inputs (N, 4) of :func:`fuse`."""
    rows = [fusion_inputs(m) for m in measured]
    return np.array([b for b, _ in rows]), np.array([c for _, c in rows])


def fit_fusion(network: TriageNetwork, data: Path, count: int, val_count: int,
               seed: int) -> tuple[Fusion, dict[str, Any]]:
    """Fit the triage fusion on ``count`` samples of training photos with fresh damage (seed
    ``seed``); report the network alone and fused on ``val_count`` held-out samples."""
    started = time.perf_counter()
    recipe = Recipe()
    measured, targets = measure_samples(network, source_photos(data, "train"), count, seed,
                                        recipe)
    blur_in, crack_in = _fusion_inputs(measured)
    blur_w, blur_b = fit_logistic(blur_in, targets[:, 0])
    crack_w, crack_b = fit_logistic(crack_in, targets[:, 1])
    fusion = Fusion(blur_w, blur_b, crack_w, crack_b, recipe)
    held, held_targets = measure_samples(network, source_photos(data, "heldout"), val_count,
                                         seed + 1, recipe)
    alone = np.array([[m.p_blur, m.p_crack] for m in held])
    fused = np.array([fuse(fusion, m) for m in held])
    report = {"fit_count": count, "fit_seed": seed, "heldout_count": val_count,
              "heldout_seed": seed + 1, "seconds": round(time.perf_counter() - started),
              "recipe": recipe.metadata(),
              "blur": {"weight": blur_w.tolist(), "bias": blur_b},
              "crack": {"weight": crack_w.tolist(), "bias": crack_b},
              "heldout_network_alone": evaluate(alone, held_targets),
              "heldout_fused": evaluate(fused, held_targets)}
    return fusion, report


def save_fusion(fusion: Fusion, path: Path, segnet_path: Path, model_path: Path) -> None:
    """Write ``fusion`` as safetensors, recording the SegNet and network files it was fitted
    on (their sha256) and its :class:`~restorer.stages.triage_net.Recipe`."""
    tensors = {"blur.weight": torch.tensor(fusion.blur_weight, dtype=torch.float32),
               "blur.bias": torch.tensor([fusion.blur_bias], dtype=torch.float32),
               "crack.weight": torch.tensor(fusion.crack_weight, dtype=torch.float32),
               "crack.bias": torch.tensor([fusion.crack_bias], dtype=torch.float32)}
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, str(partial),
              metadata=fitted_on(segnet_path, model_path) | fusion.recipe.metadata())
    partial.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train restorer's triage network.")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"),
                        help="data folder holding clean/ (default ../shared/data)")
    parser.add_argument("--out", type=Path, default=Path("weights/triage_net.keras"))
    parser.add_argument("--arch", choices=("compact", "inception"), default="compact")
    parser.add_argument("--train-count", type=int, default=10000)
    parser.add_argument("--val-count", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="stop after the epoch that passes this wall-clock budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3, help="first learning rate")
    parser.add_argument("--views", choices=("grid", "pool"), default="grid",
                        help="training views: the fixed 3 x 3 grid and the whole (the shipped "
                             "network), or crops drawn afresh every batch from the whole tiling, "
                             "a cracked photo's always showing its crack (make_pool)")
    parser.add_argument("--keras-backend", choices=KERAS_BACKENDS, default="tensorflow",
                        help="what Keras trains on: tensorflow (CPU only here) or torch (a GPU "
                             "when present); the stage runs the saved model on torch")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes drawing the training samples (1: one seeded stream, the "
                             "shipped network's data; more: chunks of %d samples seeded from "
                             "--seed, the same samples for any number above 1)" % CHUNK)
    parser.add_argument("--init", type=Path, default=None,
                        help="continue training this .keras model (same architecture) instead "
                             "of starting from random weights")
    parser.add_argument("--fusion", action="store_true",
                        help="only fit the fusion of the network at --out with the detector "
                             "(--segnet) and write --fusion-out")
    parser.add_argument("--segnet", type=Path,
                        default=Path("weights/detector_segnet.safetensors"))
    parser.add_argument("--fusion-out", type=Path,
                        default=Path("weights/triage_fusion.safetensors"))
    parser.add_argument("--fusion-count", type=int, default=800,
                        help="samples of training photos the fusion is fitted on")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be 1 or more, not {args.workers}")
    use_keras_backend(args.keras_backend)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.fusion:
        network = TriageNetwork(args.out, args.segnet)
        fusion, report = fit_fusion(network, args.data, args.fusion_count, args.val_count,
                                    args.seed + 2)
        save_fusion(fusion, args.fusion_out, args.segnet, args.out)
        args.fusion_out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
        log.info("fusion: network alone %.4f, fused %.4f on %d held-out samples; wrote %s",
                 report["heldout_network_alone"]["accuracy"], report["heldout_fused"]["accuracy"],
                 args.val_count, args.fusion_out)
        return 0

    started = time.perf_counter()
    photos = source_photos(args.data, "train")
    if args.views == "pool":
        views, flags, targets = make_pool(photos, args.train_count, args.seed,
                                          workers=args.workers)
    else:
        (views, targets), flags = make_set(photos, args.train_count, args.seed,
                                           workers=args.workers), None
    val_set = make_set(source_photos(args.data, "heldout"), args.val_count, args.seed + 1)
    log.info("data: %d train / %d val samples in %.0f s", len(views), len(val_set[0]),
             time.perf_counter() - started)
    model = (build_model(args.arch, args.seed) if args.init is None
             else load_triage_model(args.init))
    budget = None if args.budget_minutes is None else args.budget_minutes * 60.0
    history = train(model, (views, targets), val_set, epochs=args.epochs, budget_s=budget,
                    seed=args.seed, lr=args.lr, flags=flags)
    probabilities = np.asarray(model.predict(_as_float(val_set[0]), batch_size=32, verbose=0))
    metrics = evaluate(probabilities, val_set[1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(args.out.name + ".partial.keras")
    model.save(partial)
    partial.replace(args.out)
    report = {"arch": args.arch, "params": int(model.count_params()),
              "bytes": args.out.stat().st_size, "epochs_run": len(history),
              "train_seconds": history[-1]["seconds"], "seed": args.seed, "lr": args.lr,
              "init": None if args.init is None else {"path": str(args.init),
                                                      "sha256": sha256_file(args.init)},
              "views": args.views, "train_count": args.train_count,
              "data_stream": "one" if args.workers == 1 else f"chunks of {CHUNK}",
              "keras_backend": args.keras_backend,
              "device": ("cuda" if args.keras_backend == "torch" and torch.cuda.is_available()
                         else "cpu"),
              "val_count": args.val_count,
              "heldout": metrics, "history": history}
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    log.info("%s", json.dumps({k: v for k, v in report.items() if k != "history"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
