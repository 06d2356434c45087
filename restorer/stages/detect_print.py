"""Damage of old prints, kind by kind: cracks followed whole, spots, creases, tears and holes.

``detect.print`` runs the shipped SegNet (``weights/detector_segnet.safetensors``) once and
four per-kind detectors on the photo (float32 (H, W, 3) [0, 1]):

- cracks (:func:`crack_mask`): hysteresis on the SegNet probability (a found stretch is
  evidence for its fainter neighbours), optionally bridged by a ridge response of the
  probability, then grown to cover the soft edge; rules chosen by ``bench/crack_follow.py`` on
  the training generator;
- spots, creases, holes: classical detectors in :mod:`restorer.stages.detect_kinds`.

The mask the inpainter gets is the union; every kind's mask is in the output's ``masks`` (the
legend; ``RestoreResult.kind_masks``). The mount or scanner
bed round a print (:func:`restorer.mount.find_print`) is never flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np

from restorer.masks import grow, hysteresis
from restorer.mount import find_print
from restorer.stage_ids import DETECT_PRINT
from restorer.stages.detect_kinds import KindParams, crease_mask, hole_mask, spot_mask
from restorer.stages.base import Option, ProgressFn, StageKind, StageOutput, StageSpec, Work

__all__ = ["KINDS", "WORK_PIXELS", "CrackParams", "PrintDamageMasks", "crack_probability",
           "crack_mask", "detect_print_damage", "PrintDetector"]


#: (scale, weight) pairs of :func:`crack_probability`.
Scales = tuple[tuple[float, float], ...]


def crack_probability(model: Any, image: np.ndarray, scales: Scales = ((1.0, 1.0),), *,
                      flips: bool = False, runs: list[Any] | None = None) -> np.ndarray:
    """Float32 (H, W) [0, 1]: the most of weight x the SegNet ``model``'s probability over the
    (scale, weight) pairs ``scales``.

    The network was trained on cracks 1 to 5 px wide; a 10 px crack is a 5 px one in the photo
    downscaled by 2, so the photo is analysed at each scale (area-downscaled, probability
    scaled back bilinearly); a coarse scale's weight below 1 keeps its texture false alarms
    down. ``image`` float32 (H, W, 3) [0, 1]. ``model``: the SegNet's runtime
    (:func:`~restorer.stages.detect_learned.segnet_runtime`) or the bare SegNet; ``flips``:
    each scale's probability is the mean over the photo and its three flips (four passes);
    each pass's RunInfo is appended to ``runs`` when given.
    """
    import cv2

    from restorer.stages.detect_learned import segnet_probability

    height, width = image.shape[:2]
    best = np.zeros((height, width), np.float32)
    for scale, weight in scales:
        small = image
        if scale < 1.0:
            size = (max(8, round(width * scale)), max(8, round(height * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        probability = segnet_probability(model, np.ascontiguousarray(small, np.float32),
                                         flips=flips, runs=runs)
        if scale < 1.0:
            probability = cv2.resize(probability, (width, height), interpolation=cv2.INTER_LINEAR)
        np.maximum(best, weight * probability, out=best)
    return best


@dataclass(frozen=True)
class CrackParams:
    """Crack rule on the SegNet probability, thresholds as multiples of its calibrated one.

    Pixels of at least ``low`` x threshold join a crack when connected to a pixel of at least
    ``high`` x threshold (``plain``: one threshold, ``high``). ``ridge`` > 0 adds that much of
    the probability's ridge response (Sato, 1 to 3 px) before the hysteresis, bridging gaps
    along a line; the mask is then grown by ``grow`` px (the soft edge). ``scales`` are the
    (scale, weight) pairs of :func:`crack_probability`, ``flips`` whether each is averaged over
    the photo's flips.
    """

    low: float = 1.0
    high: float = 1.5
    ridge: float = 0.0
    grow: float = 0.0
    plain: bool = False
    scales: Scales = ((1.0, 1.0), (0.5, 0.5))
    flips: bool = True


def crack_mask(probability: np.ndarray, image: np.ndarray, threshold: float,
               params: CrackParams = CrackParams()) -> np.ndarray:
    """Crack mask bool (H, W) from the SegNet's float32 (H, W) [0, 1] ``probability`` of
    float32 (H, W, 3) ``image`` and its calibrated ``threshold``."""
    score = probability
    if params.ridge > 0:
        from skimage.filters import sato

        score = probability + params.ridge * sato(probability, sigmas=(1, 2, 3),
                                                  black_ridges=False).astype(np.float32)
    if params.plain:
        mask = score >= params.high * threshold
    else:
        mask = hysteresis(score, params.low * threshold, params.high * threshold)
    return grow(mask, params.grow)


#: Photos above this many pixels are analysed downscaled to it (as the SegNet stage does).
WORK_PIXELS = 1_500_000
#: The kinds in the legend, in the order their masks are drawn (a later kind owns a pixel).
KINDS: tuple[str, ...] = ("crack", "spot", "crease", "hole")


@dataclass(frozen=True)
class PrintDamageMasks:
    """Per-kind masks of one photo: ``masks`` kind -> bool (H, W), not overlapping (a pixel
    belongs to the last kind of :data:`KINDS` that marks it); ``mask`` their union."""

    masks: Mapping[str, np.ndarray]

    @property
    def mask(self) -> np.ndarray:
        return np.logical_or.reduce(list(self.masks.values()))


def detect_print_damage(image: np.ndarray, model: Any, threshold: float, *,
                        wanted: tuple[str, ...] = KINDS, crack: CrackParams = CrackParams(),
                        kinds: KindParams = KindParams(),
                        runs: list[Any] | None = None) -> PrintDamageMasks:
    """The masks of the ``wanted`` kinds of float32 (H, W, 3) [0, 1] ``image`` (module
    docstring; the others come back empty).

    ``model`` is the SegNet (or its runtime; ``runs`` collects how it ran) and ``threshold``
    its calibrated (or sensitivity-shifted) threshold. The photo is analysed at up to :data:`WORK_PIXELS`; masks come back at its size.
    """
    import cv2

    height, width = image.shape[:2]
    factor = min(1.0, float(np.sqrt(WORK_PIXELS / (height * width))))
    small = np.asarray(image, dtype=np.float32)
    if factor < 1.0:
        small = cv2.resize(small, (max(1, round(width * factor)), max(1, round(height * factor))),
                           interpolation=cv2.INTER_AREA)
    small = np.ascontiguousarray(small)
    outside = ~find_print(small).mask
    detectors = {
        "crack": lambda: crack_mask(crack_probability(model, small, crack.scales,
                                                      flips=crack.flips, runs=runs),
                                    small, threshold, crack),
        "spot": lambda: spot_mask(small, kinds), "crease": lambda: crease_mask(small, kinds),
        "hole": lambda: hole_mask(small, kinds, outside)}
    owner = np.zeros(small.shape[:2], np.int8)
    for index, kind in enumerate(KINDS):
        if kind in wanted:
            owner[detectors[kind]() & ~outside] = index + 1
    if factor < 1.0:
        owner = cv2.resize(owner, (width, height), interpolation=cv2.INTER_NEAREST)
    return PrintDamageMasks({kind: owner == index + 1 for index, kind in enumerate(KINDS)})


class PrintDetector:
    """Stage: the SegNet's cracks followed whole plus spots, creases and holes, per kind."""

    spec: ClassVar[StageSpec] = StageSpec(
        id=DETECT_PRINT,
        kind=StageKind.DETECT,
        method="print",
        title="Old-print damage (cracks, spots, creases, tears)",
        description="The segmentation network's cracks followed along their whole length and "
                    "grown over their soft edge, with classical detectors for spots and "
                    "foxing, creases and folds, tears and missing corners; the mount is left "
                    "alone.",
        produces=frozenset({"mask"}),
        weights=("detect_segnet",),
        options={"sensitivity": Option.number(0.5, 0.0, 1.0, help="higher flags more"),
                 "spots": Option.flag(True, help="find spots, foxing and dust (after a "
                                                 "triage: only when it found the photo spotted)"),
                 "holes": Option.flag(False, help="find tears and missing corners (after a "
                                                  "triage: also when it found the photo "
                                                  "torn)"),
                 "creases": Option.flag(False, help="find creases and folds (experimental: "
                                                    "also flags long straight edges)")},
    )

    def __init__(self, path: Path, *, device: str = "auto", precision: str = "auto") -> None:
        from restorer.stages.detect_learned import segnet_runtime

        self.runtime, self.threshold = segnet_runtime(path, self.spec.id, device=device,
                                                      precision=precision)

    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        from restorer.stages.detect_learned import threshold_for

        progress(0.0, "finding cracks, spots, creases and tears")
        threshold = threshold_for(self.threshold, float(options["sensitivity"]))
        wanted = ["crack", *(kind for kind, option in (("spot", "spots"), ("crease", "creases"),
                                                       ("hole", "holes")) if options[option])]
        if work.triage is not None and "spotted" not in work.triage.found and "spot" in wanted:
            # Spot false alarms sit on eyes, buttons and mouths: only when triage saw spots.
            wanted.remove("spot")
        if work.triage is not None and "torn" in work.triage.found and "hole" not in wanted:
            wanted.append("hole")  # Auto plans the large-hole inpainter from this label
        runs: list[Any] = []
        found = detect_print_damage(work.image, self.runtime, threshold, wanted=tuple(wanted),
                                    runs=runs)
        mask = found.mask
        info: dict[str, Any] = {"defect_fraction": float(mask.mean()), "threshold": threshold}
        info.update({f"{kind}_fraction": float(m.mean()) for kind, m in found.masks.items()})
        info["runtime"] = self.runtime.record(runs)
        return StageOutput(mask=mask, info=info, masks=dict(found.masks))
