"""Train the learned defect detectors and their baselines on seeded synthetic damage.

    python -m restorer.train.detector --data ../shared/data --out weights [--seed 0]
        [--windows 11,15,21] [--size 640] [--models mlp,svm,cnn,segnet]

Photos (``<data>/clean``, long side ``--size``), split by source photo:

- training: kodak24, bsds-test[:100], faces-celebahq[:14], opencv-samples, every 6th of
  faces-gray-yaleb; a seeded fifth of them is kept apart for validation (window choice and
  threshold calibration);
- never used here: bsds-test[100:] and faces-celebahq[14:] (:data:`HELD_OUT`, the test set of
  ``bench/detection.py`` and the held-out set of ``bench/classical.py``).

Every photo gets two seeded damaged versions (:func:`restorer.synth.defects`: light and dark
cracks 1 to 5 px, curved and branching, soft-edged with paper texture, plus dust and spots) and
every third photo is also used undamaged (its thin real structures, hair, fabric, text and
object edges, are the hard negatives the morphological candidates fire on). Truth is coverage
>= 0.3; candidate pixels with coverage in (0.05, 0.3), the soft crack edge, are not used.

Trained (torch, CPU, seeds fixed, so a rerun gives the same files on the same machine):

- ``detector_mlp.safetensors`` (stage ``detect.learned``): 469-value descriptors of up to
  ``--points`` positive and negative candidates per photo; MLP 3 x 250 sigmoid, BCE, Adam 5e-4,
  45 epochs, batch 64. The descriptor window is chosen among ``--windows`` by the validation
  area under the ROC curve of a 10-epoch MLP.
- ``detector_svm.safetensors`` (baseline): linear SVM on the same descriptors, as a torch
  linear model with hinge loss and L2 penalty (scikit-learn is not a dependency).
- ``detector_cnn.safetensors`` (baseline): CNN on the RGB window around the same candidates,
  3 conv layers of 10, 20, 30 maps, ReLU, Adam 1e-3, batch 20.
- ``detector_segnet.safetensors`` (stage ``detect.segnet``): a small U-Net on 96 px crops of
  the same damaged photos plus, for each photo, a scanned-old-print version
  (:func:`restorer.synth.old_print`) and for every third a toned, scanned undamaged one; BCE,
  Adam 1e-3 with cosine decay, 12,000 steps of 16 crops (weights/detector.md). Its threshold is
  calibrated on validation images of both kinds.

``--models`` retrains some of them only (the SegNet alone takes about 19 minutes with
``--threads 2`` on an idle 2-core CPU).
The SegNet seeds itself, so ``--models segnet`` writes the same file as a full run; the
descriptor models draw their initial weights from the run's shared random stream, so the
shipped files are reproduced by training them together (the default).

Each threshold is calibrated on every third validation image: the highest mean correct-detection
probability whose mean false-alarm probability is at most ``--target-fa``. A summary with the
metrics is written to ``detector_training.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from safetensors.torch import save
from torch import nn

from restorer import files
from restorer.errors import RestorerError
from restorer.features import DESCRIPTOR_LENGTH, patches
from restorer.stages.detect import Candidates
from restorer.stages.detect_learned import (CandidateClassifier, DescriptorMLP, SegNet,
                                            candidate_probability, descriptor_classifier,
                                            segnet_probability)
from restorer.train.detector_data import (HELD_OUT, NEGATIVE, POSITIVE, TRAINING, Example,
                                          PointSet, cached_points, detection_rates, list_photos,
                                          make_examples, sample_points)

__all__ = ["TRAINING", "HELD_OUT", "THRESHOLDS", "LinearSVM", "PatchCNN", "list_photos",
           "detection_rates", "cnn_classifier", "main"]

log = logging.getLogger(__name__)

#: Side (px) of the SegNet's training crops.
_CROP = 96
#: The models this trainer writes, ``detector_<name>.safetensors``.
MODELS = ("mlp", "svm", "cnn", "segnet")
#: Probability thresholds tried, strict to loose: even steps in logit (an MLP's are near 1).
THRESHOLDS = 1.0 / (1.0 + np.exp(-np.arange(10.0, -5.01, -0.25)))


class LinearSVM(nn.Module):
    """Linear SVM baseline: standardised descriptor (N, 469) -> margin (N,)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(DESCRIPTOR_LENGTH))
        self.register_buffer("std", torch.ones(DESCRIPTOR_LENGTH))
        self.linear = nn.Linear(DESCRIPTOR_LENGTH, 1)

    def forward(self, descriptors: torch.Tensor) -> torch.Tensor:
        return self.linear((descriptors - self.mean) / self.std)[:, 0]


class PatchCNN(nn.Module):
    """CNN baseline: RGB window (N, 3, w, w) in [0, 1] -> logit (N,); 10, 20, 30 maps."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 10, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(10, 20, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(20, 30, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(30, 1))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.net(windows - 0.5)[:, 0]


def cnn_classifier(model: PatchCNN, window: int) -> CandidateClassifier:
    """Candidate classifier of the CNN baseline."""

    def classify(image: np.ndarray, candidates: Candidates, ys: np.ndarray,
                 xs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch.sigmoid(model(torch.from_numpy(patches(image, ys, xs, window)))).numpy()

    return classify


# ------------------------------------------------------------------------------------ data
def _standardise(model: nn.Module, descriptors: np.ndarray) -> None:
    model.mean.copy_(torch.from_numpy(descriptors.mean(axis=0)))
    model.std.copy_(torch.from_numpy(descriptors.std(axis=0) + 1e-3))


def _fit(model: nn.Module, inputs: np.ndarray, labels: np.ndarray, *, loss: str, lr: float,
         epochs: int, batch: int, seed: int, weight_decay: float = 0.0) -> nn.Module:
    """Minibatch Adam on (``inputs``, 0/1 ``labels``): BCE on logits, or hinge on margins."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(inputs)
    y = torch.from_numpy(labels)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        total = 0.0
        for start in range(0, len(y), batch):
            index = order[start:start + batch]
            out = model(x[index])
            if loss == "bce":
                value = nn.functional.binary_cross_entropy_with_logits(out, y[index])
            else:
                value = torch.clamp(1.0 - (2.0 * y[index] - 1.0) * out, min=0.0).mean()
            optimiser.zero_grad()
            value.backward()
            optimiser.step()
            total += value.item() * len(index)
        log.info("  epoch %d/%d loss %.4f", epoch + 1, epochs, total / len(y))
    return model.eval()


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (rank statistic)."""
    ranks = np.empty(len(scores))
    ranks[np.argsort(scores, kind="stable")] = np.arange(1, len(scores) + 1)
    positives = labels > 0.5
    count = positives.sum()
    return float((ranks[positives].sum() - count * (count + 1) / 2)
                 / max(count * (len(labels) - count), 1))


def _scores(model: nn.Module, inputs: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(inputs)).numpy()


def train_mlp(points: PointSet, window: int, seed: int, epochs: int) -> DescriptorMLP:
    model = DescriptorMLP()
    _standardise(model, points.descriptors[window])
    return _fit(model, points.descriptors[window], points.labels, loss="bce", lr=5e-4,
                epochs=epochs, batch=64, seed=seed)


def train_svm(points: PointSet, window: int, seed: int) -> LinearSVM:
    model = LinearSVM()
    _standardise(model, points.descriptors[window])
    return _fit(model, points.descriptors[window], points.labels, loss="hinge", lr=1e-3,
                epochs=20, batch=256, seed=seed, weight_decay=1e-4)


def train_cnn(points: PointSet, window: int, seed: int, epochs: int) -> PatchCNN:
    return _fit(PatchCNN(), points.windows[window], points.labels, loss="bce", lr=1e-3,
                epochs=epochs, batch=20, seed=seed)


def train_segnet(examples: Sequence[Example], seed: int, iterations: int) -> SegNet:
    """U-Net on random 96 px crops (flipped, rotated) of ``examples``, batch 16, Adam 1e-3.

    Pixels on the soft crack edge (coverage in (0.05, 0.3)) do not count in the loss.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 2])
    model = SegNet()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, iterations)
    model.train()
    running = 0.0
    for step in range(iterations):
        images, targets = [], []
        for index in rng.integers(0, len(examples), 16):
            example = examples[index]
            height, width = example.coverage.shape
            crop = min(_CROP, height, width)
            y0 = int(rng.integers(0, height - crop + 1))
            x0 = int(rng.integers(0, width - crop + 1))
            image = example.image[y0:y0 + crop, x0:x0 + crop]
            cover = example.coverage[y0:y0 + crop, x0:x0 + crop]
            turns, flip = int(rng.integers(4)), bool(rng.integers(2))
            image, cover = np.rot90(image, turns), np.rot90(cover, turns)
            if flip:
                image, cover = image[:, ::-1], cover[:, ::-1]
            pad = ((0, _CROP - crop), (0, _CROP - crop))
            images.append(np.pad(image, pad + ((0, 0),), mode="reflect"))
            targets.append(np.pad(cover, pad, mode="constant", constant_values=0.15))
        x = torch.from_numpy(np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2)))
        cover = torch.from_numpy(np.ascontiguousarray(np.stack(targets)))[:, None]
        weight = ((cover >= POSITIVE) | (cover < NEGATIVE)).float()
        value = nn.functional.binary_cross_entropy_with_logits(
            model(x), (cover >= POSITIVE).float(), weight=weight)
        optimiser.zero_grad()
        value.backward()
        optimiser.step()
        schedule.step()
        running = 0.98 * running + 0.02 * value.item() if step else value.item()
        if (step + 1) % 100 == 0:
            log.info("  segnet step %d/%d loss %.4f", step + 1, iterations, running)
    return model.eval()


def calibrate(probability: Callable[[np.ndarray], np.ndarray], examples: Sequence[Example],
              target_fa: float) -> tuple[float, float, float]:
    """(threshold, mean false alarm, mean detection) on ``examples`` at the chosen threshold.

    The threshold is the one of :data:`THRESHOLDS` with the highest mean correct-detection
    probability whose mean false-alarm probability is at most ``target_fa`` (the strictest
    when none is).
    """
    grid = THRESHOLDS
    rates = np.zeros((len(grid), 2))
    for example in examples:
        prob = probability(example.image)
        truth = example.coverage >= POSITIVE
        rates += np.array([detection_rates(prob >= t, truth) for t in grid])
    rates /= len(examples)
    allowed = np.flatnonzero(rates[:, 0] <= target_fa)
    best = allowed[np.argmax(rates[allowed, 1])] if len(allowed) else 0
    return float(grid[best]), float(rates[best, 0]), float(rates[best, 1])


def _save(model: nn.Module, path: Path, **meta: float) -> None:
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"meta.{k}": torch.tensor(float(v)) for k, v in meta.items()})
    files.write_bytes(path, save(tensors))
    log.info("wrote %s (%d bytes)", path, path.stat().st_size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"),
                        help="data folder holding clean/ (default ../shared/data)")
    parser.add_argument("--out", type=Path, default=Path("weights"),
                        help="folder the weight files are written to (default weights)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=640, help="long side of each photo (px)")
    parser.add_argument("--windows", default="11,15,21",
                        help="descriptor window sides to choose from (comma-separated, odd)")
    parser.add_argument("--points", type=int, default=150,
                        help="positive and negative candidates sampled per photo (each)")
    parser.add_argument("--epochs", type=int, default=45, help="MLP epochs")
    parser.add_argument("--cnn-epochs", type=int, default=8)
    parser.add_argument("--segnet-steps", type=int, default=12000)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: small batches run faster on one "
                             "thread of a busy 2-core CPU; 2 on an idle one)")
    parser.add_argument("--models", default=",".join(MODELS),
                        help="models to train, comma-separated (default all); the others' "
                             "files are left as they are")
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder to keep the sampled descriptors in between runs (optional)")
    parser.add_argument("--limit", type=int, default=0,
                        help="use only this many photos (quick trial runs; 0 = all)")
    parser.add_argument("--target-fa", type=float, default=0.01,
                        help="validation false-alarm probability the thresholds aim at")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    windows = [int(w) for w in args.windows.split(",")]
    if any(w % 2 == 0 or w < 5 for w in windows):
        raise RestorerError(f"--windows must be odd sides >= 5, got {args.windows}")
    chosen = [m.strip() for m in args.models.split(",") if m.strip()]
    if not chosen or set(chosen) - set(MODELS):
        raise RestorerError(f"--models takes some of {', '.join(MODELS)}, got {args.models!r}")

    paths = list_photos(args.data, TRAINING)
    if args.limit:
        paths = paths[::max(1, len(paths) // args.limit)][:args.limit]
    order = np.random.default_rng([args.seed, 3]).permutation(len(paths))
    val_count = len(paths) // 5
    val_paths = [paths[i] for i in sorted(order[:val_count])]
    train_paths = [paths[i] for i in sorted(order[val_count:])]
    log.info("%d training photos, %d validation photos", len(train_paths), len(val_paths))
    train = make_examples(train_paths, args.size, args.seed)
    val = make_examples(val_paths, args.size, args.seed + 1000)
    summary: dict[str, object] = {
        "seed": args.seed, "size": args.size, "target_fa": args.target_fa,
        "train_photos": len(train_paths), "val_photos": len(val_paths),
        "train_images": len(train), "val_images": len(val), "calibration_images": len(val[::3]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    models: dict[str, tuple[nn.Module, Callable[[np.ndarray], np.ndarray]]] = {}
    window = 0
    if set(chosen) - {"segnet"}:  # the descriptor models share the sampled candidates
        key = (f"s{args.seed}-w{'_'.join(map(str, windows))}-p{args.points}-z{args.size}"
               f"-l{args.limit}")
        train_points = cached_points(args.cache, f"train-{key}",
                                     lambda: sample_points(train, windows, args.points, args.seed))
        val_points = cached_points(args.cache, f"val-{key}",
                                   lambda: sample_points(val, windows, args.points,
                                                         args.seed + 1000))
        log.info("descriptors: %d training (%d defect), %d validation; %.0f s",
                 len(train_points.labels), int(train_points.labels.sum()),
                 len(val_points.labels), time.perf_counter() - started)
        window_auc: dict[int, float] = {}
        for size in windows:
            quick = train_mlp(train_points, size, args.seed, min(10, args.epochs))
            window_auc[size] = _auc(_scores(quick, val_points.descriptors[size]),
                                    val_points.labels)
            log.info("window %d: validation AUC %.4f", size, window_auc[size])
        window = max(windows, key=window_auc.__getitem__)
        summary.update(train_points=len(train_points.labels),
                       train_defect_points=int(train_points.labels.sum()),
                       window_auc={str(k): v for k, v in window_auc.items()}, window=window)
    if "mlp" in chosen:
        mlp = train_mlp(train_points, window, args.seed, args.epochs)
        models["mlp"] = (mlp, lambda im: candidate_probability(
            im, descriptor_classifier(mlp, window), 15000))
    if "svm" in chosen:
        svm = train_svm(train_points, window, args.seed)
        models["svm"] = (svm, lambda im: candidate_probability(
            im, descriptor_classifier(svm, window), 15000))
    if "cnn" in chosen:
        cnn = train_cnn(train_points, window, args.seed, args.cnn_epochs)
        models["cnn"] = (cnn, lambda im: candidate_probability(im, cnn_classifier(cnn, window),
                                                               15000))
    if "segnet" in chosen:
        # The SegNet also learns (and is calibrated on) damage like that of real old prints.
        seg_train = make_examples(train_paths, args.size, args.seed, aged=True)
        seg_val = make_examples(val_paths, args.size, args.seed + 1000, aged=True)
        segnet = train_segnet(seg_train, args.seed, args.segnet_steps)
        models["segnet"] = (segnet, lambda im: segnet_probability(segnet, im, flips=False))
        summary.update(segnet_steps=args.segnet_steps, segnet_train_images=len(seg_train),
                       segnet_calibration_images=len(seg_val[::3]))
    metrics = {}
    for name, (model, probability) in models.items():
        auc = None
        if name in ("mlp", "svm"):
            auc = _auc(_scores(model, val_points.descriptors[window]), val_points.labels)
        elif name == "cnn":
            auc = _auc(_scores(model, val_points.windows[window]), val_points.labels)
        threshold, false_alarm, detection = calibrate(
            probability, (seg_val if name == "segnet" else val)[::3], args.target_fa)
        metrics[name] = {"threshold": threshold, "val_false_alarm": false_alarm,
                         "val_detection": detection, "val_candidate_auc": auc}
        log.info("%s: threshold %.3f, validation false alarm %.4f, detection %.3f, AUC %s",
                 name, threshold, false_alarm, detection, auc)
        meta = {"threshold": threshold} if name == "segnet" else {"window": window,
                                                                  "threshold": threshold}
        _save(model, args.out / f"detector_{name}.safetensors", **meta)
    summary["metrics"] = metrics
    summary["seconds"] = round(time.perf_counter() - started)
    record = args.out / "detector_training.json"
    if record.is_file() and set(chosen) != set(MODELS):  # keep what the other models recorded
        previous = json.loads(record.read_text())
        previous_metrics = previous.get("metrics", {})
        previous.update(summary)
        previous["metrics"] = {**previous_metrics, **metrics}
        summary = previous
    files.write_text(record, json.dumps(summary, indent=2) + "\n")
    log.info("done in %.0f s", time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
