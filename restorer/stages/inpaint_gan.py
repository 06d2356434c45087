"""Learned inpainting: seed paper 000's reconstruction network on a Navier-Stokes pre-fill.

For a photo (float32 (H, W, 3) RGB in [0, 1]) and a defect mask (bool (H, W)):

1. **Pre-fill** every masked region with Navier-Stokes, exactly as ``inpaint.ns`` does (crops
   around each region, OpenCV on 16-bit channels).
2. **Tiles**: the photo is cut into ``tile`` x ``tile`` cores; only cores holding masked
   pixels are processed, each with ``context`` pixels of the photo around it, padded
   (edge values) at the bottom/right to a multiple of 8 (the network pools three times). A scan with thin
   cracks therefore costs about (number of tiles the cracks cross) x (tile + 2 context)^2.
3. **Paste back** only the masked pixels of each core. Every other pixel of the input is
   returned bit-identical; every masked pixel is written exactly once (no seams from
   overlapping tiles, no order effects).

The network (:mod:`restorer.nets.inpaint_gan`) is loaded once, in the constructor, from a
safetensors file the weight store has verified; its width is read from the weights. It runs
through :mod:`restorer.runtime` (device, fp16 autocast on CUDA, padding of each window to a
multiple of 8: edge values for the photo, zeros for the mask; out-of-memory fallback to the
CPU), one forward at a time per stage, so two threads always get the same result as one; on
the CPU results are bit-for-bit repeatable. How it ran is the ``runtime`` of the stage's info.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np
from safetensors import SafetensorError

from restorer.errors import PlanError, WeightsError
from restorer.ops import keep_grey
from restorer.runtime_plan import ModelTraits
from restorer.stage_ids import INPAINT_GAN
from restorer.stages.base import Option, ProgressFn, StageKind, StageOutput, StageSpec, Work
from restorer.stages.inpaint import NavierStokesInpainter
from restorer.weights import load_safetensors

__all__ = ["LearnedInpainter", "WEIGHT_ID", "TRAITS", "tile_boxes"]

log = logging.getLogger(__name__)

WEIGHT_ID = "inpaint_gan"
"""Manifest id of the shipped reconstruction network."""

Box = tuple[int, int, int, int]  # y0, y1, x0, x1 (half-open)

TRAITS = ModelTraits(name="inpaint.gan reconstructor", input_channels=4, output_channels=3,
                     size_multiple=8, min_tile=1024, bytes_per_pixel=8192.0,
                     pad=("edge", "zeros"), fp16=True)
"""The network pools three times (multiple of 8); its input is one window of the stage (at
most tile + 2 context px), never tiled by the runtime; its weights ship in fp16."""


def tile_boxes(mask: np.ndarray, tile: int, context: int) -> list[tuple[Box, Box]]:
    """(core, window) boxes of the ``tile``-px grid cells of bool (H, W) ``mask`` with holes.

    Cores partition the photo; each window is its core grown by ``context`` px (clipped).
    """
    height, width = mask.shape
    boxes = []
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(height, y0 + tile), min(width, x0 + tile)
            if mask[y0:y1, x0:x1].any():
                window = (max(0, y0 - context), min(height, y1 + context),
                          max(0, x0 - context), min(width, x1 + context))
                boxes.append(((y0, y1, x0, x1), window))
    return boxes


class LearnedInpainter:
    """Stage: the adversarially trained reconstruction network on a Navier-Stokes pre-fill.

    ``weights``: a verified safetensors file of :class:`Reconstructor` weights (fp16 or fp32).
    ``device``: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N". ``tile`` and
    ``context``: see the module docstring.
    """

    spec: ClassVar[StageSpec] = StageSpec(
        id=INPAINT_GAN,
        kind=StageKind.INPAINT,
        method="gan",
        title="Learned (GAN)",
        description="Navier-Stokes pre-fill refined by a convolutional network trained against "
                    "a global and a local critic (seed paper 000); trained here on faces and "
                    "natural photos.",
        requires=frozenset({"image", "mask"}),
        weights=(WEIGHT_ID,),
        options={"radius": Option.integer(3, 1, 25, help="pre-fill radius in px")},
    )

    def __init__(self, weights: Path, *, device: str = "auto", precision: str = "auto",
                 tile: int = 256, context: int = 32) -> None:
        from restorer.nets.inpaint_gan import load_reconstructor
        from restorer.runtime import ModelRuntime

        try:
            tensors = load_safetensors(Path(weights))
            network = load_reconstructor(tensors)
        except (ValueError, OSError, SafetensorError) as error:
            raise WeightsError(f"{weights} is not a usable inpainting network ({error}); "
                               f"fetch it again with 'python -m restorer weights pull "
                               f"{WEIGHT_ID}'") from None
        first = [network]

        def build(target: Any) -> Any:
            return (first.pop() if first else load_reconstructor(tensors)).to(target)

        self.width = int(network.body[0].out_channels)
        self._runtime = ModelRuntime(build, TRAITS, device=device, precision=precision)
        self.tile, self.context = tile, context
        self._prefill = NavierStokesInpainter()
        log.info("inpaint.gan loaded from %s on %s (width %d)", weights, self.device, self.width)

    @property
    def device(self) -> str:
        """Where the network runs, e.g. "cpu" or "cuda:0"."""
        return self._runtime.device

    def refine(self, prefilled: np.ndarray, mask: np.ndarray,
               runs: list[Any] | None = None) -> np.ndarray:
        """Network output for one window: float32 (h, w, 3) pre-filled, bool (h, w) mask.

        Returns float32 (h, w, 3) in (0, 1) for the whole window (callers keep the holes);
        how it ran is appended to ``runs`` when given.
        """
        result, run = self._runtime.run(prefilled, mask.astype(np.float32)[..., None])
        if runs is not None:
            runs.append(run)
        return result

    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        if work.mask is None:
            raise PlanError(f"{self.spec.title} needs a defect mask: run detection or give a mask")
        if not work.mask.any():
            return StageOutput(image=work.image, info={
                "regions": 0, "tiles": 0, "runtime": self._runtime.record([])})
        prefill = self._prefill.run(work, {"radius": options["radius"]},
                                    lambda f, m: progress(0.2 * f, f"pre-fill: {m}"))
        prefilled = prefill.image
        out = work.image.copy()
        boxes = tile_boxes(work.mask, self.tile, self.context)
        runs: list[Any] = []
        for index, ((y0, y1, x0, x1), (wy0, wy1, wx0, wx1)) in enumerate(boxes):
            refined = self.refine(prefilled[wy0:wy1, wx0:wx1], work.mask[wy0:wy1, wx0:wx1], runs)
            core = refined[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0]
            holes = work.mask[y0:y1, x0:x1]
            out[y0:y1, x0:x1][holes] = np.clip(core[holes], 0.0, 1.0)
            progress(0.2 + 0.8 * (index + 1) / len(boxes), f"tile {index + 1} of {len(boxes)}")
        return StageOutput(image=keep_grey(work.image, out, work.mask),
                           info={"regions": prefill.info["regions"], "tiles": len(boxes),
                                 "runtime": self._runtime.record(runs)})
