"""Colourisation of black-and-white and sepia prints with DDColor (Kang et al., ICCV 2023;
Apache-2.0), loaded through spandrel-extra-arches.

DDColor predicts the CIELAB chroma (a*, b*) of a photo from its lightness. It is trained on
ImageNet at a fixed working size (512 px for the published models), so the stage:

1. takes the lightness L* of the whole photo (float32 (H, W, 3) RGB in [0, 1], CIELAB D65 as
   OpenCV computes it); a sepia or toned print is thereby turned grey first, its tint dropped;
2. shrinks L* to ``working_size`` x ``working_size`` (area averaging), makes it an RGB grey
   image (L*, 0, 0) and runs the network once through :class:`restorer.runtime.ModelRuntime`
   (CUDA with bf16 where spandrel declares it safe, fp16 it does not; else the CPU in fp32);
3. scales the predicted (a*, b*) back to the photo's size (bilinear: chroma is smooth), times
   ``strength``, and joins it to the full-resolution L*, so the photo keeps every detail of its
   own lightness (a colour outside sRGB's gamut has its chroma reduced, not its L* moved).

The stage is never planned by Auto unless colourisation is asked for (``colourise`` in
:func:`restorer.planner.plan_auto`, the CLI's ``--colourise``, or a Manual choice); the
pipeline then keeps its colours (no re-toning to the input's grey or sepia). ``run`` keeps no
state on the stage. The colours are DDColor's guess from ImageNet: plausible, not historical.
"""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

import cv2
import numpy as np

from restorer.errors import WeightsError
from restorer.published import load_descriptor, model_record
from restorer.stage_ids import COLOUR_DDCOLOR
from restorer.stages.base import Option, ProgressFn, StageKind, StageOutput, StageSpec, Work

if TYPE_CHECKING:
    from restorer.weights import WeightEntry

__all__ = ["WEIGHT_ID", "ARCHITECTURE", "AB_LIMIT", "DDColorColour", "lightness",
           "join_lightness"]

log = logging.getLogger(__name__)

WEIGHT_ID = "ddcolor_paper_tiny"
"""Manifest id of DDColor-T (ddcolor_paper_tiny.pth)."""
ARCHITECTURE = "DDColor"
"""The architecture spandrel (with spandrel-extra-arches installed) must report."""
AB_LIMIT = 110.0
"""Predicted a* and b* are clipped to [-AB_LIMIT, AB_LIMIT] (beyond sRGB's gamut anyway)."""

_GAMUT_DE = 0.5  # CIELAB units a colour may move in conversion and still count as in gamut
_INSTALL_LOCK = threading.Lock()


def _install_extra_arches() -> None:
    """Add spandrel-extra-arches' architectures (DDColor among them) to spandrel's registry,
    once per process; an architecture already there is kept."""
    with _INSTALL_LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit", category=FutureWarning)
        import spandrel
        import spandrel_extra_arches

        if ARCHITECTURE not in spandrel.MAIN_REGISTRY:
            spandrel_extra_arches.install(ignore_duplicates=True)


def lightness(image: np.ndarray) -> np.ndarray:
    """CIELAB L* of float32 (H, W, 3) RGB [0, 1] ``image``: float32 (H, W) in [0, 100]."""
    lab = cv2.cvtColor(np.ascontiguousarray(image, dtype=np.float32), cv2.COLOR_RGB2Lab)
    return lab[..., 0]


def _lab_to_rgb(lum: np.ndarray, ab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RGB of (L*, a*, b*) as OpenCV gives it (clamped to [0, 1]), and whether each colour is
    inside sRGB's gamut (its RGB converts back to the same L*a*b* within _GAMUT_DE)."""
    lab = np.concatenate([lum[..., None], ab], axis=-1).astype(np.float32, copy=False)
    flat = lab.reshape(-1, 1, 3)
    rgb = cv2.cvtColor(flat, cv2.COLOR_Lab2RGB)
    back = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)
    fits = np.linalg.norm(back - flat, axis=-1) <= _GAMUT_DE
    return rgb.reshape(lab.shape), fits.reshape(lab.shape[:-1])


def join_lightness(lum: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """RGB float32 (H, W, 3) in [0, 1] of L* (H, W) in [0, 100] and a*, b* (H, W, 2).

    A colour outside sRGB's gamut has its chroma shrunk (bisection, 8 steps) until it fits,
    so L* is kept instead of being shifted by clipping the channels."""
    rgb, fits = _lab_to_rgb(lum, ab)
    outside = ~fits
    if outside.any():
        l_out, ab_out = lum[outside], ab[outside]
        low = np.zeros(l_out.shape + (1,), np.float32)
        high = np.ones_like(low)
        for _ in range(8):
            middle = (low + high) / 2
            fits = _lab_to_rgb(l_out, ab_out * middle)[1][:, None]
            low, high = np.where(fits, middle, low), np.where(fits, high, middle)
        rgb[outside] = _lab_to_rgb(l_out, ab_out * low)[0]
    return np.clip(rgb, 0.0, 1.0)


class DDColorColour:
    """Stage: DDColor colourisation at a working size, full-resolution lightness kept.

    ``weights``: the verified ddcolor_paper_tiny.pth (any DDColor file spandrel-extra-arches
    reads with two output channels); ``entry``: its manifest entry (revision and sha256 go
    into the report).
    """

    spec: ClassVar[StageSpec] = StageSpec(
        id=COLOUR_DDCOLOR,
        kind=StageKind.COLOUR,
        method="ddcolor",
        title="DDColor colourisation (published, off by default)",
        description="Invents plausible colours for a black-and-white or sepia print (Kang et "
                    "al. 2023, Apache-2.0, trained on ImageNet); the photo's own lightness is "
                    "kept at full resolution.",
        weights=(WEIGHT_ID,),
        options={
            "working_size": Option.choice(512, (256, 512),
                                          help="side in px at which DDColor predicts colour"),
            "strength": Option.number(1.0, 0.0, 1.0,
                                      help="share of the predicted colour applied (0: grey)"),
        },
    )

    def __init__(self, weights: Path, *, entry: WeightEntry | None = None,
                 device: str = "auto", precision: str = "auto") -> None:
        from restorer.runtime import ModelRuntime, traits_from_descriptor

        self.entry = entry
        path = Path(weights)
        first = [self._descriptor(path)]
        if int(getattr(first[0].model, "num_output_channels", 0)) != 2:
            raise WeightsError(f"{path.name} [{WEIGHT_ID}] is a DDColor with "
                               f"{first[0].model.num_output_channels} output channels; the "
                               "colour stage needs the published a*b* models (2)")
        # The network is called directly: a grey RGB (M, M, 3) in, (a*, b*) (M, M, 2) out, one
        # piece (its colour queries attend over the whole image: tiles would disagree).
        # Measured here (bench/colour.py): about 11 kB per pixel at fp32 on the CPU.
        traits = traits_from_descriptor(first[0], input_channels=3, output_channels=2,
                                        size_multiple=32, reach=None, min_overlap=64,
                                        bytes_per_pixel=11264.0, min_tile=256)

        def build(target: Any) -> Any:
            descriptor = first.pop() if first else self._descriptor(path)
            return descriptor.model.to(target).eval()

        self._runtime = ModelRuntime(build, traits, device=device, precision=precision)
        log.info("colour.ddcolor loaded from %s on %s (%s)", path.name, self._runtime.device,
                 self._runtime.precision)

    def _descriptor(self, path: Path) -> Any:
        _install_extra_arches()
        return load_descriptor(path, weight_id=WEIGHT_ID, architecture=ARCHITECTURE,
                               purpose="Restoration", input_channels=1, entry=self.entry)

    @property
    def device(self) -> str:
        """Where DDColor runs, e.g. "cpu" or "cuda:0"."""
        return self._runtime.device

    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        """Colourise ``work.image``: float32 (H, W, 3) in [0, 1], same size, same L*.
        ``info``: working size, strength, model, revision, sha256, device."""
        size, strength = int(options["working_size"]), float(options["strength"])
        lum = lightness(work.image)
        progress(0.0, "predicting colour")
        small = cv2.resize(lum, (size, size), interpolation=cv2.INTER_AREA)
        grey = join_lightness(small, np.zeros((size, size, 2), np.float32))
        ab, run = self._runtime.run(grey, tile=size)
        ab = cv2.resize(np.nan_to_num(ab), (lum.shape[1], lum.shape[0]),
                        interpolation=cv2.INTER_LINEAR)
        np.clip(ab, -AB_LIMIT, AB_LIMIT, out=ab)
        out = join_lightness(lum, ab * np.float32(strength))
        progress(1.0, "colourised")
        return StageOutput(image=out, info={
            "working_size": size, "strength": strength, "changed": strength > 0.0,
            **model_record(WEIGHT_ID, self.entry, ARCHITECTURE, run)})
