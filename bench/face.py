#!/usr/bin/env python
"""Time the GFP-GAN face stage and the whole pipeline on a 1024 px portrait.

    python bench/face.py [--device auto|cpu|cuda] [--size 1024] [--repeat 3] [--weights auto|standin]

The portrait is scikit-image's astronaut (a 512 px photo of a face) resized to ``--size``.

Weights: with ``--weights auto`` the published files are used when the weight store already
has them verified locally (run ``python -m restorer weights pull`` first; this script never
downloads); otherwise, and with ``--weights standin``, random-weight stand-ins of the full
architectures are written to a temporary folder (``write_standin_weights``). Stand-ins make
the networks cost what the real ones cost, but their detector's heads are fixed to report
template faces at its 256 px anchors, so with them the numbers are timings only: nothing is
found or restored for real. The output says which weights were used.

Printed, as markdown:
(a) the face stage (centre face, fidelity 1, upscale 1): milliseconds per step (detect,
    align, restore, parse, paste) and in total, median of ``--repeat`` runs after one warm-up
    run; on CUDA in fp32 and in fp16 (autocast), with the peak GPU memory of each;
(b) the pipeline (manual plan deblur.rl + face.gfpgan, built like the app builds it): the
    milliseconds of every stage that ran, including the triage and the crack detection it
    relies on.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from skimage import data as skdata  # noqa: E402

from restorer.imaging import load_image  # noqa: E402
from restorer.pipeline import Pipeline  # noqa: E402
from restorer.planner import PlannedStage, plan_manual  # noqa: E402
from restorer.registry import default_registry  # noqa: E402
from restorer.service import ServiceConfig, build_store  # noqa: E402
from restorer.stages.base import Work  # noqa: E402
from restorer.stages.face import WEIGHT_IDS, GfpganFace, third_party, write_standin_weights  # noqa: E402
from restorer.weights import WeightStore  # noqa: E402

STEPS = ("detect", "align", "restore", "parse", "paste")
OPTIONS = {"faces": "centre", "fidelity": 1.0, "upscale": 1, "aligned": False}


def _quiet(fraction: float, message: str) -> None:
    """Progress callback that ignores progress."""


def portrait(size: int) -> np.ndarray:
    """The astronaut photo as float32 (size, size, 3) RGB in [0, 1]."""
    image = load_image(skdata.astronaut())
    return np.clip(cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def weight_store(choice: str, scratch: Path) -> tuple[WeightStore, str]:
    """The published weights if verified locally (``auto``), else stand-ins; and a label."""
    if choice == "auto":
        store = build_store(ServiceConfig(offline=True))
        if all(store.is_available(weight_id) for weight_id in WEIGHT_IDS):
            return store, "published (GFPGANv1.4, RetinaFace-R50, ParseNet)"
        print("note: the published face weights are not available locally; using stand-ins\n")
    manifest = write_standin_weights(scratch, seed=0)
    store = WeightStore(manifest, bundled_dir=scratch, cache_dir=scratch / "hub", offline=True)
    return store, "random stand-ins of the full architectures (timings only, no real faces)"


def time_stage(stage: GfpganFace, image: np.ndarray, repeat: int) -> dict[str, Any]:
    """Median ms per step and in total over ``repeat`` runs (after a warm-up), peak GPU MiB."""
    torch = third_party().torch
    cuda = stage.device.startswith("cuda")
    stage.run(Work(image), {**GfpganFace.spec.defaults, **OPTIONS}, _quiet)  # warm-up
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    runs = []
    for _ in range(repeat):
        began = time.perf_counter()
        out = stage.run(Work(image), {**GfpganFace.spec.defaults, **OPTIONS}, _quiet)
        if cuda:
            torch.cuda.synchronize()
        runs.append({**out.info["ms"], "total": (time.perf_counter() - began) * 1000})
    result: dict[str, Any] = {key: statistics.median(r[key] for r in runs) for key in (*STEPS, "total")}
    result["faces"] = f"{out.info['faces_restored']} of {out.info['faces_found']}"
    result["peak"] = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    return result


def time_pipeline(store: WeightStore, device: str, image: np.ndarray) -> list[tuple[str, float]]:
    """Seconds of each stage of one pipeline run (deblur + faces), built like the app's."""
    registry = default_registry(weight_check=store.is_available,
                                weight_path=functools.partial(store.resolve, download=False),
                                device=device)
    pipeline = Pipeline(registry)
    specs = {spec.id: spec for spec in registry.specs()}
    plan = plan_manual(["deblur.rl", PlannedStage("face.gfpgan", {"faces": "centre"})], specs)
    pipeline.run(image, plan)  # warm-up (and model loading)
    result = pipeline.run(image, plan)
    return [(record.id, record.seconds * 1000) for record in result.stages]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--size", type=int, default=1024, help="portrait side in pixels")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per configuration")
    parser.add_argument("--weights", choices=("auto", "standin"), default="auto")
    args = parser.parse_args(argv)

    torch = third_party().torch
    image = portrait(args.size)
    with tempfile.TemporaryDirectory(prefix="restorer-face-bench-") as scratch:
        store, weights = weight_store(args.weights, Path(scratch))
        path = functools.partial(store.resolve, download=False)
        fp32 = GfpganFace(path, device=args.device, precision="fp32")
        on_cuda = fp32.device.startswith("cuda")
        device_name = torch.cuda.get_device_name(torch.device(fp32.device)) if on_cuda else "CPU"
        print(f"# Face stage on {device_name} ({fp32.device}), {args.size}x{args.size} portrait\n")
        print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; weights: {weights}; "
              f"median of {args.repeat} run(s) after a warm-up\n")
        configs = [("fp32", fp32)]
        if on_cuda:
            configs.append(("fp16", GfpganFace(path, device=args.device, precision="fp16")))
        rows = {name: time_stage(stage, image, args.repeat) for name, stage in configs}

        print("## (a) face.gfpgan, milliseconds per step\n")
        names = [name for name, _ in configs]
        print("| step | " + " | ".join(names) + " |")
        print("|---|" + "---:|" * len(names))
        for key in (*STEPS, "total"):
            print(f"| {key} | " + " | ".join(f"{rows[n][key]:.1f}" for n in names) + " |")
        print("| faces restored | " + " | ".join(rows[n]["faces"] for n in names) + " |")
        if on_cuda:
            print("| peak GPU MiB | " + " | ".join(f"{rows[n]['peak']:.0f}" for n in names) + " |")
        del configs, fp32

        print("\n## (b) pipeline (deblur.rl + face.gfpgan, default precision), milliseconds\n")
        print("| stage | ms |\n|---|---:|")
        for stage_id, ms in time_pipeline(store, args.device, image):
            print(f"| {stage_id} | {ms:.1f} |")
    if not on_cuda:
        print("\nCPU only: no fp16 column and no GPU memory (fp16 runs on CUDA only).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
