#!/usr/bin/env python
"""Benchmark the triage classifiers on held-out synthetic damage, and label the real photos.

    python bench/triage.py [--data ../shared/data] [--count 400] [--seed 1]
                           [--model compact=weights/triage_net.keras[,FUSION] ...]
                           [--real-sheet docs/triage-real.png] [--real-table docs/triage-real.md]

The test set is made by the training module's own generator (``restorer.train.triage``) from
the held-out photos only (never seen in training), four labels in equal numbers, seeded. Each
model (the network alone, and fused with detect.segnet's mask and the blur measures as the
``triage.net`` stage does) and the heuristic triage (detect.morph + triage.heuristic) run in
this one process and the script prints: four-label accuracy with its 95 % Wilson interval (400
photos resolve about +-2.5 points), per-class precision / recall, the confusion matrix (rows =
truth), how many of the blurred photos are found for each kind of blur (Gaussian, defocus,
motion), milliseconds per photo on this CPU (views included) and the model's size; each
classifier after the first is also compared with the first on the same photos (how many answers
turned right and wrong, and the exact McNemar p-value: a paired comparison sees differences
that two overlapping intervals hide). A model given as ``NAME=PATH,FUSION`` is fused with the
fusion file fitted on it (``python -m restorer.train.triage --fusion --out PATH --fusion-out
FUSION``).

``--real-table`` writes the first model's labels for every photo under ``DATA/real`` as a
markdown table; ``--real-sheet`` a contact sheet of thumbnails with their labels, for looking at
by eye. The photos' licences are mixed: keep the sheet out of the repository.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from restorer.imaging import load_image  # noqa: E402
from restorer.registry import default_registry  # noqa: E402
from restorer.stages.base import Work  # noqa: E402
from restorer.service import ServiceConfig, build_store  # noqa: E402
from restorer.stages.triage_net import FUSION_ID, WEIGHT_ID, NetTriage, fuse  # noqa: E402
from restorer.train.triage import (LABELS, draw_samples, evaluate,  # noqa: E402
                                   source_photos)

_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _quiet(fraction: float, message: str) -> None:
    """Progress callback that ignores progress."""


def heldout_samples(data: Path, count: int, seed: int) -> list:
    """``count`` seeded samples (labels balanced) from the held-out photos."""
    return list(draw_samples(source_photos(data, "heldout"), count, seed))


def run_net(path: Path, samples: list, fusion: Path | None = None
            ) -> tuple[np.ndarray, np.ndarray, float, NetTriage]:
    """(p_blur, p_crack) per sample of the network alone and fused with the detector and the
    blur measures (the stage's answer), mean seconds per photo (both), and the loaded stage.

    The detector, and the fusion unless ``fusion`` is given (it must be fitted on ``path``),
    are the verified files of the project's manifest.
    """
    store = build_store(ServiceConfig(offline=True))
    local = {WEIGHT_ID: path} | ({FUSION_ID: fusion} if fusion is not None else {})
    stage = NetTriage(lambda weight_id: local.get(weight_id)
                      or store.resolve(weight_id, download=False))
    stage.probabilities(samples[0].image)  # load and warm up outside the timing
    started = time.perf_counter()
    measured = [stage.measure(s.image) for s in samples]
    seconds = (time.perf_counter() - started) / len(samples)
    alone = np.array([(m.p_blur, m.p_crack) for m in measured])
    fused = np.array([fuse(stage.fusion, m) for m in measured])
    return alone, fused, seconds, stage


def run_heuristic(samples: list) -> tuple[np.ndarray, float]:
    """The heuristic triage's (p_blur, p_crack) stand-ins (its two decisions) and s/photo."""
    registry = default_registry()
    detect, triage = registry.build("detect.morph"), registry.build("triage.heuristic")
    detect_options = detect.spec.defaults
    triage_options = triage.spec.defaults
    out = []
    started = time.perf_counter()
    for sample in samples:
        mask = detect.run(Work(sample.image), detect_options, _quiet).mask
        result = triage.run(Work(sample.image, mask), triage_options, _quiet).triage
        out.append((float(result.blurred), float(result.cracked)))
    return np.array(out), (time.perf_counter() - started) / len(samples)


def wilson_interval(accuracy: float, count: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of an ``accuracy`` in [0, 1] measured on ``count`` photos."""
    centre = (accuracy + z * z / (2 * count)) / (1 + z * z / count)
    half = (z / (1 + z * z / count)) * math.sqrt(accuracy * (1 - accuracy) / count
                                                  + z * z / (4 * count * count))
    return centre - half, centre + half


def print_report(name: str, metrics: dict, ms: float, size: str) -> None:
    count = int(np.sum(metrics["confusion"]))
    low, high = wilson_interval(metrics["accuracy"], count)
    print(f"### {name}\n")
    print(f"accuracy **{metrics['accuracy']:.4f}** (95 % interval {low:.3f}-{high:.3f} on "
          f"{count} photos), {ms:.1f} ms per photo, {size}\n")
    print("| truth \\ predicted | " + " | ".join(LABELS) + " | recall |")
    print("|---" * (len(LABELS) + 2) + "|")
    for index, name_ in enumerate(LABELS):
        row = metrics["confusion"][index]
        print(f"| {name_} | " + " | ".join(str(v) for v in row)
              + f" | {metrics['per_class'][name_]['recall']:.3f} |")
    print("| precision | " + " | ".join(f"{metrics['per_class'][n]['precision']:.3f}"
                                        for n in LABELS) + " | |\n")


def right_answers(probabilities: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Bool (N,): both decisions of (p_blur, p_crack) ``probabilities`` (N, 2) match
    ``targets`` (N, 2) 0/1."""
    return ((probabilities >= 0.5) == (targets >= 0.5)).all(axis=1)


def mcnemar_p(turned_right: int, turned_wrong: int) -> float:
    """Two-sided exact McNemar p-value of two classifiers judged on the same photos, from the
    counts of photos only one of them gets right."""
    count = turned_right + turned_wrong
    tail = sum(math.comb(count, k) for k in range(min(turned_right, turned_wrong) + 1))
    return min(1.0, 2.0 * tail / 2.0 ** count) if count else 1.0


def print_paired(name: str, first: str, right: np.ndarray, first_right: np.ndarray) -> None:
    """How the fused answers of ``name`` differ from ``first``'s on the same photos."""
    turned_right = int(np.count_nonzero(right & ~first_right))
    turned_wrong = int(np.count_nonzero(first_right & ~right))
    print(f"paired against {first} (fused, same photos): {turned_right} turned right, "
          f"{turned_wrong} turned wrong, exact McNemar p = "
          f"{mcnemar_p(turned_right, turned_wrong):.3f}\n")


def print_blur_recall(p_blur: np.ndarray, samples: list) -> None:
    """Share of the blurred samples of each kind of blur whose ``p_blur`` is at least 0.5."""
    kinds = np.array([s.blur or "" for s in samples])
    parts = []
    for kind in ("gaussian", "defocus", "motion"):
        chosen = kinds == kind
        found = int(np.count_nonzero(p_blur[chosen] >= 0.5))
        parts.append(f"{kind} {found}/{int(chosen.sum())}")
    print("blur found, by kind: " + ", ".join(parts) + "\n")


def label_real(stage: NetTriage, data: Path, table: Path | None, sheet: Path | None) -> None:
    """Label every photo under ``data/real``; write a markdown table and/or a contact sheet."""
    rows, tiles = [], []
    for folder in sorted(p for p in (data / "real").iterdir() if p.is_dir()):
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in _SUFFIXES):
            if "mask" in path.stem:
                continue
            image = load_image(path)
            p_blur, p_crack = stage.probabilities(image)
            label = LABELS[int(p_blur >= 0.5) + 2 * int(p_crack >= 0.5)]
            rows.append(f"| {folder.name}/{path.name} | {label} | {p_blur:.2f} | {p_crack:.2f} |")
            if sheet is not None:
                tiles.append(_tile(image, f"{label} b{p_blur:.2f} c{p_crack:.2f}"))
    if table is not None:
        table.write_text("| photo | label | p(blur) | p(crack) |\n|---|---|---|---|\n"
                         + "\n".join(rows) + "\n")
        print(f"wrote {table} ({len(rows)} photos)")
    if sheet is not None:
        columns = 10
        while len(tiles) % columns:
            tiles.append(np.zeros_like(tiles[0]))
        grid = np.vstack([np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)])
        cv2.imwrite(str(sheet), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        print(f"wrote {sheet}")


def _tile(image: np.ndarray, text: str, side: int = 160) -> np.ndarray:
    height, width = image.shape[:2]
    scale = side / max(height, width)
    small = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    tile = np.zeros((side + 18, side, 3), np.uint8)
    tile[:small.shape[0], :small.shape[1]] = (small * 255 + 0.5).astype(np.uint8)
    cv2.putText(tile, text, (2, side + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (255, 255, 0), 1,
                cv2.LINE_AA)
    return tile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--count", type=int, default=400, help="held-out samples (default 400)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", action="append", default=None, metavar="NAME=PATH[,FUSION]",
                        help="a .keras triage model and optionally the fusion fitted on it "
                             "(repeatable; default compact=weights/triage_net.keras with the "
                             "manifest's fusion)")
    parser.add_argument("--no-heuristic", action="store_true")
    parser.add_argument("--real-table", type=Path, default=None)
    parser.add_argument("--real-sheet", type=Path, default=None)
    args = parser.parse_args(argv)

    models = [m.split("=", 1) for m in (args.model or
                                        [f"compact={REPO / 'weights' / 'triage_net.keras'}"])]
    samples = heldout_samples(args.data, args.count, args.seed)
    sizes = {}
    print(f"# Triage on {len(samples)} held-out synthetic photos (seed {args.seed})\n")
    first_stage = None
    targets = np.array([s.targets for s in samples])
    first_right: tuple[str, np.ndarray] | None = None
    for name, paths in models:
        path, _, fusion = paths.partition(",")
        alone, fused, seconds, stage = run_net(Path(path), samples,
                                               Path(fusion) if fusion else None)
        first_stage = first_stage or stage
        sizes[name] = (f"{stage.network.model.parameters:,} parameters, "
                       f"{Path(path).stat().st_size / 1e6:.2f} MB")
        print_report(f"{name} ({Path(path).name}), network alone", evaluate(alone, targets),
                     seconds * 1e3, sizes[name] + "; ms include the detector")
        print_blur_recall(alone[:, 0], samples)
        recipe = stage.fusion.recipe
        print_report(f"{name} fused with detect.segnet and the blur measures (triage.net; "
                     f"detector over flips: {'yes' if recipe.detector_flips else 'no'}, blur "
                     f"away from flagged edges: {'yes' if recipe.blur_excludes_flagged else 'no'})",
                     evaluate(fused, targets), seconds * 1e3,
                     sizes[name] + " + detect.segnet 97k parameters + 9 fusion weights")
        print_blur_recall(fused[:, 0], samples)
        if first_right is None:
            first_right = (name, right_answers(fused, targets))
        else:
            print_paired(name, first_right[0], right_answers(fused, targets), first_right[1])
    if not args.no_heuristic:
        decisions, seconds = run_heuristic(samples)
        print_report("heuristic (detect.morph + triage.heuristic)",
                     evaluate(decisions, targets), seconds * 1e3, "no model")
        if first_right is not None:
            print_paired("heuristic", first_right[0], right_answers(decisions, targets),
                         first_right[1])
    if args.real_table or args.real_sheet:
        label_real(first_stage, args.data, args.real_table, args.real_sheet)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
