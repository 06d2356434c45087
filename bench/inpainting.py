#!/usr/bin/env python
"""Benchmark the learned inpainter against classical methods on held-out photos.

    python bench/inpainting.py [--data ../shared/data] [--faces 14] [--natural 10] [--seed 0]
                               [--square 48] [--large 6000x4000|none] [--figures DIR]

Photos (never used in training, see ``restorer.train.inpaint``): CelebA-HQ faces[14:] resized
to 512 px, and a seeded pick of ``--natural`` BSDS test photos[100:] (481 x 321). Each photo
gets three seeded mask families:

- **cracks**: thin cracks and scratches from ``restorer.synth.damage`` (1-5 px wide, light and
  dark, soft edges); the mask is the true one (coverage >= 0.3), the input is the cracked photo;
- **square**: the paper's fixed-size square hole (``--square`` px) at a seeded position;
- **irregular**: a held-out mask of ``masks/irregular`` (every fourth file, never trained on)
  with a 10-40 % hole, resized to the photo.

Methods: ``inpaint.gan`` (the shipped weights), the same network trained with L1 alone (the
ablation "without the critics", ``inpaint_gan_l1``), ``inpaint.ns``, ``inpaint.telea``,
``inpaint.biharmonic`` and ``inpaint.exemplar`` (Criminisi), each with its default options.

Printed as markdown: PSNR / SSIM / MSE over the whole photo and over the hole only (hole SSIM
= the SSIM map averaged over hole pixels), per photo group and mask family, plus seconds per
photo; then the seconds per megapixel of one large photo with thin cracks (a held-out face
upscaled to ``--large``, cracks drawn at that size) for the learned inpainter, Navier-Stokes
and Telea (biharmonic and exemplar are timed at photo size only). ``--figures DIR`` writes side-by-side
PNGs (zoomed on the holes) of scikit-image photos (licence-clean, not in training) for each
family.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from skimage import data as skdata  # noqa: E402
from skimage.metrics import structural_similarity  # noqa: E402

from classical import table, timed, to_float_rgb  # noqa: E402
from restorer import synth  # noqa: E402
from restorer.imaging import load_image, save_image, to_uint8  # noqa: E402
from restorer.ops import fit_long_side  # noqa: E402
from restorer.stages.base import Work  # noqa: E402
from restorer.stages.inpaint import (BiharmonicInpainter, NavierStokesInpainter,  # noqa: E402
                                     TeleaInpainter)
from restorer.stages.inpaint_exemplar import ExemplarInpainter  # noqa: E402
from restorer.stages.inpaint_gan import WEIGHT_ID, LearnedInpainter  # noqa: E402
from restorer.train.inpaint import heldout_masks, read_hole_mask  # noqa: E402
from restorer.weights import WeightStore, default_manifest_path, load_manifest  # noqa: E402

FAMILIES = ("cracks", "square", "irregular")
ABLATION_ID = "inpaint_gan_l1"
FIGURE_PHOTOS = ("astronaut", "coffee", "chelsea")
ZOOM = 192


def _quiet(fraction: float, message: str) -> None:
    """Progress callback that ignores progress."""


def methods(weights_dir: Path) -> list[tuple[str, object]]:
    """(label, stage) of every compared method; the learned ones from verified local files."""
    store = WeightStore(load_manifest(default_manifest_path()), bundled_dir=weights_dir,
                        offline=True)
    return [("gan", LearnedInpainter(store.resolve(WEIGHT_ID), device="cpu")),
            ("gan L1 only", LearnedInpainter(store.resolve(ABLATION_ID), device="cpu")),
            ("ns", NavierStokesInpainter()), ("telea", TeleaInpainter()),
            ("biharmonic", BiharmonicInpainter()), ("exemplar", ExemplarInpainter())]


def photos(data: Path, faces: int, natural: int, seed: int) -> list[tuple[str, str, np.ndarray]]:
    """(group, name, clean float32 (H, W, 3)) of the held-out photos."""
    clean = data / "clean"
    face_files = sorted((clean / "faces-celebahq").glob("*.jpg"))[14:][:faces]
    bsds = sorted((clean / "bsds-test").glob("*.jpg"))[100:]
    picks = sorted(np.random.default_rng(seed).choice(len(bsds), min(natural, len(bsds)),
                                                      replace=False))
    out = [("faces", p.name, fit_long_side(load_image(p), 512)) for p in face_files]
    out += [("natural", bsds[i].name, load_image(bsds[i])) for i in picks]
    if not out:
        raise SystemExit(f"no held-out photos under {clean}")
    return out


def irregular_pool(data: Path) -> list[np.ndarray]:
    """Held-out irregular masks (bool 512 x 512) with a 10-40 % hole."""
    masks = [read_hole_mask(p) for p in heldout_masks(data)]
    return [m for m in masks if 0.10 <= m.mean() <= 0.40]


def make_case(family: str, clean: np.ndarray, rng: np.random.Generator, square: int,
              pool: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(input image, bool mask) of one mask family for ``clean``."""
    height, width = clean.shape[:2]
    if family == "cracks":
        damaged = synth.damage(clean, rng)
        return damaged.image, damaged.mask
    if family == "square":
        mask = np.zeros((height, width), bool)
        y = int(rng.integers(0, height - square + 1))
        x = int(rng.integers(0, width - square + 1))
        mask[y:y + square, x:x + square] = True
    else:
        source = pool[int(rng.integers(len(pool)))]
        mask = cv2.resize(source.astype(np.uint8), (width, height),
                          interpolation=cv2.INTER_NEAREST).astype(bool)
    image = clean.copy()
    image[mask] = 1.0  # the holes' content is never used; white shows them in figures
    return image, mask


def scores(clean: np.ndarray, out: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """PSNR / SSIM / MSE over the whole photo and over the hole."""
    squared = (clean - out) ** 2
    ssim, ssim_map = structural_similarity(clean, out, channel_axis=2, data_range=1.0, full=True)
    mse, mse_hole = float(squared.mean()), float(squared[mask].mean())

    def psnr(value: float) -> float:
        return 10 * np.log10(1.0 / max(value, 1e-12))

    return {"psnr": psnr(mse), "ssim": float(ssim), "mse": mse, "psnr_hole": psnr(mse_hole),
            "ssim_hole": float(ssim_map.mean(axis=2)[mask].mean()), "mse_hole": mse_hole}


def run_quality(cases, stages):
    """Rows per (group, family, method) and seconds per photo per (family, method)."""
    results: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    for group, name, family, clean, image, mask in cases:
        for label, stage in stages:
            output, elapsed = timed(
                lambda: stage.run(Work(image, mask), stage.spec.defaults, _quiet))
            values = scores(clean, output.image, mask)
            values["seconds"] = elapsed
            for key in ((group, family, label), ("all", family, label)):
                results.setdefault(key, []).append(values)
    rows = []
    for (group, family, label), values in sorted(results.items(),
                                                 key=lambda kv: (FAMILIES.index(kv[0][1]),
                                                                 kv[0][0] != "faces", kv[0][0])):
        mean = {k: float(np.mean([v[k] for v in values])) for k in values[0]}
        rows.append([family, group, label, len(values), mean["psnr_hole"], mean["ssim_hole"],
                     mean["mse_hole"] * 1e3, mean["psnr"], mean["ssim"], mean["mse"] * 1e3,
                     mean["seconds"]])
    return rows


def run_large(clean: np.ndarray, shape: tuple[int, int], seed: int, stages):
    """Seconds and s/MP per method on ``clean`` upscaled to ``shape`` with thin cracks."""
    height, width = shape
    source = clean
    src_h, src_w = source.shape[:2]
    if src_w / src_h > width / height:
        crop = int(round(src_h * width / height))
        source = source[:, (src_w - crop) // 2:(src_w - crop) // 2 + crop]
    else:
        crop = int(round(src_w * height / width))
        source = source[(src_h - crop) // 2:(src_h - crop) // 2 + crop]
    big = np.clip(cv2.resize(source, (width, height), interpolation=cv2.INTER_CUBIC), 0, 1)
    damaged = synth.damage(big.astype(np.float32), np.random.default_rng([seed, 99]))
    megapixels = height * width / 1e6
    rows = []
    for label, stage in stages:
        output, elapsed = timed(lambda: stage.run(Work(damaged.image, damaged.mask),
                                                  stage.spec.defaults, _quiet))
        psnr = scores(big, output.image, damaged.mask)["psnr_hole"]
        rows.append([label, elapsed, elapsed / megapixels, psnr])
    return rows, megapixels, float(damaged.mask.mean())


def figures(out_dir: Path, stages, square: int, pool: list[np.ndarray], seed: int) -> list[Path]:
    """Side-by-side PNGs (input | methods... | truth) of scikit-image photos, one per family.

    Each panel is the ZOOM x ZOOM px window with the most hole pixels, enlarged 2x.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for index, name in enumerate(FIGURE_PHOTOS):
        clean = fit_long_side(to_float_rgb(getattr(skdata, name)()), 512)
        family = FAMILIES[index % len(FAMILIES)]
        image, mask = make_case(family, clean, np.random.default_rng([seed, 5, index]), square,
                                pool)
        panels = [image] + [stage.run(Work(image, mask), stage.spec.defaults,
                                      _quiet).image for _, stage in stages] + [clean]
        labels = ["input"] + [label for label, _ in stages] + ["truth"]
        # Zoom: the ZOOM px window with the most hole pixels, shown at twice its size.
        density = cv2.boxFilter(mask.astype(np.float32), -1, (ZOOM, ZOOM))
        cy, cx = np.unravel_index(int(np.argmax(density)), density.shape)
        y0 = int(np.clip(cy - ZOOM // 2, 0, clean.shape[0] - ZOOM))
        x0 = int(np.clip(cx - ZOOM // 2, 0, clean.shape[1] - ZOOM))
        tiles = []
        for panel, label in zip(panels, labels):
            tile = cv2.resize(to_uint8(panel[y0:y0 + ZOOM, x0:x0 + ZOOM]), None, fx=2, fy=2,
                              interpolation=cv2.INTER_NEAREST)
            cv2.putText(tile, label, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 3)
            cv2.putText(tile, label, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 80), 1)
            tiles.append(tile)
        rows = [np.concatenate(tiles[i:i + 4], axis=1) for i in range(0, len(tiles), 4)]
        rows[-1] = np.pad(rows[-1], ((0, 0), (0, rows[0].shape[1] - rows[-1].shape[1]), (0, 0)),
                          constant_values=255)
        path = out_dir / f"{name}-{family}.png"
        save_image(np.concatenate(rows, axis=0).astype(np.float32) / 255.0, path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data",
                        help="data folder holding clean/ and masks/ (default: ../shared/data)")
    parser.add_argument("--faces", type=int, default=14, help="held-out faces (at most 14)")
    parser.add_argument("--natural", type=int, default=10, help="held-out BSDS photos")
    parser.add_argument("--square", type=int, default=48, help="square hole side (px)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights-dir", type=Path, default=REPO / "weights")
    parser.add_argument("--large", default="6000x4000",
                        help="WxH of the large-photo timing run, or 'none'")
    parser.add_argument("--figures", type=Path, help="write side-by-side PNGs here")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    stages = methods(args.weights_dir)
    pool = irregular_pool(args.data)
    cases = []
    for index, (group, name, clean) in enumerate(photos(args.data, args.faces, args.natural,
                                                        args.seed)):
        for family_index, family in enumerate(FAMILIES):
            rng = np.random.default_rng([args.seed, index, family_index])
            image, mask = make_case(family, clean, rng, args.square, pool)
            cases.append((group, name, family, clean, image, mask))
    count = len(cases) // len(FAMILIES)
    print(f"# Inpainting: {count} held-out photos x {len(FAMILIES)} mask families, seed "
          f"{args.seed}, square {args.square} px, {len(pool)} held-out irregular masks\n")
    print("Hole = masked pixels only; MSE x 1e3; s = seconds per photo on this machine.\n")
    print(table(["mask", "photos", "method", "n", "PSNR hole", "SSIM hole", "MSE hole",
                 "PSNR", "SSIM", "MSE", "s"], run_quality(cases, stages)))
    if args.large.lower() != "none":
        width, height = (int(v) for v in args.large.lower().split("x"))
        fast = [(label, stage) for label, stage in stages
                if label not in ("biharmonic", "exemplar", "gan L1 only")]
        rows, megapixels, fraction = run_large(cases[0][3], (height, width), args.seed, fast)
        print(f"\n## Full-resolution photo with thin cracks ({cases[0][1]} upscaled to "
              f"{width}x{height}, {megapixels:.1f} MP, {fraction:.2%} masked)\n")
        print(table(["method", "seconds", "s/MP", "PSNR hole"], rows))
    if args.figures:
        for path in figures(args.figures, stages, args.square, pool, args.seed):
            print(f"wrote {path}")
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
