"""Inpainting with Big-LaMa (Suvorov et al., WACV 2022; Apache-2.0), loaded through spandrel.

For a photo (float32 (H, W, 3) RGB in [0, 1]) and a defect mask (bool (H, W)):

1. **Fill by size.** Each connected region of the mask is measured (its width: twice the
   largest distance from a masked pixel to the nearest unmasked one, less one). Regions no
   wider than ``classical_width`` px go to Telea (``inpaint.telea``): on 1-5 px cracks the
   classical fills are within a fraction of a dB of the truth given the true mask
   (bench/inpainting.py), while LaMa's advantage in its paper lies on wide masks; wider holes
   and tears go to LaMa. The threshold is an option; where exactly LaMa starts to win is to
   be checked with the real weights (bench/pretrained.py).
2. **Crops.** The wide regions are grouped into boxes with ``margin`` px of photo around
   them (``restorer.ops.mask_regions``). A box is shrunk so its long side is at most
   ``working_side`` (never enlarged), padded to LaMa's size multiple (8, by the runtime), filled,
   and scaled back; only masked pixels are written, at full resolution. The crop's LaMa mask
   holds every defect pixel in it (thin ones too), so no damaged pixel is used as context.
3. **Large masks** (a box longer than ``working_side * max_downscale``, e.g. a crack web or a
   tear across a scan) are filled in overlapping windows of that size: cells of the box, in
   raster order, each filled in a window reaching ``margin`` px around it over the photo as
   filled so far, so each cell continues what its neighbours filled (no seams).
4. **Time.** With a ``time_budget`` (Auto sets the seconds left of its budget), windows are
   filled while the elapsed time plus the next window's expected time fits; the rest of the
   wide regions go to Telea, and ``info`` says so.

The network runs through :class:`restorer.runtime.ModelRuntime` (CUDA with bf16 where spandrel
declares it safe, which it does for LaMa; fp16 it does not; CPU otherwise). ``run`` keeps no
state on the stage and may run in several threads.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

import cv2
import numpy as np

from restorer.costs import COSTS
from restorer.errors import PlanError
from restorer.ops import Box, keep_grey, mask_regions
from restorer.published import load_descriptor, model_record
from restorer.stage_ids import INPAINT_LAMA
from restorer.stages.base import Option, ProgressFn, StageKind, StageOutput, StageSpec, Work
from restorer.stages.inpaint import TeleaInpainter

if TYPE_CHECKING:
    from restorer.runtime import RunInfo
    from restorer.weights import WeightEntry

__all__ = ["WEIGHT_ID", "ARCHITECTURE", "LamaInpainter", "region_widths", "windows"]

log = logging.getLogger(__name__)

WEIGHT_ID = "big_lama"
"""Manifest id of Big-LaMa (big-lama.pt, TorchScript)."""
ARCHITECTURE = "LaMa"
"""The architecture spandrel must report for the file."""


def region_widths(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected regions of bool (H, W) ``mask`` (8-connected): int32 (H, W) labels (0 = none)
    and float (N + 1,) width in px of each label (2 * largest inner distance - 1; index 0: 0)."""
    mask_u8 = mask.astype(np.uint8)
    count, labels = cv2.connectedComponents(mask_u8, connectivity=8)
    distance = cv2.distanceTransform(mask_u8, cv2.DIST_L2, 5)
    widths = np.zeros(count, np.float64)
    np.maximum.at(widths, labels.ravel(), distance.ravel())
    widths = np.where(widths > 0, 2.0 * widths - 1.0, 0.0)
    return labels, widths


def windows(box: Box, shape: tuple[int, int], side: int, margin: int) -> list[tuple[Box, Box]]:
    """(cell, window) pairs covering ``box`` (y0, y1, x0, x1) of a photo of ``shape``.

    One pair (box, box) when the box's long side is at most ``side``; otherwise the box is cut
    into a grid of cells of at most ``side - 2 * margin`` px, each with a window reaching
    ``margin`` px around it (clipped to the photo), in raster order.
    """
    y0, y1, x0, x1 = box
    if max(y1 - y0, x1 - x0) <= side:
        return [(box, box)]
    core = max(side - 2 * margin, side // 2)
    height, width = shape
    pairs = []
    rows = int(np.ceil((y1 - y0) / core))
    cols = int(np.ceil((x1 - x0) / core))
    for row in range(rows):
        for col in range(cols):
            cy0, cx0 = y0 + row * core, x0 + col * core
            cell = (cy0, min(y1, cy0 + core), cx0, min(x1, cx0 + core))
            window = (max(0, cell[0] - margin), min(height, cell[1] + margin),
                      max(0, cell[2] - margin), min(width, cell[3] + margin))
            pairs.append((cell, window))
    return pairs


class LamaInpainter:
    """Stage: Big-LaMa on wide holes and tears, Telea on thin cracks.

    ``weights``: the verified big-lama.pt (or any file spandrel reads as LaMa); ``entry``: its
    manifest entry (its revision and sha256 go into the report). ``device``: "auto", "cpu",
    "cuda", "cuda:N" or "mps".
    """

    spec: ClassVar[StageSpec] = StageSpec(
        id=INPAINT_LAMA,
        kind=StageKind.INPAINT,
        method="lama",
        title="LaMa (Big-LaMa, published)",
        description="Large-mask inpainting with Fourier convolutions (Suvorov et al. 2022, "
                    "Apache-2.0) for wide holes and tears; thin cracks go to Telea.",
        requires=frozenset({"image", "mask"}),
        weights=(WEIGHT_ID,),
        options={
            "working_side": Option.integer(512, 64, 2048,
                                           help="long side in px at which LaMa fills a crop"),
            "margin": Option.integer(128, 8, 1024,
                                     help="px of photo around each region in its crop"),
            "classical_width": Option.integer(
                5, 0, 64, help="regions at most this wide (px) are filled by Telea (0: none)"),
            "max_downscale": Option.number(
                4.0, 1.0, 16.0, help="larger crops are filled in overlapping windows"),
            "time_budget": Option.number(
                None, 0.0, 3600.0, optional=True,
                help="seconds LaMa may take (null: no limit); the rest goes to Telea"),
        },
    )

    def __init__(self, weights: Path, *, entry: WeightEntry | None = None,
                 device: str = "auto", precision: str = "auto") -> None:
        from restorer.runtime import ModelRuntime, traits_from_descriptor

        self.entry = entry
        path = Path(weights)
        first = [self._descriptor(path)]
        # LaMa's Fourier units see the whole input: no tiling of a crop (it is at most
        # working_side long); ~1.8 kB per pixel at fp32 on the CPU (2.2 GB peak at 1024 px).
        traits = traits_from_descriptor(first[0], reach=None, pad=("reflect", "zeros"),
                                        bytes_per_pixel=1800.0)

        def build(target: Any) -> Any:
            descriptor = first.pop() if first else self._descriptor(path)
            return descriptor.model.to(target).eval()

        self._runtime = ModelRuntime(build, traits, device=device, precision=precision)
        self._telea = TeleaInpainter()
        log.info("inpaint.lama loaded from %s on %s (%s)", path.name, self._runtime.device,
                 self._runtime.precision)

    def _descriptor(self, path: Path) -> Any:
        return load_descriptor(path, weight_id=WEIGHT_ID, architecture=ARCHITECTURE,
                               purpose="Inpainting", input_channels=3, entry=self.entry)

    @property
    def device(self) -> str:
        """Where LaMa runs, e.g. "cpu" or "cuda:0"."""
        return self._runtime.device

    def fill(self, crop: np.ndarray, holes: np.ndarray, side: int) -> tuple[np.ndarray, RunInfo]:
        """LaMa's fill of float32 (h, w, 3) ``crop`` where bool (h, w) ``holes``, computed with
        the long side at most ``side`` px; float32 (h, w, 3) in [0, 1] (whole crop)."""
        height, width = holes.shape
        scale = min(1.0, side / max(height, width))
        small, small_holes = crop, holes.astype(np.float32)
        if scale < 1.0:
            size = (max(16, round(width * scale)), max(16, round(height * scale)))
            small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
            # Any output pixel that overlaps a hole is a hole: no damaged pixel stays as context.
            small_holes = (cv2.resize(small_holes, size, interpolation=cv2.INTER_AREA) > 0)
            small_holes = small_holes.astype(np.float32)
        filled, run = self._runtime.run(np.ascontiguousarray(small, dtype=np.float32),
                                        small_holes[..., None])
        if scale < 1.0:
            filled = cv2.resize(filled, (width, height), interpolation=cv2.INTER_CUBIC)
        return np.clip(filled, 0.0, 1.0), run

    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        """Fill ``work.mask``; only masked pixels change. ``info``: regions by method, windows,
        working size, what went to Telea for time, and model, revision, sha256, device,
        precision and tiles."""
        if work.mask is None:
            raise PlanError(f"{self.spec.title} needs a defect mask: run detection or give a mask")
        if not work.mask.any():
            return StageOutput(image=work.image, info={"regions": 0, "lama_regions": 0})
        began = time.perf_counter()
        side, margin = int(options["working_side"]), int(options["margin"])
        budget = options["time_budget"]
        mask = work.mask
        labels, widths = region_widths(mask)
        wide_labels = np.flatnonzero(widths > int(options["classical_width"]))
        wide = np.isin(labels, wide_labels) & mask
        out = work.image.copy()
        remaining = mask.copy()  # defect pixels not filled yet
        boxes = mask_regions(wide, margin=margin)
        pairs = [p for box in boxes
                 for p in windows(box, mask.shape, round(side * float(options["max_downscale"])),
                                  margin)]
        rate = (COSTS[INPAINT_LAMA].cpu_s_per_mp
                if self.device == "cpu" else COSTS[INPAINT_LAMA].gpu_s_per_mp)
        done, last, messages = 0, None, []
        lama_began = time.perf_counter()
        for index, ((cy0, cy1, cx0, cx1), (wy0, wy1, wx0, wx1)) in enumerate(pairs):
            holes = remaining[wy0:wy1, wx0:wx1]
            cell = remaining[cy0:cy1, cx0:cx1]
            if not cell.any():
                continue
            work_mp = min(1.0, side / max(holes.shape)) ** 2 * holes.size / 1e6
            now = time.perf_counter()
            # The next crop costs what the previous ones took on average, else the declared rate.
            expected = (now - lama_began) / done if done else (rate or 0.0) * work_mp
            if budget is not None and now - began + expected > budget:
                left = sum(remaining[c0:c1, d0:d1].any() for (c0, c1, d0, d1), _ in pairs[index:])
                messages.append(f"{left} of {len(pairs)} LaMa crop(s) were filled by Telea to "
                                f"stay within the {budget:g} s budget")
                break
            filled, last = self.fill(out[wy0:wy1, wx0:wx1], holes, side)
            target = out[cy0:cy1, cx0:cx1]
            core = filled[cy0 - wy0:cy1 - wy0, cx0 - wx0:cx1 - wx0]
            target[cell] = core[cell]
            cell[:] = False
            done += 1
            progress(0.9 * (index + 1) / len(pairs), f"LaMa crop {index + 1} of {len(pairs)}")
        if remaining.any():
            out = self._telea.run(Work(image=out, mask=remaining), {"radius": 3},
                                  lambda f, m: progress(0.9 + 0.1 * f, f"Telea: {m}")).image
        progress(1.0, "filled")
        info: dict[str, Any] = {
            "regions": int(len(widths) - 1), "lama_regions": int(len(wide_labels)),
            "classical_regions": int(len(widths) - 1 - len(wide_labels)),
            "lama_crops": done, "crops_planned": len(pairs), "working_side": side,
            "telea_pixels": int(remaining.sum()), "messages": messages,
        }
        if last is not None:
            info.update(model_record(WEIGHT_ID, self.entry, ARCHITECTURE, last))
        for message in messages:
            log.info("inpaint.lama: %s", message)
        return StageOutput(image=keep_grey(work.image, out, work.mask), info=info)
