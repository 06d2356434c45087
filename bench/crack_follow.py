#!/usr/bin/env python
"""Choosing the crack mask's post-processing by measurement on the TRAINING generator.

    python bench/crack_follow.py [--data ../shared/data] [--count 8] [--size 512] [--seed 0]

Photos: ``--count`` seeded picks of the training photos (``restorer.train.detector.TRAINING``,
never the held-out ones), damaged by ``restorer.synth_print`` with cracks only (the training
generator; ``bench/evalgen.py`` is never used for tuning). For each candidate rule on the
shipped SegNet's probability (plain threshold, hysteresis low/high, with or without a ridge
bridge, grown by r px): mean P_d, P_fa against the truth, and the PSNR of Navier-Stokes fill of
the mask next to NS given the true mask grown 1 px, in one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from restorer import synth_print  # noqa: E402
from restorer.imaging import load_image  # noqa: E402
from restorer.masks import grow  # noqa: E402
from restorer.ops import fit_long_side  # noqa: E402
from restorer.stages.detect_learned import load_segnet  # noqa: E402
from restorer.stages.detect_print import CrackParams, crack_mask, crack_probability  # noqa: E402
from restorer.train.detector import TRAINING, detection_rates, list_photos  # noqa: E402


def ns_psnr(clean: np.ndarray, image: np.ndarray, mask: np.ndarray) -> float:
    """PSNR dB of NS fill (radius 3) of ``mask`` in ``image`` against ``clean``."""
    if mask.any():
        u8 = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
        image = cv2.inpaint(u8, mask.astype(np.uint8), 3, cv2.INPAINT_NS).astype(np.float32) / 255
    return float(10 * np.log10(1.0 / max(float(np.mean((clean - image) ** 2)), 1e-10)))


ONE = ((1.0, 1.0),)
RULES: dict[str, CrackParams] = {
    # "x0.5 at 0.5": the SegNet also run at half size, its probability weighted by 0.5.
    "threshold (today)": CrackParams(high=1.0, plain=True, scales=ONE),
    "threshold, grow 1": CrackParams(high=1.0, plain=True, grow=1.0, scales=ONE),
    "hyst 0.7/1.5": CrackParams(low=0.7, high=1.5, scales=ONE),
    "hyst 0.5/1.0": CrackParams(low=0.5, high=1.0, scales=ONE),
    "hyst 0.7/1.5 + ridge 0.5": CrackParams(low=0.7, high=1.5, ridge=0.5, scales=ONE),
    "x0.5 at 0.5, threshold": CrackParams(high=1.0, plain=True),
    "x0.5 at 0.5, hyst 1.0/2.5": CrackParams(low=1.0, high=2.5),
    "x0.5 at 0.5, hyst 1.0/1.5": CrackParams(low=1.0, high=1.5),
    "x0.5 at 0.5, hyst 0.7/1.5": CrackParams(low=0.7, high=1.5),
    "x0.5 at 0.5, hyst 1.0/1.5, grow 1": CrackParams(low=1.0, high=1.5, grow=1.0),
    "x0.5 at 0.5, hyst 1.0/2.5, grow 1": CrackParams(low=1.0, high=2.5, grow=1.0),
    "x0.5 at 0.5, hyst 1.0/1.5 + ridge 0.5": CrackParams(low=1.0, high=1.5, ridge=0.5),
    "x0.7 at 0.5, hyst 1.0/2.5": CrackParams(low=1.0, high=2.5, scales=((1.0, 1.0), (0.5, 0.7))),
    "x0.5 at 0.5 and 0.25, hyst 1.0/2.5": CrackParams(
        low=1.0, high=2.5, scales=((1.0, 1.0), (0.5, 0.5), (0.25, 0.5))),
    # "flips": each scale's probability averaged over the photo and its three flips.
    "flips, x0.5 at 0.5, hyst 1.0/1.5": CrackParams(low=1.0, high=1.5, flips=True),
    "flips, x0.5 at 0.5, hyst 0.8/1.5": CrackParams(low=0.8, high=1.5, flips=True),
    "flips, x0.5 at 0.5, hyst 0.8/1.2": CrackParams(low=0.8, high=1.2, flips=True),
    "flips, x0.5 at 0.5, hyst 0.7/1.5": CrackParams(low=0.7, high=1.5, flips=True),
    "flips, x0.5 at 0.5, hyst 1.0/1.5, grow 1": CrackParams(low=1.0, high=1.5, grow=1.0,
                                                           flips=True),
    "flips, x0.7 at 0.5, hyst 0.8/1.5": CrackParams(low=0.8, high=1.5, flips=True,
                                                    scales=((1.0, 1.0), (0.5, 0.7))),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    model, threshold = load_segnet(REPO / "weights" / "detector_segnet.safetensors", "bench")
    paths = list_photos(args.data, TRAINING)
    picks = sorted(np.random.default_rng(args.seed).choice(len(paths), args.count, replace=False))
    samples = []
    for index, pick in enumerate(picks):
        clean = fit_long_side(load_image(paths[pick]), args.size)
        sample = synth_print.print_damage(clean, np.random.default_rng([args.seed, 7, index]),
                                          kinds=["crack"])
        samples.append((clean, sample.image, sample.mask,
                        {(s, f): crack_probability(model, sample.image, ((s, 1.0),), flips=f)
                         for s, f in {(s, r.flips) for r in RULES.values() for s, _ in r.scales}}))
    truth_psnr = np.mean([ns_psnr(c, i, grow(t, 1)) for c, i, t, _ in samples])
    input_psnr = np.mean([ns_psnr(c, i, np.zeros_like(t)) for c, i, t, _ in samples])
    print(f"# Crack mask rules, {args.count} training photos, synth_print cracks, long side "
          f"{args.size}; SegNet threshold {threshold:.3f}\n")
    print(f"damaged input {input_psnr:.2f} dB; NS given the true mask grown 1 px "
          f"{truth_psnr:.2f} dB\n")
    print("| rule | P_d | P_fa | NS PSNR dB |\n|---|---|---|---|")
    for name, params in RULES.items():
        rates, psnrs = [], []
        for clean, image, truth, by_scale in samples:
            probability = np.max([w * by_scale[s, params.flips] for s, w in params.scales], axis=0)
            mask = crack_mask(probability, image, threshold, params)
            rates.append(detection_rates(mask, truth))
            psnrs.append(ns_psnr(clean, image, mask))
        p_fa, p_d = np.mean(rates, axis=0)
        print(f"| {name} | {p_d:.3f} | {p_fa:.4f} | {np.mean(psnrs):.2f} |")
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
