"""Learned deblurring with NAFNet (Chen et al., ECCV 2022; MIT), loaded through spandrel.

The published NAFNet-GoPro-width64 was trained on the GoPro data set (camera shake and object
motion blur made by averaging video frames; 33.71 dB on its test set). It complements
``deblur.rl``, whose Gaussian point-spread function models defocus and soft lenses but not
the directional smear of a hand-held or long exposure, which a Gaussian cannot undo. Why NAFNet
rather than DPIR (DRUNet as a plug-and-play prior with the PSF ``deblur.rl`` estimates): one
forward pass instead of the eight DPIR's deblurring schedule runs, on a CPU Space the
difference between about 32 s and about 5 minutes per megapixel (weights/nafnet.md).

The whole photo (RGB, [0, 1]) runs through :class:`restorer.runtime.ModelRuntime`: tiles sized
from the free memory (or ``tile``), padded to 16 px (NAFNet's four stride-2 levels),
overlapping by 64 px and cross-faded, so a 24 MP scan runs in bounded memory; CUDA with bf16
autocast (spandrel declares bf16 safe for NAFNet, fp16 not), else the CPU in fp32.
``strength`` blends the result with the input (1: NAFNet's output). A grey photo stays grey
(restorer.ops.keep_grey); sepia photos get their tone back from the pipeline. ``run`` keeps no
state on the stage.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

import numpy as np

from restorer.ops import keep_grey
from restorer.published import load_descriptor, model_record
from restorer.stage_ids import DEBLUR_NAFNET
from restorer.stages.base import Option, ProgressFn, StageKind, StageOutput, StageSpec, Work

if TYPE_CHECKING:
    from restorer.weights import WeightEntry

__all__ = ["WEIGHT_ID", "ARCHITECTURE", "NafnetDeblur"]

log = logging.getLogger(__name__)

WEIGHT_ID = "nafnet_gopro_w64"
"""Manifest id of NAFNet-GoPro-width64.pth."""
ARCHITECTURE = "NAFNet"
"""The architecture spandrel must report for the file."""


class NafnetDeblur:
    """Stage: NAFNet deblurring of the whole photo, tiled.

    ``weights``: the verified NAFNet-GoPro-width64.pth (any NAFNet file spandrel reads);
    ``entry``: its manifest entry (revision and sha256 go into the report).
    """

    spec: ClassVar[StageSpec] = StageSpec(
        id=DEBLUR_NAFNET,
        kind=StageKind.DEBLUR,
        method="nafnet",
        title="NAFNet (GoPro, published)",
        description="A network trained on camera-shake and motion blur (Chen et al. 2022, MIT); "
                    "deblur.rl handles Gaussian defocus.",
        weights=(WEIGHT_ID,),
        options={
            "strength": Option.number(1.0, 0.0, 1.0, help="share of the correction applied"),
            "tile": Option.integer(0, 0, 4096,
                                   help="tile side in px (0: sized from the free memory)"),
        },
    )

    def __init__(self, weights: Path, *, entry: WeightEntry | None = None,
                 device: str = "auto", precision: str = "auto") -> None:
        from restorer.runtime import ModelRuntime, traits_from_descriptor

        self.entry = entry
        path = Path(weights)
        first = [self._descriptor(path)]
        # NAFNet pads to 16 itself; tiles of 16 multiples avoid that. Its channel attention
        # pools each tile globally (no finite reach): 64 px overlaps, cross-faded. Measured
        # here: about 3 to 4 kB per pixel at fp32 on the CPU (bench/pretrained.py).
        traits = traits_from_descriptor(first[0], size_multiple=16, reach=None, min_overlap=64,
                                        max_tile=2048, bytes_per_pixel=4096.0)

        def build(target: Any) -> Any:
            descriptor = first.pop() if first else self._descriptor(path)
            return descriptor.model.to(target).eval()

        self._runtime = ModelRuntime(build, traits, device=device, precision=precision)
        log.info("deblur.nafnet loaded from %s on %s (%s)", path.name, self._runtime.device,
                 self._runtime.precision)

    def _descriptor(self, path: Path) -> Any:
        return load_descriptor(path, weight_id=WEIGHT_ID, architecture=ARCHITECTURE,
                               purpose="Restoration", input_channels=3, entry=self.entry)

    @property
    def device(self) -> str:
        """Where NAFNet runs, e.g. "cpu" or "cuda:0"."""
        return self._runtime.device

    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        """Deblur ``work.image``: float32 (H, W, 3) in [0, 1], same size. ``info``: strength and
        model, revision, sha256, device, precision and tiles."""
        strength = float(options["strength"])
        if strength <= 0.0:
            return StageOutput(image=work.image, info={"strength": 0.0, "changed": False})
        progress(0.0, "deblurring")
        out, run = self._runtime.run(work.image, tile=int(options["tile"]) or None)
        np.clip(out, 0.0, 1.0, out=out)
        out = keep_grey(work.image, out)
        if strength < 1.0:
            out = work.image + np.float32(strength) * (out - work.image)
        progress(1.0, "deblurred")
        return StageOutput(image=out.astype(np.float32, copy=False), info={
            "strength": strength, "changed": True,
            **model_record(WEIGHT_ID, self.entry, ARCHITECTURE, run)})
