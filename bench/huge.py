#!/usr/bin/env python
"""Peak memory and time of a huge scan (24 MP by default) through Auto mode on the CPU.

    python bench/huge.py [--megapixels 24] [--weights auto|standin|small] [--json OUT]

The scan is made here: scikit-image's astronaut (a portrait) enlarged to ``--megapixels``,
blurred like a soft print (Gaussian, 1.5 px at a 512 px short side), with seeded synthetic
cracks (drawn at a quarter of the size and enlarged, so they are 4-20 px wide, as on a scan).
It is saved as a JPEG and restored in a fresh process, file to file like the CLI (load, Auto
run, PNG save), with the real triage network; as the app's warm-up does at start, Auto's
stages are built (their models loaded) before the scan is read. Each run is measured as a
whole (the child's own high-water mark, ``VmHWM``: frameworks included; not ``wait4``'s
``ru_maxrss``, which Linux carries over from the parent at exec, so a large parent such as a
long test session would be counted) and by stage (RSS sampled every 10 ms, attributed to the
stage running).

Two configurations run side by side: the default (Richardson-Lucy deconvolved in 2048 px
tiles) and the same with the deblur untiled (``tile`` 0), the baseline tiling must equal.
Detection analyses large scans at a bounded working size, inpainting and face restoration
work on crops around defects and faces, so they have no untiled variant.

Face weights: ``auto`` uses the published files when verified locally (this script never
downloads), else random stand-ins of the full architectures (``standin``; their detector
reports template faces at its 256 px anchors, so the timings are real and the faces are
not). ``small`` uses narrowed stand-ins (for the test suite: fast, same code path).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from skimage import data as skdata

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from restorer.backends import return_large_blocks_to_the_system  # noqa: E402
from restorer.imaging import load_image, save_image  # noqa: E402
from restorer.ops import luminance  # noqa: E402
from restorer.service import ServiceConfig, auto_stage_ids, build_store  # noqa: E402
from restorer.synth import apply_cracks, blur, crack_alpha  # noqa: E402

GIB = 2**30
PAGE = os.sysconf("SC_PAGE_SIZE")


def make_scan(megapixels: float, seed: int = 0, *, grey: bool = False) -> np.ndarray:
    """A blurred, cracked 3:2 portrait of about ``megapixels``: float32 (H, W, 3) in [0, 1]
    (a grey print when ``grey``)."""
    width = int(round((megapixels * 1e6 * 1.5) ** 0.5))
    height = int(round(width / 1.5))
    portrait = load_image(skdata.astronaut())[85:427]  # 342 x 512: 3:2 around the face
    image = np.clip(cv2.resize(portrait, (width, height), interpolation=cv2.INTER_CUBIC), 0, 1)
    rng = np.random.default_rng(seed)
    image = blur(image, rng, strength=1.5 * height / 512)
    small = (height // 4, width // 4)
    for polarity, count in (("light", 4), ("dark", 3)):
        alpha = cv2.resize(crack_alpha(small, rng, count=count, width=(1.0, 5.0)), (width, height),
                           interpolation=cv2.INTER_LINEAR)
        image = apply_cracks(image, alpha, rng, polarity=polarity)
    if grey:
        image = np.repeat(luminance(image)[..., None], 3, axis=2)
    return image


# ------------------------------------------------------------------------------ child process
def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * PAGE


def _high_water() -> int:
    """This process's peak RSS in bytes since its exec (``VmHWM``)."""
    with open("/proc/self/status", encoding="ascii") as handle:
        line = next(line for line in handle if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


class _Sampler:
    """RSS sampled every 10 ms; the peak is attributed to the label current at the time."""

    def __init__(self) -> None:
        self.label = "start"
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            rss = _rss()
            self.peaks[self.label] = max(self.peaks.get(self.label, 0), rss)
            time.sleep(0.01)

    def mark(self, label: str) -> None:
        rss = _rss()
        self.peaks[self.label] = max(self.peaks.get(self.label, 0), rss)
        self.label = label

    def stop(self) -> None:
        self.mark("end")
        self._stop.set()
        self._thread.join()


def _pipeline(weights: str, scratch: Path, untiled: bool):
    """Auto's stages as the app builds them, with the face stage on ``weights``."""
    from restorer.pipeline import Pipeline
    from restorer.planner import AutoMethods
    from restorer.registry import Registry, StageEntry
    from restorer.stages.deblur import RichardsonLucyDeblur
    from restorer.stages.detect_learned import SegmentationDetector
    from restorer.stages.face import (GFPGAN_V14_ARCH, PARSENET_ARCH, WEIGHT_IDS,
                                      FaceArchitectures, GfpganFace, write_standin_weights)
    from restorer.stages.inpaint import TeleaInpainter
    from restorer.stages.triage_net import NetTriage
    from restorer.weights import WeightStore

    store = build_store(ServiceConfig(offline=True))
    deblur_spec = RichardsonLucyDeblur.spec
    if untiled:
        untiled_option = dataclasses.replace(deblur_spec.options["tile"], default=0)
        deblur_spec = dataclasses.replace(deblur_spec,
                                          options={**deblur_spec.options, "tile": untiled_option})
    archs = FaceArchitectures()
    face_store, label = store, "published"
    if weights != "auto" or not all(store.is_available(w) for w in WEIGHT_IDS):
        if weights == "small":
            archs = FaceArchitectures(gfpgan={**GFPGAN_V14_ARCH, "narrow": 0.0625},
                                      parsenet={**PARSENET_ARCH, "base_ch": 8, "res_depth": 1,
                                                "ch_range": [8, 32]})
        manifest = write_standin_weights(scratch, archs=archs, seed=0)
        face_store = WeightStore(manifest, bundled_dir=scratch, cache_dir=scratch / "hub",
                                 offline=True)
        label = "narrowed stand-ins" if weights == "small" else "stand-ins (full architectures)"
    def store_of(weight_id: str) -> WeightStore:
        return face_store if weight_id in WEIGHT_IDS else store

    def path(weight_id: str) -> Path:
        return store_of(weight_id).resolve(weight_id, download=False)

    registry = Registry([
        StageEntry(NetTriage.spec, lambda: NetTriage(path)),
        StageEntry(SegmentationDetector.spec,
                   lambda: SegmentationDetector(path("detect_segnet"))),
        StageEntry(TeleaInpainter.spec, TeleaInpainter),
        StageEntry(deblur_spec, RichardsonLucyDeblur),
        StageEntry(GfpganFace.spec, lambda: GfpganFace(path, device="cpu", archs=archs)),
    ], weight_check=lambda weight_id: store_of(weight_id).is_available(weight_id))
    auto = AutoMethods(detect="detect.segnet", face="face.gfpgan")
    return Pipeline(registry, triage_id="triage.net", auto=auto), label


def child(scan: Path, out: Path, weights: str, untiled: bool, report: Path) -> None:
    """Restore ``scan`` in Auto mode into ``out``; write stage seconds and RSS peaks to ``report``."""
    return_large_blocks_to_the_system()  # as the app and the CLI do at start
    sampler = _Sampler()
    sampler.mark("build")
    with tempfile.TemporaryDirectory(prefix="restorer-huge-") as scratch:
        pipeline, label = _pipeline(weights, Path(scratch), untiled)
        for stage_id in auto_stage_ids(pipeline):  # as the app's warm-up does at start
            pipeline.registry.build(stage_id)
        sampler.mark("load")
        image = load_image(scan)
        titles = {spec.title: spec.id for spec in pipeline.registry.specs()}

        def progress(fraction: float, text: str) -> None:
            title = text.split(":")[0]
            if title in titles and sampler.label != titles[title]:
                sampler.mark(titles[title])

        result = pipeline.run(image, None, progress=progress)
        sampler.mark("save")
        save_image(result.image, out)
    sampler.stop()
    face = next((r.info for r in result.stages if r.kind == "face"), {})
    report.write_text(json.dumps({
        "plan": list(result.plan.ids), "label": result.triage.label if result.triage else None,
        "seconds": result.timings, "peaks": sampler.peaks, "weights": label,
        "faces": f"{face.get('faces_restored', 0)} of {face.get('faces_found', 0)}",
        "size": [int(image.shape[1]), int(image.shape[0])], "max_rss": _high_water(),
    }))


# ------------------------------------------------------------------------------ parent
def run_scan(scan: Path, *, weights: str = "auto", untiled: bool = False,
             timeout: float = 1800.0) -> dict[str, Any]:
    """Restore ``scan`` in a fresh process; its report (``max_rss``: its peak RSS, bytes) plus
    ``wall`` (s).

    The output PNG is written next to ``scan`` (``<stem>.restored.png``, or ``.untiled.png``).
    """
    out = scan.with_name(f"{scan.stem}.{'untiled' if untiled else 'restored'}.png")
    report = scan.with_name(f"{out.stem}.json")
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(scan), "--out",
               str(out), "--weights", weights, "--report", str(report)]
    if untiled:
        command.append("--untiled")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    began = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        output = process.stdout.read().decode(errors="replace") if process.stdout else ""
        _, status = os.waitpid(process.pid, 0)
    finally:
        timer.cancel()
        if process.stdout:
            process.stdout.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"the restore process failed ({process.returncode}):\n{output[-3000:]}")
    result = json.loads(report.read_text())
    result["wall"] = time.perf_counter() - began
    result["output"] = str(out)
    return result


def _table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    names = [name for name, _ in rows]
    stages = list(dict.fromkeys(s for _, r in rows for s in r["seconds"]))
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for stage in stages:
        lines.append(f"| {stage}: s / peak GiB | " + " | ".join(
            f"{r['seconds'].get(stage, 0):.1f} / {r['peaks'].get(stage, 0) / GIB:.2f}"
            for _, r in rows) + " |")
    for key, fmt in (("load", "peak after loading the scan"), ("save", "peak while saving the PNG")):
        lines.append(f"| {fmt}, GiB | " + " | ".join(f"{r['peaks'].get(key, 0) / GIB:.2f}"
                                                      for _, r in rows) + " |")
    lines.append("| **whole process peak RSS, GiB** | " + " | ".join(
        f"**{r['max_rss'] / GIB:.2f}**" for _, r in rows) + " |")
    lines.append("| wall time incl. start-up, s | " + " | ".join(f"{r['wall']:.0f}" for _, r in rows)
                 + " |")
    lines.append("| faces restored | " + " | ".join(r["faces"] for _, r in rows) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megapixels", type=float, default=24.0)
    parser.add_argument("--weights", choices=("auto", "standin", "small"), default="auto")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--untiled", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child, args.out, args.weights, args.untiled, args.report)
        return 0

    with tempfile.TemporaryDirectory(prefix="restorer-bench-huge-") as folder:
        scan = Path(folder) / "scan.jpg"
        save_image(make_scan(args.megapixels), scan)
        runs = [("tiled (default)", run_scan(scan, weights=args.weights)),
                ("deblur untiled", run_scan(scan, weights=args.weights, untiled=True))]
        same = np.abs(load_image(runs[0][1]["output"]).astype(np.float32)
                      - load_image(runs[1][1]["output"])).max() * 255
        first = runs[0][1]
        print(f"# {args.megapixels:g} MP scan ({first['size'][0]}x{first['size'][1]} JPEG), "
              f"Auto mode on the CPU ({os.cpu_count()} cores)\n")
        print(f"Triage: {first['label']}; plan: {', '.join(first['plan'])}; face weights: "
              f"{first['weights']}.\n")
        print(_table(runs))
        print(f"\nLargest difference between the two outputs: {same:.1f} / 255.")
        if args.json:
            args.json.write_text(json.dumps(dict(runs), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
