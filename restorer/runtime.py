"""The one model runtime every learned stage runs its networks through.

A stage says which network it runs (a ``build(device)`` function that loads it, for instance
through spandrel) and what the network needs (:class:`ModelTraits`: channels, scale, size
multiple, safe half precisions, how far it sees); :class:`ModelRuntime` does the rest:

- **device**: "auto" takes CUDA, then Apple MPS, then the CPU; or the one asked for;
- **precision**: fp16 or bf16 autocast on CUDA where the traits say it is safe, else fp32; a
  tile whose half-precision result is not finite is redone in fp32;
- **padding**: every input is padded (reflect for images, zeros for masks) to the network's size
  multiple and minimum, and the output cropped back;
- **tiling**: inputs too large for the free memory (or for ``max_tile``) run in overlapping
  tiles whose outputs are cross-faded over the middle half of each overlap, so a network that
  sees no further than a quarter of the overlap gives exactly its untiled result;
- **out of memory**: the tile side is halved and the tile retried, down to ``min_tile``; then the
  call moves to the CPU copy of the network (built once, on first need), with a warning and a
  note in :class:`RunInfo` for the report;
- **concurrency**: the network is built once and shared; forwards hold a lock of this runtime
  only (none when the traits say the network is safe to share).

A call that is not an image forward (a detector with its own pre- and post-processing) runs
through :meth:`ModelRuntime.apply`: same device, lock and out-of-memory fallback. Each call
returns a :class:`RunInfo` (device, precision, tiles, notes) for the stage's report
(:meth:`ModelRuntime.record` merges a stage's calls). The arithmetic (padding, tile sides,
where tiles go and how they blend) is pure and lives in :mod:`restorer.runtime_plan`; the device
and precision choices in :mod:`restorer.runtime_device`; :class:`RunInfo` and the records built
from it in :mod:`restorer.runtime_record`. Their public names are re-exported here.

Images are numpy float32 (H, W, C) going in and out; what range they hold is the stage's
business (the runtime converts layouts, never values). torch is imported when a runtime is made.
"""

from __future__ import annotations

import logging
import threading
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

import numpy as np

from restorer.runtime_device import (DEVICE_CHOICES, check_precision, pick_device, pick_precision,
                                     resolve_device)
from restorer.runtime_plan import (ModelTraits, PadMode, pad_to, padded_size, smaller_tile,
                                   tile_side, tile_starts, tile_weights)
from restorer.runtime_record import RunInfo, merge_runs, record_of
from restorer.settings import PRECISIONS

if TYPE_CHECKING:
    import torch

__all__ = [
    # The runtime (this module).
    "ModelRuntime", "traits_from_descriptor",
    # Re-exported: device and precision (restorer.runtime_device, restorer.settings), how calls
    # ran (restorer.runtime_record), padding and tiles (restorer.runtime_plan).
    "DEVICE_CHOICES", "PRECISIONS", "pick_device", "pick_precision", "resolve_device",
    "check_precision", "RunInfo", "merge_runs", "record_of", "ModelTraits", "PadMode", "pad_to",
    "tile_starts", "tile_weights",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


def traits_from_descriptor(descriptor: Any, **overrides: Any) -> ModelTraits:
    """ModelTraits of a spandrel ModelDescriptor (channels, scale, size requirements, half
    precisions), with ``overrides`` (e.g. ``reach``, ``max_tile``) applied on top."""
    size = descriptor.size_requirements
    traits = ModelTraits(
        name=str(descriptor.architecture.name), input_channels=int(descriptor.input_channels),
        output_channels=int(descriptor.output_channels), scale=int(descriptor.scale),
        size_multiple=int(size.multiple_of), min_size=max(1, int(size.minimum)),
        fp16=bool(descriptor.supports_half), bf16=bool(descriptor.supports_bfloat16))
    return replace(traits, **overrides)


def _is_out_of_memory(torch: Any, error: BaseException) -> bool:
    if isinstance(error, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text
                                                or "can't allocate memory" in text)


def _available_ram() -> int | None:
    """Bytes of memory the system could give this process now (Linux), else None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


Forward = Callable[..., Any]
"""``forward(model, *tensors) -> tensor``: one forward pass, tensors (1, C, H, W)."""


@dataclass
class _Placed:
    """The network on one device, and the lock its forwards hold."""

    device: torch.device
    model: Any
    lock: threading.Lock | None = field(default=None)


class ModelRuntime:
    """One network, loaded once on its device, run with padding, tiling and fallbacks.

    ``build(device)`` loads the network on a ``torch.device`` (eval mode). ``forward(model,
    *tensors)`` runs it (default ``model(*tensors)``; e.g. a spandrel descriptor's call). The
    CPU copy for the out-of-memory fallback is built with ``build`` when first needed;
    ``fallback_device`` overrides where that is (None: no fallback; default: "cpu" unless the
    network is already on the CPU). A half ``precision`` the traits do not declare safe runs
    the network in fp32 (said in every :class:`RunInfo`); on a CPU it is refused.
    """

    def __init__(self, build: Callable[[torch.device], Any], traits: ModelTraits, *,
                 device: str = "auto", precision: str = "auto", forward: Forward | None = None,
                 fallback_device: str | None = "default") -> None:
        import torch

        self._torch = torch
        self.traits = traits
        self._build = build
        self._forward: Forward = forward or (lambda model, *tensors: model(*tensors))
        main = resolve_device(device)
        bf16 = main.type == "cuda" and torch.cuda.is_bf16_supported()
        self._notes: tuple[str, ...] = ()
        if precision in ("fp16", "bf16") and main.type == "cuda" and not getattr(traits, precision):
            self._notes = (f"{traits.name} is not declared safe in {precision}: ran in fp32",)
            precision = "fp32"
        self.precision = pick_precision(precision, main.type, traits, bf16_supported=bf16)
        self._main = self._place(main)
        if fallback_device == "default":
            fallback_device = None if main.type == "cpu" else "cpu"
        self._fallback_device = None if fallback_device is None else torch.device(fallback_device)
        self._fallback: _Placed | None = None
        self._fallback_lock = threading.Lock()

    @property
    def device(self) -> str:
        """Where the network runs, e.g. "cpu" or "cuda:0"."""
        return str(self._main.device)

    @property
    def model(self) -> Any:
        """The network on its main device (for stages that need its attributes)."""
        return self._main.model

    def record(self, runs: Sequence[RunInfo]) -> dict[str, Any]:
        """The report's record of how a stage's calls of this network ran (device, precision,
        tiles, notes; see :func:`merge_runs`); this runtime's device and precision with 0
        tiles when it did not run (e.g. nothing to do on a photo)."""
        merged = merge_runs(runs) or RunInfo(self.device, self.precision, 0, None, self._notes)
        return merged.as_dict()

    def _place(self, device: torch.device) -> _Placed:
        lock = None if self.traits.thread_safe else threading.Lock()
        return _Placed(device, self._build(device), lock)

    def run(self, *inputs: np.ndarray, tile: int | None = None) -> tuple[np.ndarray, RunInfo]:
        """The network's output for float32 (H, W, C_i) ``inputs`` (same H and W), as float32
        (H * scale, W * scale, C_out), and how it ran.

        ``tile``: tile side in px (None: the whole input when it fits the free memory and
        ``max_tile``). Raises MemoryError when even the CPU cannot hold the smallest tile.
        """
        height, width = inputs[0].shape[:2]
        if any(array.shape[:2] != (height, width) for array in inputs):
            raise ValueError("every input of a network must have the same height and width")
        traits = self.traits
        padded_h, padded_w = padded_size(traits, height, width)
        modes = traits.pad if len(traits.pad) == len(inputs) else traits.pad[:1] * len(inputs)
        padded = [pad_to(np.ascontiguousarray(a, dtype=np.float32), padded_h, padded_w, m)
                  for a, m in zip(inputs, modes)]
        notes: list[str] = list(self._notes)
        placed, precision = self._main, self.precision
        side = self._tile_side(placed.device, padded_h, padded_w, tile)
        while True:
            try:
                out, count = self._tiled(placed, precision, padded, side, notes)
                break
            except BaseException as error:  # only out-of-memory errors are handled here
                if not _is_out_of_memory(self._torch, error):
                    raise
                self._free(placed.device)
                current = side or max(padded_h, padded_w)
                smaller = smaller_tile(traits, current)
                if smaller is not None:
                    notes.append(f"out of memory on {placed.device} with tiles of {current} px: "
                                 f"retried with {smaller} px")
                    side = smaller
                    continue
                placed, precision = self._to_fallback(placed, f"tiles of {current} px", notes)
                side = self._tile_side(placed.device, padded_h, padded_w, tile)
        out = out[:height * traits.scale, :width * traits.scale]
        info = RunInfo(str(placed.device), precision, count, side, tuple(notes))
        return np.ascontiguousarray(out, dtype=np.float32), info

    def apply(self, step: Callable[[Any, torch.device], _T]) -> tuple[_T, RunInfo]:
        """``step(model, device)``'s result for a call that is not an image forward (e.g. a
        detector with its own pre- and post-processing), under this runtime's lock and
        ``torch.inference_mode()``; out of memory moves it to the fallback device."""
        notes: list[str] = list(self._notes)
        placed = self._main
        while True:
            try:
                with placed.lock or nullcontext(), self._torch.inference_mode():
                    result = step(placed.model, placed.device)
                return result, RunInfo(str(placed.device), "fp32", 1, None, tuple(notes))
            except BaseException as error:  # only out-of-memory errors are handled here
                if not _is_out_of_memory(self._torch, error):
                    raise
                self._free(placed.device)
                placed, _ = self._to_fallback(placed, "one piece", notes)

    def _to_fallback(self, placed: _Placed, what: str, notes: list[str]) -> tuple[_Placed, str]:
        """The fallback network (and its precision) after running out of memory on ``placed``;
        MemoryError when there is none (or ``placed`` is it)."""
        fallback = self._fallback_placed()
        if fallback is None or placed is fallback:
            raise MemoryError(f"{self.traits.name} ran out of memory even with {what}") from None
        note = (f"{self.traits.name}: out of memory on {placed.device}; ran on "
                f"{fallback.device} instead (slower)")
        log.warning("%s", note)
        notes.append(note)
        return fallback, "fp32"

    def _tile_side(self, device: torch.device, height: int, width: int,
                   asked: int | None) -> int | None:
        """The tile side to start with (None: one piece)."""
        budget = None if asked else self._memory_budget(device)
        return tile_side(self.traits, height, width, asked, budget)

    def _memory_budget(self, device: torch.device) -> int | None:
        """Bytes a forward may use: 60 % of the GPU's free memory, half of the free RAM."""
        torch = self._torch
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            return int(free * 0.6)
        if device.type == "cpu":
            free = _available_ram()
            return None if free is None else free // 2
        return None

    def _tiled(self, placed: _Placed, precision: str, inputs: Sequence[np.ndarray],
               side: int | None, notes: list[str]) -> tuple[np.ndarray, int]:
        """Run ``inputs`` (padded) whole or in tiles of ``side`` px; (output, tile count)."""
        height, width = inputs[0].shape[:2]
        if side is None:
            return self._forward_once(placed, precision, inputs, notes), 1
        scale, overlap = self.traits.scale, self.traits.overlap
        th, tw = min(side, height), min(side, width)
        ys, xs = tile_starts(height, th, overlap), tile_starts(width, tw, overlap)
        out: np.ndarray | None = None
        total = np.zeros((height * scale, width * scale, 1), np.float32)
        for y in ys:
            wy = np.repeat(tile_weights(y, th, height, overlap), scale)
            for x in xs:
                wx = np.repeat(tile_weights(x, tw, width, overlap), scale)
                result = self._forward_once(placed, precision,
                                            [a[y:y + th, x:x + tw] for a in inputs], notes)
                if out is None:
                    out = np.zeros((height * scale, width * scale, result.shape[2]), np.float32)
                weight = np.outer(wy, wx)[..., None]
                rows = slice(y * scale, (y + th) * scale)
                columns = slice(x * scale, (x + tw) * scale)
                out[rows, columns] += weight * result
                total[rows, columns] += weight
        assert out is not None
        out /= np.maximum(total, 1e-12)
        return out, len(ys) * len(xs)

    def _forward_once(self, placed: _Placed, precision: str, inputs: Sequence[np.ndarray],
                      notes: list[str]) -> np.ndarray:
        """One forward of (h, w, C) arrays -> (h * scale, w * scale, C_out) float32."""
        result = self._convert(placed, precision, inputs)
        if precision != "fp32" and not np.isfinite(result).all():
            note = f"{self.traits.name} overflowed in {precision}; redone in fp32"
            if note not in notes:
                notes.append(note)
            result = self._convert(placed, "fp32", inputs)
        return result

    def _convert(self, placed: _Placed, precision: str, inputs: Sequence[np.ndarray]) -> np.ndarray:
        torch = self._torch
        tensors = [torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]
                   .to(placed.device) for a in inputs]
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
        with placed.lock or nullcontext(), torch.inference_mode():
            if dtype is None:
                output = self._forward(placed.model, *tensors)
            else:
                with torch.autocast(device_type=placed.device.type, dtype=dtype):
                    output = self._forward(placed.model, *tensors)
            return output[0].float().permute(1, 2, 0).cpu().numpy()

    def _fallback_placed(self) -> _Placed | None:
        if self._fallback_device is None:
            return None
        with self._fallback_lock:
            if self._fallback is None:
                self._fallback = self._place(self._fallback_device)
            return self._fallback

    def _free(self, device: torch.device) -> None:
        if device.type == "cuda":
            self._torch.cuda.empty_cache()

