#!/usr/bin/env python
"""The published learned stages against the classical ones, in one run.

    python bench/pretrained.py [--data ../shared/data] [--count 2] [--device cpu|cuda|auto]
                               [--weights-dir DIR] [--sizes 512,1024] [--nafnet-sizes 512,1024]
                               [--side PX] [--threads 2] [--skip a,b,c,d]

Photos: the first ``--count`` of ``clean/kodak24`` and of ``clean/bsds-test``. Each gets
synthetic cracks (``restorer.synth.damage``, the true mask) and an irregular hole (a held-out
``masks/irregular`` file resized to the photo), and a Gaussian blur (sigma 2).

Tables (markdown): (a) inpainting: cv2 Navier-Stokes and Telea against ``inpaint.lama`` (its
defaults: regions up to 5 px wide to Telea, wider ones to LaMa) and LaMa on every region
(``classical_width=0``): hole PSNR / SSIM and seconds per megapixel; (b) deblurring:
``deblur.rl`` against ``deblur.nafnet``: PSNR / SSIM / s/MP; (c) detection: ``detect.segnet``
against ``detect.scratch`` (union with segnet): s/MP; (d) cost of one network pass: Big-LaMa at
each ``--sizes`` working size, NAFNet at 512 x 512 and 1024 x 1024, the scratch U-Net at 1 MP:
seconds, seconds per megapixel and peak memory (the process's resident set on the CPU, above
what it held before the pass; torch's peak allocation on CUDA).

Weights: each published file is taken from ``--weights-dir`` (its manifest local name) or the
Hugging Face cache (as a Space's ``preload_from_hub`` leaves it), verified against the
manifest's sha256. Where a file is absent (or, like the scratch detector's, has no recorded
hash yet) a random-initialised network of the same architecture stands in: its speed and
memory are the real model's, its quality is meaningless, and the quality columns say so.
LPIPS is not computed: its backbone weights (AlexNet / VGG from torchvision) cannot be had
offline here.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from skimage.metrics import peak_signal_noise_ratio, structural_similarity  # noqa: E402

from classical import table  # noqa: E402
from restorer import synth  # noqa: E402
from restorer.errors import RestorerError  # noqa: E402
from restorer.backends import return_large_blocks_to_the_system  # noqa: E402
from restorer.imaging import load_image  # noqa: E402
from restorer.ops import fit_long_side  # noqa: E402
from restorer.stages.base import Work  # noqa: E402
from restorer.stages.deblur import RichardsonLucyDeblur  # noqa: E402
from restorer.stages.inpaint import NavierStokesInpainter, TeleaInpainter  # noqa: E402
from restorer.train.inpaint import heldout_masks, read_hole_mask  # noqa: E402
from restorer.weights import WeightStore, default_manifest_path, load_manifest  # noqa: E402

SEGNET = REPO / "weights" / "detector_segnet.safetensors"
NO_QUALITY = "stand-in"


def quiet(fraction: float, text: str) -> None:
    """A progress callback that ignores its reports."""


# ------------------------------------------------------------------------------------ memory
class PeakMemory:
    """Peak memory of a block: resident set sampled every 5 ms on the CPU (above the level at
    entry), torch's peak allocation on CUDA. ``mb`` after the block."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.mb = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return self
        self._base = _rss()
        self._peak = self._base
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, _rss())

    def __exit__(self, *exc: object) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            self.mb = (torch.cuda.max_memory_allocated() - self._base) / 1e6
            return
        self._stop.set()
        self._thread.join()
        self.mb = (max(self._peak, _rss()) - self._base) / 1e6


def _trim() -> None:
    """Give freed heap back to the system, so a pass's peak is measured from a low level."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss() -> int:
    """This process's resident set in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ----------------------------------------------------------------------------------- weights
@dataclass(frozen=True)
class Weights:
    """A model file for a stage and whether it is the published one (else a stand-in)."""

    path: Path
    real: bool


def find_weights(weight_id: str, weights_dir: Path | None) -> Path | None:
    """The verified published file of ``weight_id`` (``weights_dir`` or the Hub cache), or
    None when it is not here or not verifiable."""
    store = WeightStore(load_manifest(default_manifest_path()), offline=True,
                        bundled_dir=weights_dir or default_manifest_path().parent)
    try:
        return store.resolve(weight_id, download=False)
    except RestorerError:
        return None


def standin(weight_id: str, folder: Path) -> Path:
    """A random-initialised network of the published file's architecture, in its format."""
    import torch

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        if weight_id == "big_lama":
            from spandrel.architectures.LaMa import LaMa

            path = folder / "big-lama.pth"
            torch.save(LaMa(in_nc=4).state_dict(), path)
        elif weight_id == "nafnet_gopro_w64":
            from spandrel.architectures.NAFNet import NAFNet

            path = folder / "NAFNet-GoPro-width64.pth"
            model = NAFNet(img_channel=3, width=64, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 28],
                           dec_blk_nums=[1, 1, 1, 1])
            torch.save({"params": model.state_dict()}, path)
        else:
            from restorer.nets.bopbtl_unet import ScratchUNet

            path = folder / "FT_Epoch_latest.pt"
            torch.save({"model_state": ScratchUNet().state_dict()}, path)
    return path


def weights_for(weight_id: str, weights_dir: Path | None, folder: Path) -> Weights:
    """The published file when here, else a stand-in written to ``folder``."""
    found = find_weights(weight_id, weights_dir)
    return Weights(found, True) if found is not None else Weights(standin(weight_id, folder), False)


# ------------------------------------------------------------------------------------ photos
def photos(data: Path, count: int, side: int | None) -> list[tuple[str, np.ndarray]]:
    """The first ``count`` photos of kodak24 and of bsds-test, float32 RGB, shrunk to a long
    side of ``side`` px (None: as they are)."""
    out = []
    for group in ("kodak24", "bsds-test"):
        files = sorted((data / "clean" / group).glob("*.*"))[:count]
        if not files:
            raise SystemExit(f"no photos in {data / 'clean' / group}")
        for file in files:
            image = load_image(file)
            if side is not None:
                image = fit_long_side(image, side)
            out.append((f"{group}/{file.stem}", image))
    return out


def hole_mask(data: Path, index: int, shape: tuple[int, int]) -> np.ndarray:
    """A held-out irregular mask (cycled by ``index``) resized to ``shape``, True = hole."""
    files = heldout_masks(data)
    if not files:
        raise SystemExit(f"no irregular masks under {data / 'masks' / 'irregular'}")
    mask = read_hole_mask(files[index % len(files)]).astype(np.uint8)
    return cv2.resize(mask, shape[::-1], interpolation=cv2.INTER_NEAREST) > 0


def scores(clean: np.ndarray, image: np.ndarray, where: np.ndarray | None) -> tuple[float, float]:
    """PSNR (dB) and SSIM of ``image`` against ``clean``, over ``where`` (None: everywhere)."""
    if where is None:
        return (float(peak_signal_noise_ratio(clean, image, data_range=1.0)),
                float(structural_similarity(clean, image, channel_axis=2, data_range=1.0)))
    error = float(np.mean((clean[where] - image[where]) ** 2))
    _, ssim_map = structural_similarity(clean, image, channel_axis=2, data_range=1.0, full=True)
    return 10 * np.log10(1.0 / max(error, 1e-12)), float(ssim_map.mean(axis=2)[where].mean())


def timed(function: Callable[[], Any]) -> tuple[Any, float]:
    began = time.perf_counter()
    out = function()
    return out, time.perf_counter() - began


# ------------------------------------------------------------------------------------ tables
def quality_cell(value: float, real: bool) -> Any:
    return value if real else NO_QUALITY


def inpainting_table(shots, data: Path, lama, real: bool) -> str:
    """Table (a)."""
    methods: list[tuple[str, Callable[[Work], Any], bool]] = [
        ("cv2 Navier-Stokes", lambda w: NavierStokesInpainter().run(w, {"radius": 3}, quiet), True),
        ("cv2 Telea", lambda w: TeleaInpainter().run(w, {"radius": 3}, quiet), True),
        ("inpaint.lama (thin to Telea)", lambda w: lama.run(w, _lama_options(lama, {}), quiet), real),
        ("LaMa on every region", lambda w: lama.run(
            w, _lama_options(lama, {"classical_width": 0}), quiet), real),
    ]
    rows = []
    for family in ("cracks", "irregular"):
        cases = []
        for index, (name, clean) in enumerate(shots):
            if family == "cracks":
                damaged = synth.damage(clean, np.random.default_rng(index))
                cases.append((clean, damaged.image, damaged.mask))
            else:
                mask = hole_mask(data, index, clean.shape[:2])
                cases.append((clean, np.where(mask[..., None], 1.0, clean).astype(np.float32), mask))
        for label, run, has_quality in methods:
            psnrs, ssims, seconds, megapixels = [], [], 0.0, 0.0
            for clean, damaged, mask in cases:
                output, elapsed = timed(lambda: run(Work(image=damaged, mask=mask)))
                p, s = scores(clean, output.image, mask)
                psnrs.append(p)
                ssims.append(s)
                seconds += elapsed
                megapixels += clean.shape[0] * clean.shape[1] / 1e6
            rows.append([family, label, quality_cell(float(np.mean(psnrs)), has_quality),
                         quality_cell(float(np.mean(ssims)), has_quality),
                         seconds / megapixels])
    return table(["mask", "method", "hole PSNR dB", "hole SSIM", "s/MP"], rows)


def _lama_options(stage: Any, given: dict[str, Any]) -> dict[str, Any]:
    return stage.spec.resolve_options(given)


def deblur_table(shots, nafnet, real: bool) -> str:
    """Table (b)."""
    rl = RichardsonLucyDeblur()
    methods = [("deblur.rl", lambda w: rl.run(w, rl.spec.resolve_options({}), quiet), True),
               ("deblur.nafnet", lambda w: nafnet.run(w, nafnet.spec.resolve_options({}), quiet),
                real)]
    blurred = [(clean, synth.blur(clean, np.random.default_rng(i), kind="gaussian", strength=2.0))
               for i, (_, clean) in enumerate(shots)]
    rows = [["(blurred input)", float(np.mean([scores(c, b, None)[0] for c, b in blurred])),
             float(np.mean([scores(c, b, None)[1] for c, b in blurred])), "-"]]
    for label, run, has_quality in methods:
        psnrs, ssims, seconds, megapixels = [], [], 0.0, 0.0
        for clean, image in blurred:
            output, elapsed = timed(lambda: run(Work(image=image)))
            p, s = scores(clean, output.image, None)
            psnrs.append(p)
            ssims.append(s)
            seconds += elapsed
            megapixels += clean.shape[0] * clean.shape[1] / 1e6
        rows.append([label, quality_cell(float(np.mean(psnrs)), has_quality),
                     quality_cell(float(np.mean(ssims)), has_quality), seconds / megapixels])
    return table(["method (Gaussian blur, sigma 2)", "PSNR dB", "SSIM", "s/MP"], rows)


def detection_table(shots, scratch) -> str:
    """Table (c): seconds per megapixel (quality needs real damage with true masks)."""
    from restorer.stages.detect_learned import SegmentationDetector

    segnet = SegmentationDetector(SEGNET)
    methods = [("detect.segnet", lambda w: segnet.run(w, segnet.spec.resolve_options({}), quiet)),
               ("detect.scratch (+ segnet)",
                lambda w: scratch.run(w, scratch.spec.resolve_options({}), quiet))]
    rows = []
    for label, run in methods:
        seconds = megapixels = 0.0
        for index, (_, clean) in enumerate(shots):
            image = synth.damage(clean, np.random.default_rng(index)).image
            _, elapsed = timed(lambda: run(Work(image=image)))
            seconds += elapsed
            megapixels += clean.shape[0] * clean.shape[1] / 1e6
        rows.append([label, seconds / megapixels])
    return table(["detector", "s/MP"], rows)


def pass_table(device: str, lama, nafnet, scratch, sizes: list[int],
               nafnet_sizes: list[int]) -> str:
    """Table (d): one network pass through each stage's public entry, after a warm-up."""
    rng = np.random.default_rng(0)

    def lama_pass(image: np.ndarray) -> str:
        holes = rng.random(image.shape[:2]) > 0.8
        _, info = lama.fill(image, holes, max(image.shape[:2]))
        return f"{info.device} {info.precision} tiles={info.tiles}"

    def nafnet_pass(image: np.ndarray) -> str:
        info = nafnet.run(Work(image=image), nafnet.spec.resolve_options({}), quiet).info
        return f"{info['device']} {info['precision']} tiles={info['tiles']}"

    def scratch_pass(image: np.ndarray) -> str:
        _, info = scratch.probability(image, image.shape[0] * image.shape[1] / 1e6)
        return f"{info.device} {info.precision} tiles={info.tiles}"

    cases = [(f"Big-LaMa pass {side} x {side}", side, lama_pass) for side in sizes]
    cases += [(f"NAFNet-width64 {side} x {side}", side, nafnet_pass) for side in nafnet_sizes]
    cases.append(("BOPBTL scratch U-Net 1024 x 1024", 1024, scratch_pass))
    rows = []
    for label, side, run in cases:
        image = rng.random((side, side, 3), dtype=np.float32)
        run(image[:64, :64].copy())  # warm-up: first-call costs (allocator, kernels) not counted
        _trim()
        with PeakMemory(device) as memory:
            ran, seconds = timed(lambda: run(image))
        rows.append([label, seconds, seconds / (side * side / 1e6), memory.mb, ran])
    return table(["network pass", "seconds", "s/MP", "peak memory MB (above before)", "ran as"],
                 rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--count", type=int, default=2, help="photos of each set (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="folder holding the published files under their manifest names "
                             "(default: the Hugging Face cache)")
    parser.add_argument("--sizes", default="512,1024", help="LaMa working sizes (px) in (d)")
    parser.add_argument("--nafnet-sizes", default="512,1024", help="NAFNet photo sides in (d)")
    parser.add_argument("--side", type=int, default=None,
                        help="shrink the photos of (a)-(c) to this long side (default: as they are)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--skip", default="", help="comma list of tables to skip: a,b,c,d")
    args = parser.parse_args(argv)
    return_large_blocks_to_the_system()  # big blocks are unmapped when freed: RSS peaks are real

    import torch

    torch.set_num_threads(args.threads)
    from restorer.stages.deblur_nafnet import NafnetDeblur
    from restorer.stages.detect_scratch import ScratchDetector
    from restorer.stages.inpaint_lama import LamaInpainter

    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory(prefix="restorer-bench-") as tmp:
        folder = Path(tmp)
        found = {w: weights_for(w, args.weights_dir, folder)
                 for w in ("big_lama", "nafnet_gopro_w64", "bopbtl_scratch")}
        lama = LamaInpainter(found["big_lama"].path, device=args.device)
        nafnet = NafnetDeblur(found["nafnet_gopro_w64"].path, device=args.device)
        scratch = ScratchDetector(found["bopbtl_scratch"].path, SEGNET, device=args.device)
        print(f"device {lama.device}, torch threads {torch.get_num_threads()}, "
              f"{os.cpu_count()} CPUs")
        for weight_id, weights in found.items():
            kind = "published file" if weights.real else ("stand-in (random-initialised, same "
                                                         "architecture): speed and memory only")
            print(f"- {weight_id}: {kind}")
        print("LPIPS: not computed (its AlexNet/VGG backbone weights are not available here).\n")
        shots = photos(args.data, args.count, args.side)
        if "a" not in skip:
            print("(a) inpainting, hole only\n")
            print(inpainting_table(shots, args.data, lama, found["big_lama"].real) + "\n")
        if "b" not in skip:
            print("(b) deblurring, whole photo\n")
            print(deblur_table(shots, nafnet, found["nafnet_gopro_w64"].real) + "\n")
        if "c" not in skip:
            print("(c) detection, synthetic cracks\n")
            print(detection_table(shots, scratch) + "\n")
        if "d" not in skip:
            print("(d) one network pass\n")
            print(pass_table(args.device, lama, nafnet, scratch, _ints(args.sizes),
                             _ints(args.nafnet_sizes)))


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


if __name__ == "__main__":
    main()
