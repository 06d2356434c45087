"""Tone restoration methods against each other on faded clean photos, in one run.

Each photo of ``--data``/clean/<sets> is faded by restorer.synth_tone.random_fade (seeded by its
index); every method restores it and is scored against the unfaded photo: mean CIEDE2000
(skimage.color.deltaE_ciede2000), PSNR and SSIM. The fade measure's error is the absolute error
of its estimated contrast lost on levels-only fades, and its detection rate (probability > 0.5)
on faded and on the clean photos. Prints one markdown table.

    python bench/tone.py --data ../shared/data --sets kodak24 bsds-test --limit 40
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from restorer.fade import measure_fade
from restorer.imaging import load_image
from restorer.stages.tone_restore import METHODS, restore_tone
from restorer.synth_tone import random_fade


def _scores(restored: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    delta = float(deltaE_ciede2000(rgb2lab(truth), rgb2lab(restored)).mean())
    psnr = float(peak_signal_noise_ratio(truth, restored, data_range=1.0))
    ssim = float(structural_similarity(truth, restored, channel_axis=2, data_range=1.0))
    return delta, psnr, ssim


def main() -> None:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[1] / "../shared/data")
    parser.add_argument("--sets", nargs="+", default=["kodak24", "bsds-test"])
    parser.add_argument("--limit", type=int, default=40, help="photos per set")
    args = parser.parse_args()
    files = [f for s in args.sets
             for f in sorted((args.data / "clean" / s).iterdir())[:args.limit]]
    rows: dict[str, list[tuple[float, float, float]]] = {m: [] for m in ("faded", *METHODS)}
    seconds = {m: 0.0 for m in METHODS}
    fade_error, flagged_faded, flagged_clean = [], [], []
    for index, path in enumerate(files):
        truth = load_image(path)
        faded = random_fade(truth, index)
        rows["faded"].append(_scores(faded.image, truth))
        for method in METHODS:
            began = time.perf_counter()
            restored = restore_tone(faded.image, method=method)
            seconds[method] += time.perf_counter() - began
            rows[method].append(_scores(restored, truth))
        clean = measure_fade(truth)
        levels = random_fade(truth, index, cast=False)
        span = levels.truth.white - levels.truth.black
        expected = 1.0 - span * (1.0 - clean.contrast_lost)
        fade_error.append(abs(measure_fade(levels.image).contrast_lost - expected))
        flagged_faded.append(measure_fade(faded.image).probability > 0.5)
        flagged_clean.append(clean.probability > 0.5)
    print(f"{len(files)} photos ({', '.join(args.sets)}), faded by random_fade(seed = index)\n")
    print("| method | CIEDE2000 | PSNR dB | SSIM | ms / photo |")
    print("|---|---|---|---|---|")
    for method, values in rows.items():
        d, p, s = np.mean(values, axis=0)
        ms = f"{1000 * seconds[method] / len(files):.0f}" if method in seconds else "-"
        print(f"| {method} | {d:.2f} | {p:.2f} | {s:.3f} | {ms} |")
    print(f"\nfade measure: contrast-lost error {np.mean(fade_error):.3f} mean, "
          f"{np.max(fade_error):.3f} max; flagged faded {np.mean(flagged_faded):.2f}, "
          f"flagged clean {np.mean(flagged_clean):.2f}")


if __name__ == "__main__":
    main()
