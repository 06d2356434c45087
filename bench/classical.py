#!/usr/bin/env python
"""Benchmark restorer's classical stages on seeded synthetic damage.

    python bench/classical.py [--data ../shared/data] [--count N] [--size 640] [--seed 0]

Clean photos (from the data folder, plus scikit-image's bundled photos) get seeded synthetic
cracks (``restorer.synth.damage``) and, separately, seeded blur. Every classical method runs
in this one process and the results print as markdown tables:

(a) detection: IoU / precision / recall against the true crack mask, the fraction of a CLEAN
    photo flagged (false alarms), seconds per megapixel;
(b) inpainting PSNR / SSIM per method with the true mask and with the detected mask, next to
    the damaged input's own PSNR / SSIM;
(c) deblur: PSNR / SSIM of the blurred and the deblurred photo, true blur vs estimated sigma;
(d) seconds per megapixel per stage, on the benchmark set and on one large photo (upscaled
    to ``--large``, cracked at that resolution) so the per-megapixel figures mean something.

The detector was tuned on kodak24, faces-celebahq[:14] and bsds-test[:100]; by default
(``--split heldout``) the data-folder photos are drawn from the rest (bsds-test[100:],
faces-celebahq[14:]), so the detection numbers are held out. ``--split all`` draws from every
clean folder. Metrics are skimage.metrics on float images in [0, 1].
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from skimage import data as skdata  # noqa: E402
from skimage.metrics import peak_signal_noise_ratio, structural_similarity  # noqa: E402

from restorer import synth  # noqa: E402
from restorer.imaging import load_image  # noqa: E402
from restorer.ops import fit_long_side  # noqa: E402
from restorer.stages.base import Work  # noqa: E402
from restorer.stages.deblur import RichardsonLucyDeblur  # noqa: E402
from restorer.stages.detect import MorphologicalDetector  # noqa: E402
from restorer.stages.inpaint import (BiharmonicInpainter, NavierStokesInpainter,  # noqa: E402
                                     TeleaInpainter)

SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "camera", "rocket")
#: (folder, slice) of the clean data folder per split; see the module docstring.
SPLITS = {
    "heldout": (("bsds-test", slice(100, None)), ("faces-celebahq", slice(14, None))),
    "all": (("kodak24", slice(None)), ("bsds-test", slice(None)),
            ("faces-celebahq", slice(None))),
}
BLUR_KINDS = ("gaussian", "defocus", "motion")
INPAINTERS = (("ns", NavierStokesInpainter()), ("telea", TeleaInpainter()),
              ("biharmonic", BiharmonicInpainter()))


def _quiet(fraction: float, message: str) -> None:
    """Progress callback that ignores progress."""


@dataclass
class Photo:
    name: str
    group: str
    clean: np.ndarray


def to_float_rgb(array: np.ndarray) -> np.ndarray:
    """skimage photo (uint8, grey or RGB) -> float32 (H, W, 3) in [0, 1]."""
    image = array.astype(np.float32) / 255.0
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def collect_photos(data: Path, split: str, count: int, size: int, seed: int) -> list[Photo]:
    """``count`` seeded picks from the data folder's clean photos, then the skimage photos."""
    candidates: list[tuple[str, Path]] = []
    clean_root = data / "clean"
    for folder, part in SPLITS[split]:
        files = sorted(p for p in (clean_root / folder).glob("*")
                       if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif"))
        candidates += [(folder, p) for p in files[part]]
    photos = []
    if candidates and count > 0:
        rng = np.random.default_rng(seed)
        picks = rng.choice(len(candidates), size=min(count, len(candidates)), replace=False)
        for index in sorted(picks):
            folder, path = candidates[index]
            photos.append(Photo(f"{folder}/{path.name}", folder, fit_long_side(load_image(path), size)))
    elif count > 0:
        print(f"note: no clean photos under {clean_root}; using scikit-image photos only\n")
    for name in SKIMAGE_PHOTOS:
        photos.append(Photo(f"skimage/{name}", "skimage",
                            fit_long_side(to_float_rgb(getattr(skdata, name)()), size)))
    return photos


def timed(function: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def quality(clean: np.ndarray, image: np.ndarray) -> tuple[float, float]:
    """PSNR (dB) and SSIM of float (H, W, 3) ``image`` against ``clean``."""
    psnr = peak_signal_noise_ratio(clean, image, data_range=1.0)
    ssim = structural_similarity(clean, image, channel_axis=2, data_range=1.0)
    return float(psnr), float(ssim)


def mask_scores(mask: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """IoU, precision, recall of bool ``mask`` against bool ``truth``."""
    inter = float(np.logical_and(mask, truth).sum())
    union = float(np.logical_or(mask, truth).sum())
    iou = inter / union if union else 1.0
    precision = inter / mask.sum() if mask.any() else (1.0 if not truth.any() else 0.0)
    recall = inter / truth.sum() if truth.any() else 1.0
    return iou, float(precision), float(recall)


def table(header: list[str], rows: list[list[object]]) -> str:
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def run_detection(photos, cracked, detector_options):
    """Table (a) rows and the detected masks (default options) per photo."""
    detector = MorphologicalDetector()
    variants = [("default", dict(detector_options)),
                ("dilate=1", dict(detector_options, dilate=1))]
    masks, rows, timing = [], [], {}
    for label, options in variants:
        per_group: dict[str, list[tuple[float, ...]]] = {}
        seconds = megapixels = 0.0
        for index, (photo, damaged) in enumerate(zip(photos, cracked)):
            output, elapsed = timed(lambda: detector.run(Work(damaged.image), options, _quiet))
            seconds += elapsed
            megapixels += damaged.image.shape[0] * damaged.image.shape[1] / 1e6
            mask = output.mask
            if label == "default":
                masks.append(mask)
            clean_mask = detector.run(Work(photo.clean), options, _quiet).mask
            scores = mask_scores(mask, damaged.mask) + (float(clean_mask.mean()),)
            per_group.setdefault(photo.group, []).append(scores)
            per_group.setdefault("all", []).append(scores)
        timing[label] = seconds / megapixels
        for group, values in per_group.items():
            v = np.array(values)
            rows.append([label, group, len(values), v[:, 0].mean(), v[:, 1].mean(),
                         v[:, 2].mean(), v[:, 3].mean(), v[:, 3].max(),
                         timing[label] if group == "all" else ""])
    return rows, masks, timing["default"]


def run_inpainting(photos, cracked, detected):
    """Table (b) rows and seconds per megapixel per method (detected mask)."""
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    seconds: dict[str, float] = {}
    megapixels = sum(p.clean.shape[0] * p.clean.shape[1] for p in photos) / 1e6
    damaged_scores = [quality(p.clean, d.image) for p, d in zip(photos, cracked)]
    for method, stage in INPAINTERS:
        options = stage.spec.defaults
        seconds[method] = 0.0
        for photo, damaged, mask in zip(photos, cracked, detected):
            true_grown = cv2.dilate(damaged.mask.astype(np.uint8), grow).astype(bool)
            for mask_name, use in (("true", damaged.mask), ("true+1px", true_grown),
                                   ("detected", mask)):
                output, elapsed = timed(
                    lambda: stage.run(Work(damaged.image, use), options, _quiet))
                if mask_name == "detected":
                    seconds[method] += elapsed
                results.setdefault((method, mask_name), []).append(
                    quality(photo.clean, output.image))
    rows = [["(damaged input)", "-", mean([s[0] for s in damaged_scores]),
             mean([s[1] for s in damaged_scores])]]
    for (method, mask_name), values in results.items():
        rows.append([method, mask_name, mean([v[0] for v in values]),
                     mean([v[1] for v in values])])
    return rows, {m: s / megapixels for m, s in seconds.items()}


def run_deblur(photos, seed):
    """Table (c) rows and deblur seconds per megapixel."""
    stage = RichardsonLucyDeblur()
    options = stage.spec.defaults
    per_kind: dict[str, list[tuple[float, ...]]] = {}
    seconds = megapixels = 0.0
    for index, photo in enumerate(photos):
        rng = np.random.default_rng([seed, 7, index])
        kind = BLUR_KINDS[index % len(BLUR_KINDS)]
        strength = float(rng.uniform(1.5, 3.5))
        blurred = synth.blur(photo.clean, rng, kind=kind, strength=strength)
        output, elapsed = timed(lambda: stage.run(Work(blurred), options, _quiet))
        seconds += elapsed
        megapixels += blurred.shape[0] * blurred.shape[1] / 1e6
        before = quality(photo.clean, blurred)
        after = quality(photo.clean, output.image)
        per_kind.setdefault(kind, []).append(
            (strength, float(output.info["sigma"])) + before + after)
    sharp = [float(stage.run(Work(p.clean), options, _quiet).info["sigma"]) for p in photos]
    rows = []
    for kind in BLUR_KINDS:
        v = np.array(per_kind.get(kind, []))
        if len(v):
            rows.append([kind, len(v), v[:, 0].mean(), v[:, 1].mean(), v[:, 2].mean(),
                         v[:, 4].mean(), v[:, 3].mean(), v[:, 5].mean()])
    rows.append(["none (sharp photo)", len(sharp), 0.0, mean(sharp), "", "", "", ""])
    return rows, seconds / megapixels


def run_large(photo: Photo, shape: tuple[int, int], seed: int, detector_options):
    """Seconds per stage on one large photo: ``photo`` upscaled to ``shape`` (H, W)."""
    height, width = shape
    source = photo.clean
    # Crop to the target aspect ratio, then upscale (cubic) to full size.
    src_h, src_w = source.shape[:2]
    aspect = width / height
    if src_w / src_h > aspect:
        crop_w = int(round(src_h * aspect))
        x0 = (src_w - crop_w) // 2
        source = source[:, x0:x0 + crop_w]
    else:
        crop_h = int(round(src_w / aspect))
        y0 = (src_h - crop_h) // 2
        source = source[y0:y0 + crop_h]
    clean = np.clip(cv2.resize(source, (width, height), interpolation=cv2.INTER_CUBIC), 0, 1)
    clean = clean.astype(np.float32)
    rng = np.random.default_rng([seed, 99])
    # Cracks scaled with the resolution (a 1-5 px crack at 640 px is 5-23 px here).
    factor = max(height, width) / 640.0
    damaged = synth.damage(clean, rng, cracks=True, crack_width=(1.0 * factor, 5.0 * factor))
    megapixels = height * width / 1e6
    rows = []
    detector = MorphologicalDetector()
    output, elapsed = timed(lambda: detector.run(Work(damaged.image), detector_options, _quiet))
    iou, precision, recall = mask_scores(output.mask, damaged.mask)
    rows.append(["detect.morph", elapsed, elapsed / megapixels,
                 f"IoU {iou:.3f}, P {precision:.3f}, R {recall:.3f}"])
    mask = output.mask
    for method, stage in INPAINTERS:
        result, elapsed = timed(
            lambda: stage.run(Work(damaged.image, mask), stage.spec.defaults, _quiet))
        psnr, ssim = quality(clean, result.image)
        rows.append([f"inpaint.{method}", elapsed, elapsed / megapixels,
                     f"PSNR {psnr:.2f} dB, SSIM {ssim:.3f} (detected mask)"])
    blurred = synth.blur(clean, rng, kind="gaussian", strength=2.0 * factor / 2.0)
    deblur = RichardsonLucyDeblur()
    result, elapsed = timed(lambda: deblur.run(Work(blurred), deblur.spec.defaults, _quiet))
    rows.append(["deblur.rl", elapsed, elapsed / megapixels,
                 f"sigma true {2.0 * factor / 2.0:.2f}, estimated {result.info['sigma']:.2f}"])
    return rows, megapixels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data",
                        help="data folder holding clean/ (default: ../shared/data)")
    parser.add_argument("--count", type=int, default=20,
                        help="photos drawn from the data folder (default 20); the "
                             f"{len(SKIMAGE_PHOTOS)} scikit-image photos are always added")
    parser.add_argument("--size", type=int, default=640, help="long side of each photo (px)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=sorted(SPLITS), default="heldout",
                        help="which data-folder photos may be drawn (default: held out from "
                             "the detector's tuning)")
    parser.add_argument("--large", default="3000x2000",
                        help="WxH of the large-photo timing run, or 'none' (default 3000x2000)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    photos = collect_photos(args.data, args.split, args.count, args.size, args.seed)
    cracked = [synth.damage(p.clean, np.random.default_rng([args.seed, i]), cracks=True)
               for i, p in enumerate(photos)]
    detector_options = MorphologicalDetector.spec.defaults
    groups = sorted({p.group for p in photos})
    print(f"# Classical stages: {len(photos)} photos ({', '.join(groups)}), long side "
          f"{args.size} px, seed {args.seed}, split {args.split}\n")

    rows, detected, detect_speed = run_detection(photos, cracked, detector_options)
    print("## (a) Crack detection (detect.morph) on synthetic cracks\n")
    print("FP clean = fraction of the clean photo flagged (mean, max).\n")
    print(table(["options", "photos", "n", "IoU", "precision", "recall", "FP clean",
                 "FP clean max", "s/MP"], rows))

    inpaint_rows, inpaint_speed = run_inpainting(photos, cracked, detected)
    print("\n## (b) Inpainting (whole-photo PSNR / SSIM against the clean photo)\n")
    print("true = the synthetic truth (crack coverage >= 0.3), true+1px = grown by one pixel, "
          "detected = detect.morph's mask.\n")
    print(table(["method", "mask", "PSNR (dB)", "SSIM"], inpaint_rows))

    deblur_rows, deblur_speed = run_deblur(photos, args.seed)
    print("\n## (c) Deblur (deblur.rl) on synthetic blur\n")
    print("strength = Gaussian sigma, defocus radius or motion half-length (px).\n")
    print(table(["blur", "n", "strength", "sigma est.", "PSNR blurred", "PSNR deblurred",
                 "SSIM blurred", "SSIM deblurred"], deblur_rows))

    print("\n## (d) Speed (seconds per megapixel, this machine)\n")
    speed_rows = [["detect.morph", detect_speed]]
    speed_rows += [[f"inpaint.{m}", s] for m, s in inpaint_speed.items()]
    speed_rows.append(["deblur.rl", deblur_speed])
    print(f"At {args.size} px (mean over the set; inpainting with the detected mask):\n")
    print(table(["stage", "s/MP"], speed_rows))
    if args.large.lower() != "none":
        width, height = (int(v) for v in args.large.lower().split("x"))
        large_rows, megapixels = run_large(photos[0], (height, width), args.seed,
                                           detector_options)
        print(f"\nOne large photo ({photos[0].name} upscaled to {width}x{height}, "
              f"{megapixels:.1f} MP, cracks drawn at that size):\n")
        print(table(["stage", "seconds", "s/MP", "result"], large_rows))
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
