#!/usr/bin/env python
"""Every learned stage on the chosen device against the CPU, fp32 against fp16, in one run.

    python bench/gpu.py [--device auto|cuda|cuda:N|mps|cpu] [--megapixels 24]
                        [--cpu-megapixels 1] [--stages a,b] [--threads N] [--quick]

For each learned stage (the project's own: detect.segnet, detect.print, detect.learned,
triage.net, inpaint.gan, face.gfpgan; the published: detect.scratch, inpaint.lama,
deblur.nafnet, colour.ddcolor) the table gives: seconds on the CPU for a ``--cpu-megapixels``
photo; on the chosen device, seconds for a ``--megapixels`` photo in fp32 and in fp16 (only
where the stage's networks declare fp16 safe; "not declared" otherwise) with the largest
difference of the fp16 output from the fp32 one (images: max |difference|; masks: share of
pixels that differ); torch's peak GPU memory (``torch.cuda.max_memory_allocated``) and the
forwards the runtime ran ("tiles" of the stage's runtime record: tiles of a tiled network, or
one per call: per scale, flip, window or face), with any out-of-memory notes. Each stage is built once per device and
precision (not timed) and run once to warm up before the timed run.

Weights: the project's own files ship in ``weights/``; a published file is taken from
``--weights-dir`` or the Hugging Face cache when present and verified, else a random-initialised
network of the same architecture stands in (bench/pretrained.py, bench/colour.py; face.gfpgan
with tests' stand-in writer): its speed and memory are the real model's, and the table says
"stand-in". On a machine without a GPU the device columns are skipped, and the output says so.
Photos are generated (a smooth colour field with drawn cracks): no data set is needed.
``--quick``: a 4 MP device photo, a 0.25 MP CPU photo, no warm-up run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from restorer.backends import torch_stack  # noqa: E402
from restorer.runtime import ModelRuntime  # noqa: E402
from restorer.stages.base import Work  # noqa: E402

OWN = REPO / "weights"


def photo(megapixels: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded float32 (H, W, 3) photo of about ``megapixels`` (4:3) and its crack mask."""
    rng = np.random.default_rng(seed)
    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    height = int(round(width * 3 / 4))
    field = cv2.resize(rng.random((12, 16, 3), dtype=np.float32), (width, height),
                       interpolation=cv2.INTER_CUBIC)
    image = np.clip(0.15 + 0.7 * field, 0.0, 1.0)
    cracks = np.zeros((height, width), np.uint8)
    for _ in range(12):
        a, b = rng.integers(0, [width, height], size=(2, 2))
        cv2.line(cracks, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), 255,
                 max(1, width // 1500))
    mask = cracks > 0
    image[mask] = 0.92
    return np.ascontiguousarray(image, np.float32), mask


@dataclass
class Subject:
    """One stage to measure: how to build it on (device, precision), extra options, whether
    its weights are the real ones, and whether it needs the crack mask."""

    id: str
    build: Callable[[str, str], Any]
    real: bool = True
    needs_mask: bool = False
    options: dict[str, Any] | None = None


def subjects(folder: Path, weights_dir: Path | None) -> list[Subject]:
    """The learned stages, with stand-in weights written to ``folder`` where needed."""
    from colour import standin as ddcolor_standin
    from pretrained import weights_for

    from restorer.stages.colour_ddcolor import DDColorColour
    from restorer.stages.deblur_nafnet import NafnetDeblur
    from restorer.stages.detect_learned import DescriptorDetector, SegmentationDetector
    from restorer.stages.detect_print import PrintDetector
    from restorer.stages.detect_scratch import ScratchDetector
    from restorer.stages.face import GfpganFace, write_standin_weights
    from restorer.stages.inpaint_gan import LearnedInpainter
    from restorer.stages.inpaint_lama import LamaInpainter
    from restorer.stages.triage_net import NetTriage
    from restorer.weights import WeightStore

    segnet = OWN / "detector_segnet.safetensors"
    own = {"triage_net": OWN / "triage_net.keras", "detect_segnet": segnet,
           "triage_fusion": OWN / "triage_fusion.safetensors"}
    lama = weights_for("big_lama", weights_dir, folder)
    nafnet = weights_for("nafnet_gopro_w64", weights_dir, folder)
    scratch = weights_for("bopbtl_scratch", weights_dir, folder)
    ddcolor = folder / "ddcolor_paper_tiny.pth"
    ddcolor_standin(ddcolor)
    faces = folder / "faces"
    store = WeightStore(write_standin_weights(faces), bundled_dir=faces, offline=True,
                        cache_dir=faces / "hub")
    return [
        Subject("detect.segnet", lambda d, p: SegmentationDetector(segnet, device=d, precision=p)),
        Subject("detect.print", lambda d, p: PrintDetector(segnet, device=d, precision=p)),
        Subject("detect.learned", lambda d, p: DescriptorDetector(
            OWN / "detector_mlp.safetensors", device=d, precision=p)),
        Subject("triage.net", lambda d, p: NetTriage(own.__getitem__, device=d, precision=p)),
        Subject("inpaint.gan", lambda d, p: LearnedInpainter(
            OWN / "inpaint_gan.safetensors", device=d, precision=p), needs_mask=True),
        Subject("face.gfpgan", lambda d, p: GfpganFace(
            lambda w: store.resolve(w, download=False), device=d, precision=p),
            real=False, options={"faces": "centre"}),
        Subject("detect.scratch", lambda d, p: ScratchDetector(
            scratch.path, segnet, device=d, precision=p), real=scratch.real),
        Subject("inpaint.lama", lambda d, p: LamaInpainter(lama.path, device=d, precision=p),
                real=lama.real, needs_mask=True, options={"classical_width": 0}),
        Subject("deblur.nafnet", lambda d, p: NafnetDeblur(nafnet.path, device=d, precision=p),
                real=nafnet.real),
        Subject("colour.ddcolor", lambda d, p: DDColorColour(ddcolor, device=d, precision=p),
                real=False),
    ]


def runtimes(stage: Any) -> list[ModelRuntime]:
    """The ModelRuntimes a stage holds (attributes, and one level into their values)."""
    found = []
    for value in vars(stage).values():
        inner = vars(value).values() if hasattr(value, "__dict__") and \
            not isinstance(value, ModelRuntime) else ()
        found += [v for v in (value, *inner) if isinstance(v, ModelRuntime)]
    return found


@dataclass
class Measured:
    """One timed run: seconds, output, how the stage's networks ran, peak GPU bytes, and the
    stage built for it."""

    seconds: float
    output: np.ndarray | None
    runtime: dict[str, Any]
    peak: int | None
    stage: Any


def measure(subject: Subject, device: str, precision: str, megapixels: float,
            warm: bool) -> Measured:
    """Build ``subject`` on ``device`` in ``precision`` and time one run on a generated photo."""
    torch, _ = torch_stack()
    stage = subject.build(device, precision)
    image, mask = photo(megapixels)
    work = Work(image=image, mask=mask if subject.needs_mask else None)
    options = {**stage.spec.defaults, **(subject.options or {})}
    if warm:
        stage.run(work, options, lambda f, m: None)
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    out = stage.run(work, options, lambda f, m: None)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    info = dict(out.info)
    record = info.get("runtime") or {k: info.get(k) for k in ("device", "precision", "tiles",
                                                                 "notes")}
    result = out.image if out.image is not None else out.mask
    if result is None and out.triage is not None:
        result = np.array([info.get("p_blur", 0.0), info.get("p_crack", 0.0)], np.float32)
    peak = int(torch.cuda.max_memory_allocated()) if cuda else None
    return Measured(seconds, result, record, peak, stage)


def difference(a: np.ndarray | None, b: np.ndarray | None) -> str:
    """How far fp16's output is from fp32's (masks: share of pixels that differ)."""
    if a is None or b is None or a.shape != b.shape:
        return "-"
    if a.dtype == bool:
        return f"{float((a != b).mean()):.2%} px"
    return f"{float(np.abs(a.astype(np.float32) - b.astype(np.float32)).max()):.4f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--megapixels", type=float, default=24.0)
    parser.add_argument("--cpu-megapixels", type=float, default=1.0)
    parser.add_argument("--stages", default=None, help="comma list of stage ids (default: all)")
    parser.add_argument("--weights-dir", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.megapixels, args.cpu_megapixels = min(args.megapixels, 4.0), 0.25
    torch, _ = torch_stack()
    if args.threads:
        torch.set_num_threads(args.threads)
    from restorer.runtime import resolve_device

    device = str(resolve_device(args.device))
    gpu = device != "cpu"
    print(f"device: {device} ({torch.cuda.get_device_name(0) if device.startswith('cuda') else device})"
          + ("" if gpu else " -- no GPU here: CPU columns only"))
    print(f"CPU photo {args.cpu_megapixels:g} MP" + (f", device photo {args.megapixels:g} MP"
                                                     if gpu else "") + "\n")
    header = ["stage", "weights", f"CPU s ({args.cpu_megapixels:g} MP)", "CPU forwards"]
    if gpu:
        header += [f"{device} fp32 s", "fp16 s", "fp16 vs fp32", "peak GPU MB (fp32)",
                   f"forwards ({args.megapixels:g} MP)", "notes"]
    rows = [header]
    wanted = None if args.stages is None else set(args.stages.split(","))
    with tempfile.TemporaryDirectory() as folder:
        for subject in subjects(Path(folder), args.weights_dir):
            if wanted is not None and subject.id not in wanted:
                continue
            cpu = measure(subject, "cpu", "fp32", args.cpu_megapixels, warm=not args.quick)
            row = [subject.id, "real" if subject.real else "stand-in", f"{cpu.seconds:.2f}",
                   str(cpu.runtime.get("tiles"))]
            if gpu:
                fp32 = measure(subject, device, "fp32", args.megapixels, warm=not args.quick)
                safe = any(r.traits.fp16 for r in runtimes(fp32.stage))
                fp32.stage = None  # free its networks before the fp16 copy is built
                fp16 = measure(subject, device, "fp16", args.megapixels,
                               warm=not args.quick) if safe else None
                row += [f"{fp32.seconds:.2f}",
                        f"{fp16.seconds:.2f}" if fp16 else "not declared",
                        difference(fp16.output, fp32.output) if fp16 else "-",
                        f"{fp32.peak / 2**20:.0f}" if fp32.peak is not None else "-",
                        str(fp32.runtime.get("tiles")),
                        "; ".join(fp32.runtime.get("notes") or []) or "-"]
            rows.append(row)
            print("| " + " | ".join(row) + " |", flush=True)
    print()
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows[1:]:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
