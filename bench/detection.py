#!/usr/bin/env python
"""Table 1 of seed paper 000 on held-out synthetic damage: defect detection per image.

    python bench/detection.py [--data ../shared/data] [--weights weights] [--count 13]
        [--size 640] [--seed 0] [--threads 1] [--damage both] [--overlays docs/overlays]

Test set: ``--count`` seeded picks from the photos the detectors never saw in training
(bsds-test[100:], faces-celebahq[14:]: ``restorer.train.detector.HELD_OUT``), long side
``--size``, each damaged by ``restorer.synth.defects`` (light and dark cracks, dust, spots; the
damage all detectors were trained on) with seed (seed, 5, index), and in a second table by
``restorer.synth.old_print`` (toning or fading, crack webs, long scratches and faint thin
cracks, mostly light, then film grain or JPEG, like a scanned old print; only the SegNet saw
such damage in training) with seed (seed, 6, index). For every photo and method: the false-alarm
probability (flagged share of defect-free pixels) and the correct-detection probability (flagged
share of defect pixels, truth = coverage >= 0.3), at each method's own threshold (calibrated on
validation photos at training time), masks not dilated. Methods: morphology only
(``detect.morph``, dilate 0), the linear SVM and the CNN baselines and the MLP (the paper's
method; all three classify the same candidates), and the segmentation network (one pass, as
shipped, and averaged over four flips at the same threshold). Seconds per megapixel are for the
whole detector (candidates included) in this process: wall clock and CPU time (the CPU time is
what an idle machine's wall clock would be with ``--threads 1``).

A second table compares the methods at a matched correct-detection probability of 0.80 (the
threshold, or the morphological sensitivity, swept on the test set itself).

``--overlays DIR`` also writes, for each real scratched photo (``real/scratched``,
``real/scratched-with-predicted-mask``), the photo beside the masks of morphology and SegNet,
and prints precision and recall against the predicted mask of the latter (a network's output,
not a human label).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from restorer import synth  # noqa: E402
from restorer.imaging import load_image, overlay_mask, save_image  # noqa: E402
from restorer.ops import fit_long_side  # noqa: E402
from restorer.stages.detect import MorphParams, detect_morphological  # noqa: E402
from restorer.stages.detect_learned import (DescriptorMLP, SegNet,  # noqa: E402
                                            candidate_probability, descriptor_classifier,
                                            segnet_probability)
from restorer.train.detector import (HELD_OUT, THRESHOLDS, LinearSVM, PatchCNN,  # noqa: E402
                                     cnn_classifier, detection_rates, list_photos)
from restorer.weights import load_safetensors  # noqa: E402

POINTS_PER_MP = 15000
MATCHED_DETECTION = 0.80
Probability = Callable[[np.ndarray], np.ndarray]


def load(kind: type[torch.nn.Module], path: Path) -> tuple[torch.nn.Module, dict[str, float]]:
    """A trained model and its ``meta.*`` scalars from a detector safetensors file."""
    tensors = load_safetensors(path)
    meta = {k[5:]: float(v) for k, v in tensors.items() if k.startswith("meta.")}
    model = kind()
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("meta.")})
    return model.eval(), meta


def learned_methods(weights: Path) -> dict[str, tuple[Probability, float]]:
    """Probability function and calibrated threshold per learned method."""
    methods: dict[str, tuple[Probability, float]] = {}
    for name, kind, wrap in (("SVM", LinearSVM, descriptor_classifier), ("CNN", PatchCNN, cnn_classifier),
                             ("MLP", DescriptorMLP, descriptor_classifier)):
        model, meta = load(kind, weights / f"detector_{name.lower()}.safetensors")
        classify = wrap(model, int(meta["window"]))
        methods[name] = ((lambda im, c=classify: candidate_probability(im, c, POINTS_PER_MP)),
                         meta["threshold"])
    segnet, meta = load(SegNet, weights / "detector_segnet.safetensors")
    methods["SegNet"] = ((lambda im: segnet_probability(segnet, im)), meta["threshold"])
    # Averaged over the photo and its three flips: four passes, at the same threshold.
    methods["SegNet x4"] = ((lambda im: segnet_probability(segnet, im, flips=True)),
                            meta["threshold"])
    return methods


def table(header: list[str], rows: list[list[object]]) -> str:
    def cell(value: object) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def matched(curves: list[tuple[float, float]]) -> str:
    """Mean false alarm where the mean detection first reaches ``MATCHED_DETECTION``.

    ``curves`` are (mean false alarm, mean detection) points ordered from strict to loose.
    """
    for false_alarm, detection in curves:
        if detection >= MATCHED_DETECTION:
            return f"{false_alarm:.4f}"
    return f"not reached (max detection {max(d for _, d in curves):.3f})"


def real_overlays(data: Path, methods: dict[str, tuple[Probability, float]], out: Path) -> None:
    """For each real scratched photo, write photo | morphology | SegNet masks to ``out``.

    Photos under 400 px tall are shown at twice their size (pixel-replicated) so thin cracks
    can be judged by eye. Prints precision and recall against the predicted mask of
    ``real/scratched-with-predicted-mask`` for morphology, the MLP and SegNet.
    """
    proxy = data / "real" / "scratched-with-predicted-mask"
    photos = sorted((data / "real" / "scratched").glob("*.png"))
    photos.append(proxy / "scratch_detection_input.png")
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for path in photos:
        image = load_image(path)
        masks = {"morph": detect_morphological(image)}
        for name in ("MLP", "SegNet"):
            probability, threshold = methods[name]
            masks[name] = probability(image) >= threshold
        row = np.concatenate([image, overlay_mask(image, masks["morph"]),
                              overlay_mask(image, masks["SegNet"])], axis=1)
        if image.shape[0] < 400:
            row = cv2.resize(row, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
        save_image(row, out / f"{path.parent.name}-{path.stem}.png")
        if path.parent == proxy:
            truth = load_image(proxy / "scratch_detection_predmask.png")[..., 0] > 0.5
            for name, mask in masks.items():
                hits = float((mask & truth).sum())
                results.append([name, hits / max(mask.sum(), 1), hits / truth.sum(),
                                float(mask.mean())])
    print(f"\n## Real scratched photos (by eye: {out}/, photo | morphology | SegNet, red = "
          "flagged)\n")
    print("Against the network-predicted mask of real/scratched-with-predicted-mask:\n")
    print(table(["method", "precision", "recall", "flagged"], results))


def report(title: str, tests: list[tuple[str, synth.DefectSample, np.ndarray]],
           methods: dict[str, tuple[Probability, float]]) -> None:
    """Print the per-photo table, the flagged shares and the matched-detection table."""
    names = ["morph", *methods]
    rates: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    seconds = dict.fromkeys(names, 0.0)
    cpu = dict.fromkeys(names, 0.0)
    megapixels = sum(s.image.shape[0] * s.image.shape[1] for _, s, _ in tests) / 1e6
    probabilities: dict[str, list[np.ndarray]] = {n: [] for n in methods}
    clean_flagged: dict[str, list[float]] = {n: [] for n in names}
    damaged_flagged: dict[str, list[float]] = {n: [] for n in names}
    for probability, _ in methods.values():  # warm-up: first calls allocate and load kernels
        probability(tests[0][1].image)
    for _, sample, clean in tests:
        clean_flagged["morph"].append(float(detect_morphological(clean, MorphParams(dilate=0))
                                            .mean()))
        for name, (probability, threshold) in methods.items():
            clean_flagged[name].append(float((probability(clean) >= threshold).mean()))
        start, start_cpu = time.perf_counter(), time.process_time()
        mask = detect_morphological(sample.image, MorphParams(dilate=0))
        seconds["morph"] += time.perf_counter() - start
        cpu["morph"] += time.process_time() - start_cpu
        rates["morph"].append(detection_rates(mask, sample.mask))
        damaged_flagged["morph"].append(float(mask.mean()))
        for name, (probability, threshold) in methods.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            prob = probability(sample.image)
            seconds[name] += time.perf_counter() - start
            cpu[name] += time.process_time() - start_cpu
            probabilities[name].append(prob)
            rates[name].append(detection_rates(prob >= threshold, sample.mask))
            damaged_flagged[name].append(float((prob >= threshold).mean()))

    print(f"# Defect detection, Table 1 style: {title}\n")
    print("FA = false-alarm probability, CD = correct-detection probability, at each method's "
          "calibrated threshold, no dilation. SVM, CNN and MLP classify the same morphological "
          "candidates.\n")
    header = ["photo", "defect %"] + [f"{n} {k}" for n in names for k in ("FA", "CD")]
    rows = []
    for index, (name, sample, _) in enumerate(tests):
        rows.append([name, f"{100 * sample.mask.mean():.1f}"]
                    + [v for n in names for v in rates[n][index]])
    rows.append(["**mean**", f"{100 * np.mean([s.mask.mean() for _, s, _ in tests]):.1f}"]
                + [float(v) for n in names for v in np.mean(rates[n], axis=0)])
    rows.append(["s/MP (wall, CPU)", ""]
                + [v for n in names for v in (f"{seconds[n] / megapixels:.2f}",
                                              f"{cpu[n] / megapixels:.2f}")])
    print(table(header, rows))
    print("\nShare of the photo flagged, on the same photos undamaged (all of it false alarm) "
          "and damaged (what a triage sees).\n")
    print(table(["method", "clean mean", "clean median", "clean max", "damaged min",
                 "damaged median"],
                [[n, float(np.mean(v)), float(np.median(v)), float(np.max(v)),
                  float(np.min(damaged_flagged[n])), float(np.median(damaged_flagged[n]))]
                 for n, v in clean_flagged.items()]))

    curves: dict[str, list[tuple[float, float]]] = {}
    for sensitivity in np.linspace(0.3, 1.0, 15):
        params = MorphParams(dilate=0, sensitivity=float(sensitivity))
        values = [detection_rates(detect_morphological(s.image, params), s.mask)
                  for _, s, _ in tests]
        curves.setdefault("morph", []).append(tuple(np.mean(values, axis=0)))
    for name in methods:
        for threshold in THRESHOLDS:
            values = [detection_rates(p >= threshold, s.mask)
                      for p, (_, s, _) in zip(probabilities[name], tests)]
            curves.setdefault(name, []).append(tuple(np.mean(values, axis=0)))
    print(f"\n## Mean false-alarm probability at a mean correct detection of "
          f"{MATCHED_DETECTION:.2f} (swept on the test set)\n")
    print(table(["method", "FA at CD 0.80"], [[n, matched(curves[n])] for n in names]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--weights", type=Path, default=REPO / "weights",
                        help="folder with detector_{mlp,svm,cnn,segnet}.safetensors")
    parser.add_argument("--count", type=int, default=13, help="test photos (default 13)")
    parser.add_argument("--size", type=int, default=640, help="long side of each photo (px)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a busy 2-core machine two threads "
                             "contend and run several times slower)")
    parser.add_argument("--damage", choices=("defects", "aged", "both"), default="both",
                        help="test damage: the training generator's, real-print-like, or both "
                             "(two tables)")
    parser.add_argument("--overlays", type=Path, default=None,
                        help="folder to write the real scratched photos' overlays to (keep "
                             "it out of git: docs/overlays/ is ignored)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    paths = list_photos(args.data, HELD_OUT)
    picks = np.random.default_rng(args.seed).choice(len(paths), args.count, replace=False)
    cleans = [(paths[p].name, fit_long_side(load_image(paths[p]), args.size))
              for p in sorted(picks)]
    methods = learned_methods(args.weights)
    damages = {"defects": ("synth.defects: light and dark cracks 1-5 px, dust, spots", 5,
                           synth.defects),
               "aged": ("synth.old_print: toned or faded, crack webs, long scratches, faint "
                        "thin cracks, mostly light, then grain or JPEG, like a scanned old "
                        "print", 6, synth.old_print)}
    for kind in (damages if args.damage == "both" else [args.damage]):
        title, stream, make = damages[kind]
        tests = [(name, make(clean, np.random.default_rng([args.seed, stream, index])), clean)
                 for index, (name, clean) in enumerate(cleans)]
        report(f"{title}; {len(tests)} held-out photos, long side {args.size} px, seed "
               f"{args.seed}", tests, methods)
    if args.overlays is not None:
        real_overlays(args.data, methods, args.overlays)
    print(f"\n(total {time.perf_counter() - started:.0f} s, {args.threads} torch thread(s), "
          f"load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
