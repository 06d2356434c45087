"""Scratch detection with the published network of "Bringing Old Photos Back to Life", united
with ``detect.segnet``.

The network (Wan et al., CVPR 2020; MIT; :mod:`restorer.nets.bopbtl_unet`) was trained by its
authors on real old photos with hand-drawn scratch masks (and synthetic scratches), so it knows
real damage that ``detect.segnet``, trained here on synthetic damage only, has never seen. Its
file ``FT_Epoch_latest.pt`` is a torch checkpoint whose ``model_state`` is the state dict; it
is read with ``torch.load(weights_only=True)`` (no code runs) after the weight store has
checked its sha256, and refused with a message when its keys or shapes are not that U-Net's.

Steps for a photo (float32 (H, W, 3) RGB in [0, 1]): its luminance (the authors convert to
grey with PIL's ITU-R 601 weights, as :func:`restorer.ops.luminance` does), scaled to [-1, 1],
downscaled (area) to at most ``work_mp`` megapixels (the authors run it at full size; 1 MP
bounds its cost on a CPU), run through :class:`restorer.runtime.ModelRuntime` (padded to 16
px, tiled with overlap on large inputs); sigmoid, thresholded at the authors' 0.4 (moved by
``sensitivity`` as the other detectors' thresholds are), scaled back. With ``fusion``
"union" (the default) the result is united with ``detect.segnet``'s mask: the two detectors
find different damage (real scratches; synthetic-like cracks, spots and dust), and no real
photos with true masks exist to fit a finer fusion (weights/bopbtl_scratch.md says what such a
measurement would need). ``run`` keeps no state on the stage.
"""

from __future__ import annotations

import logging
import math
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

import cv2
import numpy as np

from restorer.errors import WeightsError
from restorer.ops import luminance
from restorer.published import model_record
from restorer.stage_ids import DETECT_SCRATCH
from restorer.stages.base import Option, ProgressFn, StageKind, StageOutput, StageSpec, Work
from restorer.stages.detect_learned import SegmentationDetector, threshold_for
from restorer.weights import load_torch_checkpoint

if TYPE_CHECKING:
    from restorer.weights import WeightEntry

__all__ = ["WEIGHT_ID", "ARCHITECTURE", "THRESHOLD", "ScratchDetector", "load_scratch_unet"]

log = logging.getLogger(__name__)

WEIGHT_ID = "bopbtl_scratch"
"""Manifest id of the detector (Global/checkpoints/detection/FT_Epoch_latest.pt)."""
ARCHITECTURE = "BOPBTL-ScratchUNet"
"""The architecture restorer's loader checks the file against (not one of spandrel's)."""
THRESHOLD = 0.4
"""The authors' probability threshold (Global/detection.py)."""


def load_scratch_unet(path: Path, *, entry: WeightEntry | None = None) -> Any:
    """The scratch U-Net of verified checkpoint ``path`` on the CPU, eval mode.

    WeightsError when the file is no weights-only torch checkpoint, holds no state dict
    (directly or under ``model_state``), or one of another architecture or a colour input.
    """
    from restorer.nets.bopbtl_unet import ScratchUNet, unet_shape

    name = f"{Path(path).name} [{WEIGHT_ID}]"
    if entry is not None and entry.architecture not in (None, ARCHITECTURE):
        raise WeightsError(f"manifest entry '{WEIGHT_ID}' declares architecture {entry.architecture}, "
                           f"but this stage runs {ARCHITECTURE}; fix the entry's 'architecture'")
    try:
        checkpoint = load_torch_checkpoint(path)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise WeightsError(f"{name} cannot be read as a weights-only torch checkpoint "
                           f"({type(error).__name__}: {first}); check the manifest entry") from None
    state = checkpoint.get("model_state", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        raise WeightsError(f"{name} holds no state dict (expected a dict with 'model_state')")
    state = {str(key).removeprefix("module."): value for key, value in state.items()}
    try:
        shape = unet_shape(state)
        if shape["in_channels"] != 1:
            raise ValueError(f"{shape['in_channels']} input channels, not 1 (grey)")
        model = ScratchUNet(**shape)
        model.load_state_dict(state, strict=True)
    except (KeyError, ValueError, RuntimeError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise WeightsError(f"{name} does not hold the {ARCHITECTURE} (the BOPBTL scratch detector) "
                           f"restorer builds ({first}); the file is not the model the manifest entry "
                           "describes") from None
    return model.eval()


class ScratchDetector:
    """Stage: the BOPBTL scratch network, united with ``detect.segnet``.

    ``weights``: the verified FT_Epoch_latest.pt; ``segnet``: the verified detector_segnet
    file; ``entry``: the scratch file's manifest entry (revision and sha256 for the report).
    """

    spec: ClassVar[StageSpec] = StageSpec(
        id=DETECT_SCRATCH,
        kind=StageKind.DETECT,
        method="scratch",
        title="Scratch network (BOPBTL, published) + segmentation network",
        description="The scratch detector of Bringing Old Photos Back to Life (Wan et al. 2020, "
                    "MIT), trained on real old photos with hand-drawn masks, united with "
                    "detect.segnet's mask.",
        produces=frozenset({"mask"}),
        weights=(WEIGHT_ID, "detect_segnet"),
        options={
            "sensitivity": Option.number(0.5, 0.0, 1.0, help="higher flags more"),
            "dilate": Option.integer(0, 0, 16, help="grow the mask by this many px"),
            "fusion": Option.choice("union", ("union", "scratch"),
                                    help="union with detect.segnet's mask, or the scratch network alone"),
            "work_mp": Option.number(1.0, 0.05, 24.0,
                                     help="megapixels the scratch network analyses at most"),
        },
    )

    def __init__(self, weights: Path, segnet: Path, *, entry: WeightEntry | None = None,
                 device: str = "auto", precision: str = "auto") -> None:
        from restorer.nets.bopbtl_unet import SIZE_MULTIPLE
        from restorer.runtime import ModelRuntime, ModelTraits

        self.entry = entry
        path = Path(weights)
        first = [load_scratch_unet(path, entry=entry)]
        # Receptive field about 140 px in theory; 48 px of reach (192 px tile overlaps) keeps
        # tiled and whole runs apart by less than the threshold moves. 3.6 kB per pixel at fp32
        # on the CPU (bench/pretrained.py). Half precision is not declared: not checked.
        traits = ModelTraits(name="BOPBTL scratch U-Net", input_channels=1, output_channels=1,
                             size_multiple=SIZE_MULTIPLE, min_size=SIZE_MULTIPLE, reach=48,
                             bytes_per_pixel=3600.0)

        def build(target: Any) -> Any:
            model = first.pop() if first else load_scratch_unet(path, entry=entry)
            return model.to(target)

        self._runtime = ModelRuntime(build, traits, device=device, precision=precision)
        self._segnet = SegmentationDetector(Path(segnet), device=device, precision=precision)
        log.info("detect.scratch loaded from %s on %s", path.name, self._runtime.device)

    @property
    def device(self) -> str:
        """Where the scratch network runs, e.g. "cpu" or "cuda:0"."""
        return self._runtime.device

    def probability(self, image: np.ndarray, work_mp: float) -> tuple[np.ndarray, Any]:
        """Scratch probability float32 (h, w) of float32 (H, W, 3) ``image`` at its working
        size (at most ``work_mp`` megapixels), and the runtime's RunInfo."""
        height, width = image.shape[:2]
        scale = min(1.0, math.sqrt(work_mp * 1e6 / (height * width)))
        grey = luminance(image)
        if scale < 1.0:
            size = (max(16, round(width * scale)), max(16, round(height * scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        logits, run = self._runtime.run((grey * 2.0 - 1.0)[..., None])
        return (1.0 / (1.0 + np.exp(-logits[..., 0]))).astype(np.float32), run

    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        """The defect mask bool (H, W) of ``work.image``. ``info``: the share each detector
        flags, the fused share, the threshold, and model, revision, sha256, device,
        precision and tiles."""
        height, width = work.image.shape[:2]
        sensitivity, dilate = float(options["sensitivity"]), int(options["dilate"])
        progress(0.0, "finding scratches (BOPBTL network)")
        probability, run = self.probability(work.image, float(options["work_mp"]))
        threshold = threshold_for(THRESHOLD, sensitivity)
        if probability.shape != (height, width):
            probability = cv2.resize(probability, (width, height), interpolation=cv2.INTER_LINEAR)
        scratch = probability >= threshold
        info: dict[str, Any] = {"scratch_fraction": float(scratch.mean()), "threshold": threshold,
                                "fusion": options["fusion"]}
        mask = scratch
        if options["fusion"] == "union":
            progress(0.7, "marking cracks, spots and dust (segmentation network)")
            segnet = self._segnet.run(work, {"sensitivity": sensitivity, "dilate": 0},
                                      lambda f, m: None).mask
            assert segnet is not None
            info["segnet_fraction"] = float(segnet.mean())
            mask = scratch | segnet
        if dilate:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1,) * 2)
            mask = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
        info["defect_fraction"] = float(mask.mean())
        info.update(model_record(WEIGHT_ID, self.entry, ARCHITECTURE, run))
        progress(1.0, "done")
        return StageOutput(mask=mask, info=info)
