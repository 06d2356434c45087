"""Classical inpainting: OpenCV Navier-Stokes and Telea, scikit-image biharmonic.

All inpainters share one strategy: work on a crop around each masked region (with enough
context for the method), and write back only the masked pixels, so a large scan with thin
cracks costs little and unmasked pixels are never touched.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import cv2
import numpy as np

from restorer.errors import PlanError
from restorer.ops import mask_regions
from restorer.stage_ids import INPAINT_BIHARMONIC, INPAINT_NS, INPAINT_TELEA
from restorer.stages.base import Option, ProgressFn, StageKind, StageOutput, StageSpec, Work

__all__ = ["CropInpainter", "NavierStokesInpainter", "TeleaInpainter", "BiharmonicInpainter",
           "inpaint_regions"]


def inpaint_regions(
    image: np.ndarray,
    mask: np.ndarray,
    fill,
    *,
    margin: int,
    progress: ProgressFn | None = None,
) -> tuple[np.ndarray, int]:
    """Apply ``fill(crop, mask_crop) -> crop`` around each region of ``mask``.

    image float32 (H, W, 3) [0, 1]; mask bool (H, W). Returns a new float32 (H, W, 3) image
    equal to ``image`` outside ``mask``, and the number of regions filled.
    """
    out = image.copy()
    boxes = mask_regions(mask, margin=margin)
    for index, (y0, y1, x0, x1) in enumerate(boxes):
        crop_mask = mask[y0:y1, x0:x1]
        filled = fill(np.ascontiguousarray(image[y0:y1, x0:x1]), crop_mask)
        region = out[y0:y1, x0:x1]
        region[crop_mask] = np.clip(filled[crop_mask], 0.0, 1.0)
        if progress is not None:
            progress((index + 1) / len(boxes), f"filled region {index + 1} of {len(boxes)}")
    return out, len(boxes)


class CropInpainter:
    """Base of the classical inpainters: subclasses implement ``fill`` on one crop."""

    spec: ClassVar[StageSpec]
    #: context around each region, in multiples of the inpainting radius (at least 8 px).
    context: ClassVar[int] = 4

    def fill(self, crop: np.ndarray, mask: np.ndarray, options: Mapping[str, Any]) -> np.ndarray:
        """Fill ``mask`` (bool (h, w)) in ``crop`` (float32 (h, w, 3)); return float32 (h, w, 3)."""
        raise NotImplementedError

    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        if work.mask is None:
            raise PlanError(f"{self.spec.title} needs a defect mask: run detection or give a mask")
        if not work.mask.any():
            return StageOutput(image=work.image, info={"regions": 0})
        margin = max(8, self.context * int(options.get("radius", 0)))
        out, regions = inpaint_regions(work.image, work.mask,
                                       lambda c, m: self.fill(c, m, options),
                                       margin=margin, progress=progress)
        return StageOutput(image=out, info={"regions": regions})


class _OpenCVInpainter(CropInpainter):
    flag: ClassVar[int]

    def fill(self, crop: np.ndarray, mask: np.ndarray, options: Mapping[str, Any]) -> np.ndarray:
        # OpenCV inpaints more than 8 bits only one channel at a time, and its Telea gives
        # wrong values on float32 input: use 16-bit channels (steps of 1/65535).
        # One channel at a time, so a crop as large as a 24 MP scan needs few temporaries.
        mask_u8 = mask.astype(np.uint8)
        radius = float(options["radius"])
        out = np.empty(crop.shape, np.float32)
        for c in range(3):
            channel = np.clip(crop[..., c], 0.0, 1.0)
            channel *= 65535.0
            channel += 0.5
            out[..., c] = cv2.inpaint(channel.astype(np.uint16), mask_u8, radius, self.flag)
        out /= np.float32(65535.0)
        return out


class NavierStokesInpainter(_OpenCVInpainter):
    """Stage: Bertalmio et al.'s Navier-Stokes inpainting (OpenCV)."""

    flag = cv2.INPAINT_NS
    spec = StageSpec(
        id=INPAINT_NS,
        kind=StageKind.INPAINT,
        method="ns",
        title="Navier-Stokes",
        description="Fluid-dynamics propagation of the surrounding isophotes (OpenCV).",
        requires=frozenset({"image", "mask"}),
        options={"radius": Option.integer(3, 1, 25, help="neighbourhood radius in px")},
    )


class TeleaInpainter(_OpenCVInpainter):
    """Stage: Telea's fast marching inpainting (OpenCV)."""

    flag = cv2.INPAINT_TELEA
    spec = StageSpec(
        id=INPAINT_TELEA,
        kind=StageKind.INPAINT,
        method="telea",
        title="Telea",
        description="Fast marching from the boundary inwards (OpenCV).",
        requires=frozenset({"image", "mask"}),
        options={"radius": Option.integer(3, 1, 25, help="neighbourhood radius in px")},
    )


class BiharmonicInpainter(CropInpainter):
    """Stage: biharmonic (smooth) inpainting from scikit-image."""

    spec = StageSpec(
        id=INPAINT_BIHARMONIC,
        kind=StageKind.INPAINT,
        method="biharmonic",
        title="Biharmonic",
        description="Smoothest surface through the boundary (scikit-image).",
        requires=frozenset({"image", "mask"}),
        options={},
    )
    context = 4

    def fill(self, crop: np.ndarray, mask: np.ndarray, options: Mapping[str, Any]) -> np.ndarray:
        from skimage.restoration import inpaint_biharmonic  # imports SciPy: only when used

        return inpaint_biharmonic(crop, mask, channel_axis=-1).astype(np.float32)
