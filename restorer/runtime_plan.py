"""The arithmetic of restorer.runtime: what a network needs, padding, and where tiles go.

Pure numpy (no torch): :class:`ModelTraits` (what a network needs and tolerates), padding an
input to the network's size multiple (:func:`pad_to`, :func:`padded_size`), the tile side a
memory budget allows (:func:`tile_side`), where tiles start (:func:`tile_starts`) and how
neighbouring tiles are cross-faded (:func:`tile_weights`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["PadMode", "ModelTraits", "pad_to", "padded_size", "tile_side", "tile_starts",
           "tile_weights", "smaller_tile", "round_up", "round_down"]

PadMode = Literal["reflect", "edge", "zeros"]


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is at least ``value``."""
    return -(-value // multiple) * multiple


def round_down(value: int, multiple: int) -> int:
    """The largest multiple of ``multiple`` up to ``value``, at least ``multiple``."""
    return max(multiple, value // multiple * multiple)


@dataclass(frozen=True)
class ModelTraits:
    """What a network needs and tolerates (spandrel's ModelDescriptor vocabulary).

    ``size_multiple`` and ``min_size``: what the input's height and width must be (after
    padding). ``scale``: output size / input size. ``fp16`` / ``bf16``: half precisions that
    give the right answer. ``reach``: how many input pixels around a pixel its output depends
    on (the receptive field's radius; None when it is global, as in LaMa); tiles then overlap by
    ``4 * reach`` (at least ``min_overlap``). ``max_tile``: the largest tile side worth running
    (e.g. the size the network was trained at); None: as large as memory allows. ``min_tile``:
    the smallest tile side (a network that must see its whole input, e.g. an aligned face,
    sets it to that size: it is then never tiled). ``bytes_per_pixel``: memory one input
    pixel costs in a forward at fp32 (activations), used to size tiles from free memory.
    ``pad``: how each input is padded ("reflect", "edge", "zeros"). ``thread_safe``: forwards
    may run at once from several threads.
    """

    name: str
    input_channels: int = 3
    output_channels: int = 3
    scale: int = 1
    size_multiple: int = 1
    min_size: int = 1
    fp16: bool = False
    bf16: bool = False
    reach: int | None = 16
    min_overlap: int = 32
    max_tile: int | None = None
    min_tile: int = 128
    bytes_per_pixel: float = 4096.0
    pad: tuple[PadMode, ...] = ("reflect",)
    thread_safe: bool = False

    @property
    def overlap(self) -> int:
        """Pixels two neighbouring tiles share: four reaches (the cross-fade keeps the middle
        half), at least ``min_overlap``, rounded up to the size multiple."""
        wanted = max(self.min_overlap, 4 * (self.reach or 0))
        return round_up(wanted, self.size_multiple)


def padded_size(traits: ModelTraits, height: int, width: int) -> tuple[int, int]:
    """(height, width) padded up to the traits' size multiple and minimum."""
    return (max(round_up(height, traits.size_multiple), traits.min_size),
            max(round_up(width, traits.size_multiple), traits.min_size))


def pad_to(array: np.ndarray, height: int, width: int, mode: PadMode) -> np.ndarray:
    """(H, W, C) ``array`` padded at the bottom and right to (``height``, ``width``, C)."""
    pad_h, pad_w = height - array.shape[0], width - array.shape[1]
    if not pad_h and not pad_w:
        return array
    widths = ((0, pad_h), (0, pad_w), (0, 0))
    if mode == "zeros":
        return np.pad(array, widths)
    if mode == "reflect" and pad_h < array.shape[0] and pad_w < array.shape[1]:
        return np.pad(array, widths, mode="reflect")
    return np.pad(array, widths, mode="edge")


def tile_side(traits: ModelTraits, height: int, width: int, asked: int | None,
              budget: int | None) -> int | None:
    """The tile side to start with for a padded (``height``, ``width``) input (None: one piece).

    ``asked``: the side a caller asked for; else the side whose forward fits ``budget`` bytes
    (None: unknown), at least ``min_tile``, at most ``max_tile``.
    """
    if asked:
        side = round_down(max(int(asked), traits.min_size), traits.size_multiple)
    else:
        side = None
        if budget is not None:
            fits = int(math.sqrt(budget / traits.bytes_per_pixel))
            side = round_down(max(fits, traits.min_tile), traits.size_multiple)
        if traits.max_tile is not None:
            side = min(side or traits.max_tile, traits.max_tile)
    if side is None or side >= max(height, width):
        return None
    return max(side, round_up(traits.overlap + traits.size_multiple, traits.size_multiple))


def smaller_tile(traits: ModelTraits, current: int) -> int | None:
    """The tile side to retry with after running out of memory with ``current`` px tiles
    (half of it), or None when that is below what the network can be tiled at."""
    smaller = round_down(current // 2, traits.size_multiple)
    if max(traits.min_tile, traits.overlap + traits.size_multiple) <= smaller < current:
        return smaller
    return None


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles of ``tile`` px covering ``length`` px, neighbours sharing at least
    ``overlap`` px, the last ending at ``length`` (one tile when it fits)."""
    if tile >= length:
        return [0]
    step = tile - overlap
    count = math.ceil((length - tile) / step) + 1
    return [min(i * step, length - tile) for i in range(count)]


def tile_weights(start: int, tile: int, length: int, overlap: int) -> np.ndarray:
    """float32 (tile,) weights of a tile at ``start``: 0 in the quarter of the overlap next to a
    side that borders another tile, rising linearly over the middle half, 1 elsewhere. Where
    two tiles overlap by exactly ``overlap`` their weights sum to 1; the tiled output is divided
    by the sum anyway (the last tile may overlap more)."""
    position = np.arange(tile, dtype=np.float32)
    weight = np.ones(tile, np.float32)
    quarter, half = overlap / 4.0, max(overlap / 2.0, 1e-6)
    if start > 0:
        weight = np.minimum(weight, np.clip((position - quarter) / half, 0.0, 1.0))
    if start + tile < length:
        weight = np.minimum(weight, np.clip((tile - position - quarter) / half, 0.0, 1.0))
    return weight
