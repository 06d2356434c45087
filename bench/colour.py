#!/usr/bin/env python
"""Speed and memory of colour.ddcolor, with a stand-in of DDColor-T (random weights).

    python bench/colour.py [--sizes 256,512] [--photo 1024x768] [--repeats 2] [--threads 2]

The stand-in has the architecture of ddcolor_paper_tiny.pth (ConvNeXt-T, 100 queries, spectral
norm, 2 outputs; about 55 M parameters, 220 MB), so time and memory are those of the real file;
the colours are random and say nothing of quality (that needs the published file). Each
working size runs in its own process (peak RSS is that process's: loading, one warm-up run,
then ``--repeats`` timed runs on a grey photo of ``--photo`` px). The "join only" row is the
stage's work around the network (L* at full size, chroma upsampled, gamut-safe join) with the
network's output replaced by zeros, measured in the same way: what the full-resolution part
costs by itself. The stand-in is made in a child process too (Linux children inherit the
parent's peak RSS, which would otherwise hide theirs).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.standins import write_ddcolor  # noqa: E402  (random DDColor-T, the test's stand-in)


def photo(width: int, height: int) -> np.ndarray:
    """A grey float32 (H, W, 3) photo with gradients and texture."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    value = 0.3 + 0.4 * x / width + 0.1 * np.sin(y / 5.0) * np.cos(x / 7.0)
    return np.repeat(np.clip(value, 0, 1)[..., None], 3, axis=2)


def measure(args: tuple[str, int, int, int, int, int]) -> tuple[float, float, float]:
    """(load s, median run s, peak RSS MB) of one working size in this process."""
    weights, size, width, height, repeats, threads = args
    import torch

    torch.set_num_threads(threads)
    from restorer.stages.base import Work
    from restorer.stages.colour_ddcolor import DDColorColour, join_lightness, lightness

    image = photo(width, height)
    options = DDColorColour.spec.resolve_options({"working_size": max(size, 256)})
    began = time.perf_counter()
    if size == 0:  # the work around the network only
        import cv2

        def run() -> None:
            lum = lightness(image)
            ab = cv2.resize(np.zeros((512, 512, 2), np.float32), (width, height))
            join_lightness(lum, ab + 20.0)
        load = 0.0
    else:
        stage = DDColorColour(Path(weights), device="cpu")
        load = time.perf_counter() - began

        def run() -> None:
            stage.run(Work(image=image), options, lambda f, t: None)
    run()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return load, float(np.median(times)), peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--photo", default="1024x768", help="WIDTHxHEIGHT of the test photo")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.photo.lower().split("x"))
    sizes = [int(s) for s in args.sizes.split(",")]
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "ddcolor_paper_tiny.pth"
        with context.Pool(1) as pool:  # in a child: the parent's peak RSS is inherited
            pool.apply(write_ddcolor, (weights,))
        print(f"colour.ddcolor, stand-in DDColor-T ({weights.stat().st_size / 1e6:.0f} MB), "
              f"photo {width}x{height}, CPU, {args.threads} torch threads, median of {args.repeats}")
        print(f"{'working size':<14}{'load s':>8}{'run s':>8}{'peak RSS MB':>13}")
        for size in [0, *sizes]:
            with context.Pool(1) as pool:
                load, run, peak = pool.apply(measure, ((str(weights), size, width, height,
                                                        args.repeats, args.threads),))
            name = "join only" if size == 0 else str(size)
            print(f"{name:<14}{load:8.1f}{run:8.2f}{peak:13.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
