#!/usr/bin/env python
"""Tuning the classical spot / crease / hole detectors on the TRAINING generator.

    python bench/print_kinds.py [--data ../shared/data] [--count 8] [--size 512] [--seed 0]
        [--generator train] [--save DIR] [--calibrate | --holes]

Photos: ``--count`` seeded picks of the training photos (``restorer.train.detector.TRAINING``),
long side ``--size``, each damaged once per kind by ``restorer.synth_print`` (``--generator
eval`` judges on held-out photos with ``bench/evalgen.py``; never tune on it). Per kind: the
kind's detector's P_d and P_fa against that kind's truth, and the share of a clean photo it
flags (the undamaged photos themselves). ``--save`` writes overlays (green found, blue missed,
red false) to look at.

``--holes`` instead counts the photos on which the hole detector flags anything (the mount left
out, as detect.print does): every photo under ``DATA/real`` (real old prints, nearly all
without tears), ``--count`` clean training and held-out photos, and those photos with the
training generator's and ``bench/evalgen.py``'s holes (found: at least 30 % of the truth).

``--calibrate`` instead fits the damage labels' logistics
(:data:`restorer.stages.print_labels.CALIBRATION`) on the same photos: each label's statistic
on the undamaged photos and on the photos damaged by each kind (positive for its own kind's
label), one logistic regression per label (negatives weighted :data:`NEGATIVE_WEIGHT`), printed
with its precision and recall at 0.5, and the same logistic's on ``--count`` held-out photos
(``HELD_OUT``) damaged by each generator, with how many undamaged held-out photos it labels.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
for path in (str(REPO), str(REPO / "bench")):
    if path not in sys.path:
        sys.path.insert(0, path)

from restorer import synth_print  # noqa: E402
from restorer.imaging import load_image  # noqa: E402
from restorer.ops import fit_long_side  # noqa: E402
from restorer.stages.detect_kinds import crease_mask, hole_mask, spot_mask  # noqa: E402
from restorer.stages.print_labels import LABEL_OF, kind_statistics  # noqa: E402
from restorer.train.detector import HELD_OUT, TRAINING, detection_rates, list_photos  # noqa: E402

DETECTORS = {"spot": spot_mask, "crease": crease_mask, "hole": hole_mask}


def overlay(image: np.ndarray, mask: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Uint8 BGR picture: ``image`` with found (green), missed (blue), false (red) pixels."""
    out = image.copy()
    out[mask & truth] = (0, 1, 0)
    out[~mask & truth] = (0, 0, 1)
    out[mask & ~truth] = (1, 0, 0)
    picture = np.hstack([image, out])
    return cv2.cvtColor((np.clip(picture, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)


#: Weight of a negative photo in the fit: a false label makes Auto change a clean photo.
NEGATIVE_WEIGHT = 1.0


def fit_logistic(values: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                 steps: int = 3000) -> tuple[float, float]:
    """(centre, slope) of the weighted 1-D logistic regression of 0/1 ``labels`` on
    ``values`` (gradient descent on standardised values; a small ridge keeps the slope finite
    when the classes separate)."""
    mean, std = float(values.mean()), float(values.std()) or 1.0
    z = (values - mean) / std
    a, b = 0.0, 0.0
    total = float(weights.sum())
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(a + b * z, -30, 30)))
        error = weights * (p - labels)
        a -= 0.5 * float(error.sum()) / total
        b -= 0.5 * (float((error * z).sum()) / total + 0.01 * b)
    slope = b / std
    return mean - a * std / b if b else float("inf"), slope


def _rows(cleans: list[np.ndarray], seed: int, generator: str, tag: int
          ) -> list[tuple[dict[str, float], str | None]]:
    """Each label's statistic on the undamaged ``cleans`` (kind None) and on each of them
    damaged by each kind of LABEL_OF (seeds (seed, tag, kind, photo)) by ``generator``."""
    import evalgen

    rows: list[tuple[dict[str, float], str | None]] = [(kind_statistics(c), None) for c in cleans]
    for kind_index, kind in enumerate(LABEL_OF):
        for index, clean in enumerate(cleans):
            rng = np.random.default_rng([seed, tag, kind_index, index])
            image = (synth_print.print_damage(clean, rng, kinds=[kind]).image
                     if generator == "train" else evalgen.damage(clean, rng, (kind,)).image)
            rows.append((kind_statistics(image), kind))
    return rows


def _rates(rows: list[tuple[dict[str, float], str | None]], kind: str, label: str,
           centre: float, slope: float) -> tuple[float, float, int]:
    """(precision, recall, false labels on the undamaged photos) of ``label`` at 0.5."""
    values = np.array([r[0][label] for r in rows])
    truth = np.array([r[1] == kind for r in rows])
    said = slope * (values - centre) >= 0.0
    hits = float((said & truth).sum())
    clean_false = int(sum(s for s, r in zip(said, rows) if r[1] is None))
    return hits / max(float(said.sum()), 1.0), hits / max(float(truth.sum()), 1.0), clean_false


def calibrate(cleans: list[np.ndarray], held: list[np.ndarray], seed: int) -> None:
    """Print the fitted (centre, slope) of each label and its precision / recall at 0.5 on
    the training photos, then the same logistic's on the ``held`` photos damaged by each
    generator (false labels on the undamaged held-out photos counted)."""
    rows = _rows(cleans, seed, "train", 13)
    checks = {g: _rows(held, seed, g, 17) for g in ("train", "eval")}
    print("| label | centre | slope | precision | recall | held-out train gen P / R / false "
          "on clean | held-out eval gen P / R / false on clean |\n|---|---|---|---|---|---|---|")
    for kind, label in LABEL_OF.items():
        values = np.array([r[0][label] for r in rows])
        truth = np.array([r[1] == kind for r in rows], float)
        centre, slope = fit_logistic(values, truth, np.where(truth > 0, 1.0, NEGATIVE_WEIGHT))
        precision, recall, _ = _rates(rows, kind, label, centre, slope)
        held_cells = []
        for generator in ("train", "eval"):
            p, r, false = _rates(checks[generator], kind, label, centre, slope)
            held_cells.append(f"{p:.2f} / {r:.2f} / {false} of {len(held)}")
        print(f"| {label} | {centre:.3f} | {slope:.2f} | {precision:.2f} | {recall:.2f} | "
              f"{' | '.join(held_cells)} |")


def _holes(image: np.ndarray) -> np.ndarray:
    from restorer.mount import find_print

    return hole_mask(image, outside=~find_print(image).mask)


def count_holes(data: Path, count: int, size: int, seed: int) -> None:
    """Print on how many photos :func:`hole_mask` flags anything (module docstring)."""
    import evalgen

    real = sorted(p for p in (data / "real").rglob("*")
                  if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    flagged = [p.name for p in real if _holes(fit_long_side(load_image(p), size)).any()]
    print(f"real/: flagged {len(flagged)} of {len(real)} {flagged}\n")
    print("| photos | clean flagged | train gen holes found | evalgen holes found |\n"
          "|---|---|---|---|")
    for name, split in (("training", TRAINING), ("held-out", HELD_OUT)):
        paths = list_photos(data, split)
        picks = sorted(np.random.default_rng([seed, 5]).choice(len(paths), count, replace=False))
        clean_flagged, found = 0, {"train": 0, "eval": 0}
        for index, pick in enumerate(picks):
            clean = fit_long_side(load_image(paths[pick]), size)
            clean_flagged += bool(_holes(clean).any())
            for generator in found:
                rng = np.random.default_rng([seed, 19, index])
                sample = (synth_print.print_damage(clean, rng, kinds=["hole"])
                          if generator == "train" else evalgen.damage(clean, rng, ("hole",)))
                truth = sample.masks["hole"]
                found[generator] += bool((_holes(sample.image) & truth).sum() > 0.3 * truth.sum())
        print(f"| {count} {name} | {clean_flagged} | {found['train']} | {found['eval']} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generator", choices=("train", "eval"), default="train")
    parser.add_argument("--save", type=Path)
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--holes", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.holes:
        print(f"# Hole detector: photos flagged, long side {args.size}\n")
        count_holes(args.data, args.count, args.size, args.seed)
        print(f"\n({time.perf_counter() - started:.0f} s)")
        return 0
    paths = list_photos(args.data, TRAINING if args.generator == "train" else HELD_OUT)
    picks = sorted(np.random.default_rng(args.seed).choice(len(paths), args.count, replace=False))
    cleans = [fit_long_side(load_image(paths[p]), args.size) for p in picks]
    if args.calibrate:
        held_paths = list_photos(args.data, HELD_OUT)
        held_picks = sorted(np.random.default_rng(args.seed).choice(len(held_paths), args.count,
                                                                    replace=False))
        held = [fit_long_side(load_image(held_paths[p]), args.size) for p in held_picks]
        print(f"# Label calibration, {args.count} training photos, synth_print; checked on "
              f"{args.count} held-out photos, synth_print and bench/evalgen.py\n")
        calibrate(cleans, held, args.seed)
        print(f"\n({time.perf_counter() - started:.0f} s)")
        return 0
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    print(f"# Kind detectors, {args.count} {args.generator} photos ({args.generator} "
          f"generator), long side {args.size}\n")
    print("| kind | damaged % | P_d | P_fa | clean photo flagged % |\n|---|---|---|---|---|")
    for kind_index, (kind, detect) in enumerate(DETECTORS.items()):
        rates, clean_flagged, share = [], [], []
        for index, clean in enumerate(cleans):
            rng = np.random.default_rng([args.seed, 11, kind_index, index])
            if args.generator == "train":
                sample = synth_print.print_damage(clean, rng, kinds=[kind])
                image, truth = sample.image, sample.masks[kind]
            else:
                import evalgen

                sample = evalgen.damage(clean, rng, (kind,))
                image, truth = sample.image, sample.masks[kind]
            mask = detect(image)
            rates.append(detection_rates(mask, truth))
            share.append(truth.mean())
            clean_flagged.append(detect(clean).mean())
            if args.save:
                cv2.imwrite(str(args.save / f"{kind}-{index}.png"), overlay(image, mask, truth))
        p_fa, p_d = np.mean(rates, axis=0)
        print(f"| {kind} | {100 * np.mean(share):.2f} | {p_d:.3f} | {p_fa:.4f} | "
              f"{100 * np.mean(clean_flagged):.2f} |")
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
