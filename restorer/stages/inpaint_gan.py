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
safetensors file the weight store has verified; its width is read from the weights. Inference
runs under ``torch.inference_mode()`` and a lock (one forward at a time per stage, so two
threads always get the same result as one); on the CPU results are bit-for-bit repeatable.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np
from safetensors import SafetensorError

from restorer.backends import resolve_device, torch_stack
from restorer.errors import PlanError, WeightsError
from restorer.ops import keep_grey
from restorer.stage_ids import INPAINT_GAN
from restorer.stages.base import Option, ProgressFn, StageKind, StageOutput, StageSpec, Work
from restorer.stages.inpaint import NavierStokesInpainter
from restorer.weights import load_safetensors

__all__ = ["LearnedInpainter", "WEIGHT_ID", "tile_boxes"]

log = logging.getLogger(__name__)

WEIGHT_ID = "inpaint_gan"
"""Manifest id of the shipped reconstruction network."""

Box = tuple[int, int, int, int]  # y0, y1, x0, x1 (half-open)


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

    def __init__(self, weights: Path, *, device: str = "auto", tile: int = 256,
                 context: int = 32) -> None:
        torch, _ = torch_stack()
        from restorer.nets.inpaint_gan import load_reconstructor

        self._torch = torch
        self.device = resolve_device(device)
        try:
            network = load_reconstructor(load_safetensors(Path(weights)))
        except (ValueError, OSError, SafetensorError) as error:
            raise WeightsError(f"{weights} is not a usable inpainting network ({error}); "
                               f"fetch it again with 'python -m restorer weights pull "
                               f"{WEIGHT_ID}'") from None
        self._network = network.to(self.device)
        self.width = int(network.body[0].out_channels)
        self.tile, self.context = tile, context
        self._prefill = NavierStokesInpainter()
        self._lock = threading.Lock()
        log.info("inpaint.gan loaded from %s on %s (width %d)", weights, self.device, self.width)

    def refine(self, prefilled: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Network output for one window: float32 (h, w, 3) pre-filled, bool (h, w) mask.

        Returns float32 (h, w, 3) in (0, 1) for the whole window (callers keep the holes).
        """
        torch = self._torch
        height, width = mask.shape
        pad_h, pad_w = -height % 8, -width % 8
        image = np.pad(prefilled, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        holes = np.pad(mask, ((0, pad_h), (0, pad_w)))
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
        m = torch.from_numpy(holes.astype(np.float32))[None, None]
        with self._lock, torch.inference_mode():
            out = self._network(x.to(self.device), m.to(self.device))
            result = out[0, :, :height, :width].permute(1, 2, 0).float().cpu().numpy()
        return np.ascontiguousarray(result, dtype=np.float32)

    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        if work.mask is None:
            raise PlanError(f"{self.spec.title} needs a defect mask: run detection or give a mask")
        if not work.mask.any():
            return StageOutput(image=work.image, info={"regions": 0, "tiles": 0})
        prefill = self._prefill.run(work, {"radius": options["radius"]},
                                    lambda f, m: progress(0.2 * f, f"pre-fill: {m}"))
        prefilled = prefill.image
        out = work.image.copy()
        boxes = tile_boxes(work.mask, self.tile, self.context)
        for index, ((y0, y1, x0, x1), (wy0, wy1, wx0, wx1)) in enumerate(boxes):
            refined = self.refine(prefilled[wy0:wy1, wx0:wx1], work.mask[wy0:wy1, wx0:wx1])
            core = refined[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0]
            holes = work.mask[y0:y1, x0:x1]
            out[y0:y1, x0:x1][holes] = np.clip(core[holes], 0.0, 1.0)
            progress(0.2 + 0.8 * (index + 1) / len(boxes), f"tile {index + 1} of {len(boxes)}")
        return StageOutput(image=keep_grey(work.image, out, work.mask),
                           info={"regions": prefill.info["regions"], "tiles": len(boxes)})
