"""Outputs of the project's own learned stages on seeded photos, as fingerprints.

tests/test_adoption.py compares these fingerprints with the ones recorded from the stages before
they ran through restorer.runtime (``adoption_fingerprints.json``: main at f896903; detect.print
re-recorded when its cracks were averaged over flips): the adoption must not change what the
stages compute. Everything is generated here by code (numpy and OpenCV drawing), on the CPU with
one torch thread. A fingerprint is not a hash of the bytes: the last bits of a convolution
depend on the CPU's vector instructions (two machines' answers differ by about 1e-7, which a
hash of values rounded to 1e-4 still caught now and then: a new machine failed the face
stage's), so an array is summarised by its shape and the mean and spread of each of 4 x 4 blocks
per channel, compared to 2e-4 (:func:`matches`). Only public constructors and ``run`` are used,
so the same code ran on the old and the new stages. Run as a script to print the fingerprints of
the code on ``PYTHONPATH`` as JSON.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "weights"
#: Manifest id -> bundled file name of the project's own weights.
BUNDLED = {"detect_segnet": "detector_segnet.safetensors", "detect_mlp": "detector_mlp.safetensors",
           "inpaint_gan": "inpaint_gan.safetensors", "triage_net": "triage_net.keras",
           "triage_fusion": "triage_fusion.safetensors"}


def weight_path(weight_id: str) -> Path:
    """The bundled file of one of the project's own weights."""
    return WEIGHTS / BUNDLED[weight_id]


def damaged_photo(seed: int = 7, size: tuple[int, int] = (240, 320)) -> tuple[np.ndarray, np.ndarray]:
    """A seeded float32 (H, W, 3) [0, 1] photo (smooth colour field, a few edges) with drawn
    cracks and spots, and their bool (H, W) mask."""
    rng = np.random.default_rng(seed)
    height, width = size
    field = cv2.resize(rng.random((6, 8, 3), dtype=np.float32), (width, height),
                       interpolation=cv2.INTER_CUBIC)
    photo = np.clip(0.2 + 0.6 * field, 0.0, 1.0)
    cv2.rectangle(photo, (40, 30), (130, 120), (0.15, 0.12, 0.1), -1)
    damage = np.zeros((height, width), np.uint8)
    for _ in range(4):
        points = rng.integers(0, [width, height], size=(2, 2))
        cv2.line(damage, tuple(map(int, points[0])), tuple(map(int, points[1])), 255,
                 int(rng.integers(1, 4)))
    for _ in range(6):
        centre = rng.integers(0, [width, height])
        cv2.circle(damage, (int(centre[0]), int(centre[1])), int(rng.integers(2, 5)), 255, -1)
    mask = damage > 0
    photo[mask] = 0.95
    return np.ascontiguousarray(photo, dtype=np.float32), mask


#: Blocks per side of an array's fingerprint, and the tolerance of :func:`matches`.
BLOCKS = 4
TOLERANCE = 2e-4


def fingerprint(value: Any) -> Any:
    """JSON-ready summary of arrays (shape, then per 4 x 4 block and channel the mean and the
    standard deviation; a bool array as 0/1) inside dicts, lists and scalars."""
    if isinstance(value, np.ndarray):
        array = value.astype(np.float64)
        array = array[..., None] if array.ndim == 2 else array
        rows = np.array_split(np.arange(array.shape[0]), BLOCKS)
        cols = np.array_split(np.arange(array.shape[1]), BLOCKS)
        blocks = [array[r[0]:r[-1] + 1, c[0]:c[-1] + 1] for r in rows for c in cols]
        stats = [[round(float(x), 6) for x in (*b.mean(axis=(0, 1)), *b.std(axis=(0, 1)))]
                 for b in blocks]
        return {"shape": list(value.shape), "dtype": str(value.dtype), "blocks": stats}
    if isinstance(value, dict):
        return {str(key): fingerprint(value[key]) for key in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [fingerprint(part) for part in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value


def matches(found: Any, recorded: Any, path: str = "") -> list[str]:
    """Where fingerprint ``found`` differs from ``recorded`` (numbers by more than
    :data:`TOLERANCE`, anything else at all); empty when they match."""
    if isinstance(recorded, dict) and isinstance(found, dict):
        if sorted(found) != sorted(recorded):
            return [f"{path}: keys {sorted(found)} != {sorted(recorded)}"]
        return [m for key in recorded for m in matches(found[key], recorded[key], f"{path}/{key}")]
    if isinstance(recorded, list) and isinstance(found, list):
        if len(found) != len(recorded):
            return [f"{path}: length {len(found)} != {len(recorded)}"]
        return [m for i, (f, r) in enumerate(zip(found, recorded))
                for m in matches(f, r, f"{path}[{i}]")]
    numbers = (int, float)
    if (isinstance(found, numbers) and isinstance(recorded, numbers)
            and not isinstance(found, bool) and not isinstance(recorded, bool)):
        return [] if abs(found - recorded) <= TOLERANCE else [f"{path}: {found} != {recorded}"]
    return [] if found == recorded else [f"{path}: {found!r} != {recorded!r}"]


def _quiet(fraction: float, text: str) -> None:
    """Progress callback that ignores progress."""


def _run(stage: Any, image: np.ndarray, mask: np.ndarray | None = None, **options: Any) -> Any:
    from restorer.stages.base import Work

    return stage.run(Work(image=image, mask=mask), {**stage.spec.defaults, **options}, _quiet)


def segnet_fingerprint() -> Any:
    from restorer.stages.detect_learned import SegmentationDetector

    image, _ = damaged_photo()
    stage = SegmentationDetector(weight_path("detect_segnet"))
    return fingerprint([_run(stage, image).mask, _run(stage, image, sensitivity=0.9, dilate=2).mask])


def print_fingerprint() -> Any:
    from restorer.stages.detect_print import PrintDetector

    image, _ = damaged_photo()
    out = _run(PrintDetector(weight_path("detect_segnet")), image)
    return fingerprint([out.mask, dict(out.masks or {})])


def learned_fingerprint() -> Any:
    from restorer.stages.detect_learned import DescriptorDetector

    image, _ = damaged_photo()
    out = _run(DescriptorDetector(weight_path("detect_mlp")), image)
    return fingerprint([out.mask, round(float(out.info["threshold"]), 6)])


def triage_fingerprint() -> Any:
    from restorer.stages.triage_net import NetTriage

    image, _ = damaged_photo()
    stage = NetTriage(weight_path)
    out = _run(stage, image)
    info = {k: v for k, v in out.info.items() if not k.endswith("runtime")}
    # Rounded to 1e-4: the network runs in torch now, whose answers differ from TensorFlow's
    # by about 1e-6 (test_triage_net checks they agree to 1e-5).
    labels, confidences = ({k: round(float(v), 4) for k, v in d.items()}
                           for d in (out.triage.labels, out.triage.confidences))
    return fingerprint([info, labels, confidences])


def gan_fingerprint() -> Any:
    from restorer.stages.inpaint_gan import LearnedInpainter

    image, mask = damaged_photo()
    out = _run(LearnedInpainter(weight_path("inpaint_gan"), device="cpu"), image, mask)
    return fingerprint(out.image)


def face_fingerprint() -> Any:
    from restorer.stages.face import (GFPGAN_V14_ARCH, PARSENET_ARCH, FaceArchitectures,
                                      GfpganFace, write_standin_weights)
    from restorer.weights import WeightStore

    small = FaceArchitectures(gfpgan={**GFPGAN_V14_ARCH, "narrow": 0.0625},
                              parsenet={**PARSENET_ARCH, "base_ch": 8, "res_depth": 1,
                                        "ch_range": [8, 32]})
    with tempfile.TemporaryDirectory() as folder:
        manifest = write_standin_weights(Path(folder), archs=small, seed=0)
        store = WeightStore(manifest, bundled_dir=Path(folder), cache_dir=Path(folder) / "hub",
                            offline=True)
        stage = GfpganFace(lambda wid: store.resolve(wid, download=False), device="cpu",
                           archs=small)
        portrait = np.random.default_rng(2).random((320, 384, 3), dtype=np.float32)
        out = _run(stage, portrait, faces="centre", fidelity=0.7)
        aligned = cv2.resize(portrait, (512, 512), interpolation=cv2.INTER_CUBIC)
        out_aligned = _run(stage, np.clip(aligned, 0, 1), aligned=True)
    return fingerprint([out.image, out.info["boxes"], out_aligned.image])


#: Stage id -> the function computing its fingerprint.
FINGERPRINTS: dict[str, Callable[[], Any]] = {
    "detect.segnet": segnet_fingerprint, "detect.print": print_fingerprint,
    "detect.learned": learned_fingerprint, "triage.net": triage_fingerprint,
    "inpaint.gan": gan_fingerprint, "face.gfpgan": face_fingerprint,
}


def one_torch_thread() -> int:
    """Set torch to one intra-op thread; returns the previous count."""
    from restorer.backends import torch_stack

    torch, _ = torch_stack()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    return before


if __name__ == "__main__":
    one_torch_thread()
    print(json.dumps({stage_id: compute() for stage_id, compute in FINGERPRINTS.items()}))
