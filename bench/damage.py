#!/usr/bin/env python
"""Damage of real old prints, kind by kind: detection, restoration and triage, in one run.

    python bench/damage.py [--data ../shared/data] [--count 8] [--size 512] [--seed 0]
        [--generators train,eval] [--threads 1]

Test photos: ``--count`` seeded picks from the photos no detector saw in training
(``restorer.train.detector.HELD_OUT``), long side ``--size``. Each is damaged once per kind
(crack, spot, crease, hole; one kind per photo, so a figure belongs to one kind) by each
generator: ``train`` is ``restorer.synth_print.print_damage`` (the generator training uses),
``eval`` is ``bench/evalgen.py`` (written separately, never trained on: thin branching light
soft-edged crack webs, straight folds, torn corners, Gaussian foxing). Seeds (seed, generator,
kind, photo).

Tables, per generator and kind:

1. Detection, per pixel against the generator's truth: P_d (flagged share of damaged pixels)
   and P_fa (flagged share of the others) of ``detect.morph``, ``detect.segnet`` and
   ``detect.print`` with their default options (as Auto runs them), and the SegNet's P_d at
   P_fa <= 0.01 (its threshold swept on the test photos themselves: the best any threshold
   could do); "holes" is the hole detector alone (mount left out), which detect.print adds
   once triage finds the photo torn (its option ``holes`` is off by default).
2. Restoration, PSNR / SSIM against the undamaged photo: the damaged input, Auto (triage ->
   plan; what the app does, detecting with ``detect.print``), "Auto before" (the same triage's
   plan with the previous detector, ``detect.segnet``, its stages run in order), and
   ``inpaint.ns`` / ``inpaint.telea`` given the true mask grown by one pixel (the classical
   baselines with perfect detection).
3. Triage: per damage kind (and the clean photos), the share of photos each label is found on
   (``TriageResult.found``), then per label its precision and recall against the kinds drawn
   (the clean photos count as negatives of every label).
4. Clean photos: how many Auto changed (any pixel moved by more than 1/255).

Fading (part B's ``bench/tone.py``) plugs in as another kind through :data:`SECTIONS`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
for path in (str(REPO), str(REPO / "bench")):
    if path not in sys.path:
        sys.path.insert(0, path)

import evalgen  # noqa: E402
from skimage.metrics import structural_similarity  # noqa: E402

from restorer import synth_print  # noqa: E402
from restorer.imaging import load_image  # noqa: E402
from restorer.ops import fit_long_side  # noqa: E402
from restorer.planner import Plan, PlannedStage, plan_auto  # noqa: E402
from restorer.service import build_pipeline  # noqa: E402
from restorer.stages.base import Work  # noqa: E402
from restorer.mount import find_print  # noqa: E402
from restorer.stages.detect_kinds import hole_mask  # noqa: E402
from restorer.stages.detect_learned import segnet_probability  # noqa: E402
from restorer.train.detector import HELD_OUT, detection_rates, list_photos  # noqa: E402

KINDS = synth_print.KINDS
#: Which triage label stands for each kind (None: not measured by triage).
TRIAGE_LABEL = {"crack": "cracked", "spot": "spotted", "crease": None, "hole": "torn"}
LABELS = [label for label in TRIAGE_LABEL.values() if label is not None]
Generator = Callable[[np.ndarray, np.random.Generator, str], tuple[np.ndarray, np.ndarray]]


def _train(clean: np.ndarray, rng: np.random.Generator, kind: str) -> tuple[np.ndarray, np.ndarray]:
    sample = synth_print.print_damage(clean, rng, kinds=[kind])
    return sample.image, sample.mask


def _eval(clean: np.ndarray, rng: np.random.Generator, kind: str) -> tuple[np.ndarray, np.ndarray]:
    sample = evalgen.damage(clean, rng, (kind,))
    return sample.image, sample.mask


GENERATORS: dict[str, tuple[str, Generator]] = {
    "train": ("restorer.synth_print (the training generator)", _train),
    "eval": ("bench/evalgen.py (separate, never trained on)", _eval),
}
#: Extra sections (name -> function of the parsed args printing its own tables); part B's
#: fading figures (bench/tone.py) join here.
SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {}


def table(header: list[str], rows: Iterable[list[object]]) -> str:
    def cell(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def quality(clean: np.ndarray, out: np.ndarray) -> tuple[float, float]:
    """(PSNR dB, SSIM) of float (H, W, 3) ``out`` against ``clean``."""
    mse = float(np.mean((clean - out) ** 2))
    psnr = 10 * np.log10(1.0 / max(mse, 1e-10))
    return psnr, float(structural_similarity(clean, out, channel_axis=2, data_range=1.0))


def best_detection(probabilities: list[np.ndarray], truths: list[np.ndarray],
                   ceiling: float = 0.01) -> tuple[float, float]:
    """(mean P_d, mean P_fa) at the lowest threshold whose mean P_fa is <= ``ceiling``."""
    for threshold in np.linspace(0.02, 0.98, 49):
        rates = np.mean([detection_rates(p >= threshold, t)
                         for p, t in zip(probabilities, truths)], axis=0)
        if rates[0] <= ceiling:
            return float(rates[1]), float(rates[0])
    return 0.0, 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generators", default="train,eval")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    paths = list_photos(args.data, HELD_OUT)
    picks = sorted(np.random.default_rng(args.seed).choice(len(paths), args.count, replace=False))
    cleans = [fit_long_side(load_image(paths[p]), args.size) for p in picks]
    pipeline = build_pipeline()
    registry = pipeline.registry
    detectors = ("detect.morph", "detect.segnet", "detect.print")
    stages = {s: registry.build(s) for s in (*detectors, "inpaint.ns", "inpaint.telea")}
    segnet = stages["detect.segnet"]
    defaults = {s: registry.spec(s).defaults for s in stages}
    large = pipeline.auto.large_inpaint
    # The previous detector's plan, run stage by stage: a large-hole inpainter whose file is
    # absent is left out, as Auto falls back from it.
    before = replace(pipeline.auto, detect="detect.segnet",
                     large_inpaint=large if large and registry.is_available(large) else None)
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    noop = lambda fraction, text: None  # noqa: E731
    print(f"# Old-print damage: {len(cleans)} held-out photos, long side {args.size} px, seed "
          f"{args.seed}; Auto = {pipeline.triage_id} -> {pipeline.auto.detect} -> "
          f"{pipeline.auto.inpaint} (before: {before.detect})\n")

    def run_plan(image: np.ndarray, plan: Plan) -> np.ndarray:
        """The photo after ``plan``'s stages, run in order (no triage)."""
        work = Work(image=image)
        for planned in plan.stages:
            out = stages.get(planned.id) or registry.build(planned.id)
            result = out.run(work, registry.spec(planned.id).resolve_options({}), noop)
            work = Work(image=work.image if result.image is None else result.image,
                        mask=work.mask if result.mask is None else result.mask)
        return work.image

    def inpaint(image: np.ndarray, mask: np.ndarray, stage_id: str) -> np.ndarray:
        out = stages[stage_id].run(Work(image=image, mask=mask), defaults[stage_id], noop)
        return image if out.image is None else out.image

    changed = 0
    clean_found: list[frozenset[str]] = []
    for clean in cleans:
        result = pipeline.run(clean)
        clean_found.append(result.triage.found)
        changed += bool(np.abs(result.image - clean).max() > 1 / 255)

    for gen_index, gen_name in enumerate(args.generators.split(",")):
        title, make = GENERATORS[gen_name]
        detect_rows, restore_rows = [], []
        found_by_kind: dict[str, list[frozenset[str]]] = {}
        for kind_index, kind in enumerate(KINDS):
            rates: dict[str, list[tuple[float, float]]] = {d: [] for d in (*detectors, "holes")}
            probabilities, truths = [], []
            scores: dict[str, list[tuple[float, float]]] = {
                m: [] for m in ("input", "Auto", "Auto before", "NS", "Telea")}
            found_by_kind[kind] = []
            for index, clean in enumerate(cleans):
                rng = np.random.default_rng([args.seed, gen_index, kind_index, index])
                image, truth = make(clean, rng, kind)
                work = Work(image=image)
                for name in detectors:
                    out = stages[name].run(work, defaults[name], noop)
                    rates[name].append(detection_rates(out.mask, truth))
                rates["holes"].append(detection_rates(
                    hole_mask(image, outside=~find_print(image).mask), truth))
                probabilities.append(segnet_probability(segnet.runtime, image))
                truths.append(truth)
                auto = pipeline.run(image)
                found_by_kind[kind].append(auto.triage.found)
                scores["input"].append(quality(clean, image))
                scores["Auto"].append(quality(clean, auto.image))
                scores["Auto before"].append(quality(clean, run_plan(
                    image, plan_auto(auto.triage, before))))
                grown = cv2.dilate(truth.astype(np.uint8), grow).astype(bool)
                for name, stage_id in (("NS", "inpaint.ns"), ("Telea", "inpaint.telea")):
                    scores[name].append(quality(clean, inpaint(image, grown, stage_id)))
            best = best_detection(probabilities, truths)
            detect_rows.append([kind, f"{100 * np.mean([t.mean() for t in truths]):.2f}",
                                *[v for n in (*detectors, "holes")
                                  for v in np.mean(rates[n], axis=0)[::-1].tolist()],
                                f"{best[0]:.3f} (P_fa {best[1]:.4f})"])
            restore_rows.append([kind, *[f"{np.mean([s[0] for s in v]):.2f} / "
                                         f"{np.mean([s[1] for s in v]):.3f}"
                                         for v in scores.values()]])
        print(f"## {title}\n")
        print("Detection (default options, as Auto runs them):\n")
        print(table(["kind", "damaged %", "morph P_d", "morph P_fa", "SegNet P_d", "SegNet P_fa",
                     "print P_d", "print P_fa", "holes P_d", "holes P_fa",
                     "SegNet P_d at P_fa<=0.01 (swept)"],
                    detect_rows))
        print("\nRestoration, PSNR dB / SSIM (NS and Telea given the true mask grown 1 px):\n")
        print(table(["kind", "damaged input", "Auto", "Auto before (segnet)", "NS true mask",
                     "Telea true mask"], restore_rows))
        print("\nTriage: share of the photos of each kind on which each label is found:\n")
        groups = {**found_by_kind, "clean": clean_found}
        print(table(["photos", *LABELS], [[kind, *[f"{np.mean([l in f for f in found]):.2f}"
                                                   for l in LABELS]]
                                          for kind, found in groups.items()]))
        rows = []
        for kind, label in TRIAGE_LABEL.items():
            if label is None:
                rows.append([label or f"({kind}: not measured)", "-", "-"])
                continue
            hits = sum(label in f for f in found_by_kind[kind])
            said = sum(label in f for found in groups.values() for f in found)
            rows.append([label, f"{hits / max(said, 1):.2f}" if said else "- (never said)",
                         f"{hits / len(found_by_kind[kind]):.2f}"])
        print("\nPer label (clean photos and the other kinds are its negatives):\n")
        print(table(["label", "precision", "recall"], rows))
        print()

    print(f"## Clean photos\n\nAuto changed {changed} of {len(cleans)}; labels found on them: "
          f"{', '.join(sorted({l for f in clean_found for l in f})) or 'none'}.\n")
    for section in SECTIONS.values():
        section(args)
    print(f"(total {time.perf_counter() - started:.0f} s, {args.threads} torch thread(s), load "
          f"average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
