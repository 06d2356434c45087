"""The load harness's requests and their checks: the photos sent, each answer checked against its
own input (size, plan, unchanged pixels, PSNR), and the cross-talk comparison of all of them."""

from __future__ import annotations

import collections
import functools
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np



from bench.load_report import EXPECTED_PLAN, MODES, THUMB, LoadSettings
from restorer.imaging import load_image, to_uint8
from restorer.synth import damage

log = logging.getLogger("restorer.bench.load")


@dataclass(frozen=True)
class RequestSpec:
    """One request: who sends it, which mode, the photo's size and seed."""

    index: int
    client: int
    mode: str
    size: tuple[int, int]
    seed: int


@dataclass
class Outcome:
    """What happened to one request."""

    spec: RequestSpec
    ok: bool = False
    error: str = ""
    busy: int = 0
    attempt_s: float = math.nan
    e2e_s: float = math.nan
    #: role -> server-side path of every file in the answer.
    server_paths: dict[str, str] = field(default_factory=dict)
    result_thumb: np.ndarray | None = None


class WrongResult(Exception):
    """An answer that does not fit its own request."""


@functools.lru_cache(maxsize=1)
def base_photos() -> tuple[np.ndarray, ...]:
    """scikit-image's bundled photos as float32 (H, W, 3): astronaut, coffee, chelsea, camera,
    rocket."""
    from skimage import data

    return tuple(load_image(f()) for f in (data.astronaut, data.coffee, data.chelsea,
                                          data.camera, data.rocket))


def make_photo(spec: RequestSpec) -> np.ndarray:
    """The distinct damaged photo of ``spec``: float32 (H, W, 3) in [0, 1].

    A seeded crop at a seeded scale of one bundled photo, maybe mirrored, with uneven toning
    (a smooth random gain, so no two inputs are alike even from the same crop) and then seeded
    cracks, or blur for the deblur mode.
    """
    rng = np.random.default_rng([spec.seed, spec.index + 1])  # index -1: the warm-up
    bases = base_photos()
    base = bases[spec.index % len(bases)]
    width, height = spec.size
    scale = max(width / base.shape[1], height / base.shape[0]) * rng.uniform(1.0, 1.8)
    scaled = cv2.resize(base, (math.ceil(base.shape[1] * scale), math.ceil(base.shape[0] * scale)),
                        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    top = int(rng.integers(0, scaled.shape[0] - height + 1))
    left = int(rng.integers(0, scaled.shape[1] - width + 1))
    photo = scaled[top:top + height, left:left + width]
    if rng.random() < 0.5:
        photo = photo[:, ::-1]
    gain = cv2.resize(rng.uniform(-1.0, 1.0, (3, 3)).astype(np.float32), (width, height),
                      interpolation=cv2.INTER_CUBIC)
    photo = np.clip(photo * (1.0 + 0.25 * gain[..., None]), 0.0, 1.0).astype(np.float32)
    if spec.mode == "deblur":
        return damage(photo, rng, cracks=False, blurred=True).image
    return damage(photo, rng).image


def thumbnail(pixels: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (16, 16, 3) in [0, 1], area-averaged."""
    return cv2.resize(pixels.astype(np.float32) / 255.0, (THUMB, THUMB),
                      interpolation=cv2.INTER_AREA)


def read_pixels(path: Path, mode: str = "RGB") -> np.ndarray:
    """An image file's pixels (read through restorer.imaging) as uint8 (H, W, 3), or (H, W)
    for mode "L" (a grey file's one channel)."""
    pixels = to_uint8(load_image(path))
    return pixels[..., 0] if mode == "L" else pixels


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def check_result(mode: str, before: np.ndarray, restored: np.ndarray, mask: np.ndarray,
                 report: dict[str, Any]) -> list[str]:
    """Problems with one answer, judged against its own input (empty when right).

    ``before``/``restored`` uint8 (H, W, 3), ``mask`` uint8 (H, W) with 255 = defect.
    """
    problems = []
    height, width = before.shape[:2]
    if restored.shape != before.shape:
        problems.append(f"restored is {restored.shape}, input {before.shape}")
        return problems
    if mask.shape != before.shape[:2]:
        problems.append(f"mask is {mask.shape}, input {before.shape[:2]}")
        return problems
    if report.get("size") != [width, height]:
        problems.append(f"report size {report.get('size')} != input {[width, height]}")
    plan = report.get("plan")
    if mode in EXPECTED_PLAN and plan != EXPECTED_PLAN[mode]:
        problems.append(f"plan {plan} != {EXPECTED_PLAN[mode]}")
    kinds = {s.get("kind") for s in report.get("stages", [])}
    changed = np.abs(restored.astype(int) - before.astype(int)).max(axis=2)
    if mode == "detect":
        if changed.any():
            problems.append("/detect changed the photo")
    elif "deblur" in kinds:
        # Deblurring changes every pixel a little; inpainting (Auto) the defects a lot.
        keep = mask != 255
        if (value := psnr(restored[keep], before[keep])) <= 25.0:
            problems.append(f"deblurred result only {value:.1f} dB from its own input "
                            f"outside the defect mask")
    else:
        outside = changed[mask != 255]
        if outside.size and outside.max() > 1:
            problems.append(f"{int((outside > 1).sum())} pixels outside the mask changed "
                            f"(by up to {int(outside.max())})")
        if (fraction := float((mask == 255).mean())) > 0.6:
            # Else "unchanged outside the mask" would say little.
            problems.append(f"the defect mask covers {fraction:.0%} of the photo")
    return problems


def file_entries(value: Any, role: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(role, FileData dict) for every file in an answer (``download_files=False``)."""
    if isinstance(value, dict):
        if value.get("meta", {}).get("_type") == "gradio.FileData" or (
                "path" in value and "url" in value):
            yield role, value
            return
        for key, item in value.items():
            yield from file_entries(item, f"{role}.{key}" if role else str(key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from file_entries(item, f"{role}[{i}]")


def plan_requests(settings: LoadSettings) -> list[list[RequestSpec]]:
    """Each user's requests: round-robin over users, modes x sizes cycling."""
    per_user: list[list[RequestSpec]] = [[] for _ in range(settings.clients)]
    sizes = settings.sizes
    for index in range(settings.total_requests):
        mode = MODES[index % len(MODES)]
        size = sizes[(index // len(MODES) + index) % len(sizes)]
        client = index % settings.clients
        per_user[client].append(RequestSpec(index, client, mode, size, settings.seed))
    return per_user


def thumb_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Median over the 16x16 cells of the mean absolute difference: robust to the few cells
    that inpainting changes a lot."""
    return float(np.median(np.abs(a - b).mean(axis=2)))


@dataclass
class Crosstalk:
    """The thumbnail comparison of every result with every input of its size."""

    checked: int = 0
    wrong: int = 0
    #: Largest distance of a result to its own input; smallest to another input.
    own_max: float = 0.0
    other_min: float = math.inf
    #: Smallest ratio (nearest other input) / (own input) over the results.
    margin: float = math.inf
    samples: list[str] = field(default_factory=list)


def crosstalk(outcomes: list[Outcome], inputs: dict[int, tuple[tuple[int, int], np.ndarray]]
              ) -> Crosstalk:
    """Check that every result came from its own input.

    A result passes when its own input is the nearest of all inputs of its size (by
    :func:`thumb_distance`) and the next nearest is at least 2x as far plus 0.01.
    """
    found = Crosstalk()
    by_size: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = collections.defaultdict(list)
    for index, (size, thumb) in inputs.items():
        by_size[size].append((index, thumb))
    for outcome in outcomes:
        if outcome.result_thumb is None or outcome.spec.index not in inputs:
            continue
        found.checked += 1
        own = thumb_distance(outcome.result_thumb, inputs[outcome.spec.index][1])
        nearest = min((thumb_distance(outcome.result_thumb, thumb)
                       for index, thumb in by_size[outcome.spec.size]
                       if index != outcome.spec.index), default=math.inf)
        found.own_max = max(found.own_max, own)
        found.other_min = min(found.other_min, nearest)
        found.margin = min(found.margin, nearest / max(own, 1e-6))
        if not nearest >= 2 * own + 0.01:
            found.wrong += 1
            found.samples.append(f"request {outcome.spec.index}: {own:.4f} from its own input, "
                                 f"{nearest:.4f} from another")
    return found
