"""Train the triage network (``triage.net``) from scratch on synthetic damage.

    python -m restorer.train.triage --data ../shared/data --out weights/triage_net.keras

Photos come from the data folder's clean sets, split by source photo (:data:`SPLITS`): training
photos never appear in validation. Each sample is one photo at a random size (long side 320 to
1024 px, never enlarged) with one of the four labels drawn evenly: clean, blurred (Gaussian,
defocus or slight motion), cracked (1 to 6 light and dark cracks from :mod:`restorer.synth`), or
both (blur first: the print was blurred, then cracked). Old-photo nuisances that are not damage
are applied to every class alike (:func:`restorer.synth_degrade.age` and
:func:`restorer.synth_degrade.scan`: sepia or grey toning, fading, film grain, JPEG), so that
the network does not call every old-looking photo damaged. Everything is seeded.
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
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from restorer import files
from restorer.backends import KERAS_BACKENDS
from restorer.weights import sha256_file
from restorer.stages.triage_net import VIEW_SIZE, TriageNetwork, load_triage_model
from restorer.train.triage_data import (CHUNK, LABELS, SPLITS, Sample, chunk_seeds, draw_samples,
                                       evaluate, make_pool, make_sample, make_set, pick_views,
                                       source_photos)
from restorer.train.triage_fusion import fit_fusion, fit_logistic, save_fusion

__all__ = ["LABELS", "SPLITS", "Sample", "make_sample", "source_photos", "draw_samples",
           "chunk_seeds", "make_set", "make_pool", "pick_views", "KERAS_BACKENDS",
           "use_keras_backend", "build_model", "augment", "train", "evaluate", "fit_logistic",
           "fit_fusion", "save_fusion", "main"]

log = logging.getLogger(__name__)


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
        files.write_text(args.fusion_out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
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
    files.write_with(args.out, model.save)
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
    files.write_text(args.out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    log.info("%s", json.dumps({k: v for k, v in report.items() if k != "history"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
