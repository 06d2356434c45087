"""Learned crack and scratch detection, trained on seeded synthetic damage (seed paper 000).

Two detectors, both trained by ``python -m restorer.train.detector`` (see ``weights/detector.md``):

- ``detect.learned`` (:class:`DescriptorDetector`), the paper's method: the morphological stage,
  with low thresholds, marks candidate pixels (:data:`CANDIDATES`); each candidate is described
  by the 469-value CLBP + HOG + LCP texture descriptor (:mod:`restorer.features`) and a
  multilayer perceptron (3 x 250 logistic units) keeps or rejects it. Candidates are classified
  on a deterministic subsample (every k-th in raster order, at most ``points`` per megapixel)
  and every other candidate takes the probability of its nearest classified one.
- ``detect.segnet`` (:class:`SegmentationDetector`): a small U-Net that maps the RGB photo to a
  per-pixel defect probability, trained on the same synthetic photos. It sees every pixel
  (thin faint cracks the top-hat misses, specks and spots) and is faster.

Both analyse the photo at up to ``WORK_PIXELS`` (larger photos are downscaled, the mask is
scaled back), threshold the probability at the value calibrated on validation photos (shifted
by ``sensitivity``), and grow the mask by ``dilate`` pixels. Models load once, in the
constructor, from a verified weight file path, and run through :mod:`restorer.runtime` (device,
precision, tiling, out-of-memory fallback; what it did is the ``runtime`` of the stage's info);
``run`` keeps no state.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

import cv2
import numpy as np
import torch
from torch import nn

from restorer.errors import WeightsError
from restorer.features import DESCRIPTOR_LENGTH, describe, texture_planes
from restorer.runtime_plan import ModelTraits
from restorer.stage_ids import DETECT_LEARNED, DETECT_SEGNET
from restorer.stages.base import Option, ProgressFn, StageKind, StageOutput, StageSpec, Work
from restorer.stages.detect import Candidates, MorphParams, find_candidates
from restorer.weights import load_safetensors

if TYPE_CHECKING:
    from restorer.runtime import ModelRuntime, RunInfo

__all__ = ["CANDIDATES", "WORK_PIXELS", "DescriptorMLP", "SegNet", "DescriptorDetector",
           "SegmentationDetector", "CandidateClassifier", "candidate_points", "load_segnet",
           "candidate_probability", "descriptor_classifier", "segnet_probability",
           "segnet_runtime", "threshold_for", "SEGNET_TRAITS", "MLP_TRAITS"]

log = logging.getLogger(__name__)

#: Candidate thresholds: about half the morphological detector's, for recall (no evidence test).
CANDIDATES = MorphParams(min_contrast=0.05, salience=2.0, weak_fraction=0.8)
#: Photos above this many pixels are analysed downscaled to it.
WORK_PIXELS = 1_500_000
#: Logit shift per unit of ``sensitivity`` away from 0.5 (1 -> threshold logit - 2).
_SENSITIVITY_LOGIT = 4.0

SEGNET_TRAITS = ModelTraits(
    name="SegNet", input_channels=3, output_channels=1, reach=48, min_tile=256,
    bytes_per_pixel=512.0, fp16=True, thread_safe=True)
"""The U-Net's needs: any size (its pooling rounds up), about 46 px of receptive radius (four
levels of two 3 x 3 convolutions), about 0.4 kB per pixel at fp32 (channels-last activations
of 8 to 48 channels); its forwards keep no state."""
MLP_TRAITS = ModelTraits(
    name="DescriptorMLP", input_channels=DESCRIPTOR_LENGTH, output_channels=1, reach=0,
    min_tile=1 << 20, bytes_per_pixel=8192.0, thread_safe=True)
"""The MLP scores descriptors, laid out as a (N, 1, 469) "image": never tiled (a photo has at
most about 22,000 classified candidates), shared between threads."""


class DescriptorMLP(nn.Module):
    """Descriptor (N, 469) -> defect logit (N,): standardise, 3 x 250 sigmoid units, linear."""

    def __init__(self, hidden: int = 250, layers: int = 3) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(DESCRIPTOR_LENGTH))
        self.register_buffer("std", torch.ones(DESCRIPTOR_LENGTH))
        blocks: list[nn.Module] = []
        width = DESCRIPTOR_LENGTH
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.Sigmoid()]
            width = hidden
        blocks.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, descriptors: torch.Tensor) -> torch.Tensor:
        return self.net((descriptors - self.mean) / self.std)[:, 0]


def _double_conv(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(outputs, outputs, 3, padding=1), nn.ReLU(inplace=True))


class SegNet(nn.Module):
    """RGB (B, 3, H, W) in [0, 1] -> defect logits (B, 1, H, W); a 4-level U-Net.

    ``widths`` are the channels per level (full, 1/2, 1/4, 1/8 resolution). H and W need not
    be multiples of 8 (upsampling matches the skip connection's size). Weights and activations
    are kept channels-last: with so few channels per level the convolutions run about three
    times faster on a CPU than in the default layout (loading a state dict keeps the layout).
    """

    def __init__(self, widths: tuple[int, int, int, int] = (8, 16, 32, 48)) -> None:
        super().__init__()
        w1, w2, w3, w4 = widths
        self.down = nn.ModuleList([_double_conv(3, w1), _double_conv(w1, w2),
                                   _double_conv(w2, w3), _double_conv(w3, w4)])
        self.up = nn.ModuleList([_double_conv(w4 + w3, w3), _double_conv(w3 + w2, w2),
                                 _double_conv(w2 + w1, w1)])
        self.head = nn.Conv2d(w1, 1, 1)
        self.to(memory_format=torch.channels_last)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        skips = []
        x = (image - 0.5).contiguous(memory_format=torch.channels_last)
        for index, block in enumerate(self.down):
            if index:
                x = nn.functional.max_pool2d(x, 2, ceil_mode=True)
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = nn.functional.interpolate(x, size=skip.shape[-2:], mode="bilinear",
                                          align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


def _read(path: Path, stage_id: str) -> dict[str, torch.Tensor]:
    try:
        return load_safetensors(path)
    except Exception as error:  # safetensors raises its own error types
        raise WeightsError(f"stage '{stage_id}': cannot read weight file {path} ({error}); "
                           "retrain it with 'python -m restorer.train.detector' or restore it "
                           "with 'git checkout -- weights/'") from error


def _split(tensors: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Model state and ``meta.*`` scalars (window, threshold, ...) of a detector file."""
    meta = {k[5:]: float(v) for k, v in tensors.items() if k.startswith("meta.")}
    state = {k: v for k, v in tensors.items() if not k.startswith("meta.")}
    return state, meta


def load_segnet(path: Path, stage_id: str) -> tuple[SegNet, float]:
    """The SegNet of weight file ``path`` (eval mode) and its calibrated threshold.

    ``stage_id`` names the stage loading it in the error raised for an unreadable file.
    """
    state, meta = _split(_read(path, stage_id))
    model = SegNet()
    model.load_state_dict(state, strict=True)
    return model.eval(), float(meta["threshold"])


def _segnet_forward(model: SegNet, image: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(model(image))


def segnet_runtime(path: Path, stage_id: str, *, device: str = "auto",
                   precision: str = "auto") -> tuple[ModelRuntime, float]:
    """The SegNet of weight file ``path`` in a runtime on ``device`` (its forward gives the
    defect probability), and its calibrated threshold."""
    from restorer.runtime import ModelRuntime

    first = [load_segnet(path, stage_id)]

    def build(target: torch.device) -> SegNet:
        model, _ = first.pop() if first else load_segnet(path, stage_id)
        return model.to(target)

    threshold = first[0][1]
    runtime = ModelRuntime(build, SEGNET_TRAITS, device=device, precision=precision,
                           forward=_segnet_forward)
    return runtime, threshold


def _cpu_runtime(model: nn.Module, traits: ModelTraits, forward: Callable[..., Any]) -> ModelRuntime:
    """A CPU runtime around an already loaded ``model`` (training code passes bare modules)."""
    from restorer.runtime import ModelRuntime

    return ModelRuntime(lambda device: model, traits, device="cpu", forward=forward,
                        fallback_device=None)


def threshold_for(base: float, sensitivity: float) -> float:
    """Probability threshold: ``base`` at sensitivity 0.5, lower (more flagged) above it."""
    logit = math.log(base / (1.0 - base)) - _SENSITIVITY_LOGIT * (float(sensitivity) - 0.5)
    return 1.0 / (1.0 + math.exp(-logit))


def candidate_points(mask: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns (N,) of the classified candidates of bool (H, W) ``mask``, and the owner map.

    At most ``budget`` candidates are classified: every k-th in raster order. The owner map
    int64 (H, W) gives, for every pixel, the index of its nearest classified candidate.
    """
    ys, xs = np.nonzero(mask)
    step = max(1, math.ceil(len(ys) / max(budget, 1)))
    ys, xs = ys[::step], xs[::step]
    seeds = np.ones(mask.shape, np.uint8)
    seeds[ys, xs] = 0
    # DIST_LABEL_PIXEL numbers the zero pixels 1..N in raster order: the order of ys, xs.
    _, labels = cv2.distanceTransformWithLabels(seeds, cv2.DIST_L2, 3,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    return ys, xs, labels.astype(np.int64) - 1


#: Scores candidates: (image float32 (H, W, 3), candidates, rows (N,), columns (N,)) -> (N,)
#: probabilities in [0, 1].
CandidateClassifier = Callable[[np.ndarray, Candidates, np.ndarray, np.ndarray], np.ndarray]


def candidate_probability(image: np.ndarray, classify: CandidateClassifier,
                          points_per_mp: float) -> np.ndarray:
    """Defect probability float32 (H, W) of float32 (H, W, 3) ``image``; 0 off the candidates.

    ``classify`` scores at most ``points_per_mp`` candidates per megapixel (see
    :func:`candidate_points`); the other candidates take their nearest scored neighbour's.
    """
    candidates = find_candidates(image, CANDIDATES)
    probability = np.zeros(image.shape[:2], np.float32)
    if not candidates.mask.any():
        return probability
    budget = int(points_per_mp * image.shape[0] * image.shape[1] / 1e6)
    ys, xs, owner = candidate_points(candidates.mask, budget)
    log.debug("%d candidates, %d classified", int(candidates.mask.sum()), len(ys))
    sampled = np.asarray(classify(image, candidates, ys, xs), dtype=np.float32)
    probability[candidates.mask] = sampled[owner[candidates.mask]]
    return probability


def _descriptor_forward(model: nn.Module, layout: torch.Tensor) -> torch.Tensor:
    """Descriptors laid out as (1, 469, N, 1) -> probabilities (1, 1, N, 1)."""
    descriptors = layout[0, :, :, 0].T.contiguous()
    return torch.sigmoid(model(descriptors)).reshape(1, 1, -1, 1)


def descriptor_classifier(model: nn.Module | ModelRuntime, window: int,
                          runs: list[RunInfo] | None = None) -> CandidateClassifier:
    """Candidate classifier scoring the 469-value descriptor over ``window`` with ``model``.

    The paper's MLP, or the linear SVM baseline (its margin squashed by a logistic); a bare
    module runs on the CPU. Each call's RunInfo is appended to ``runs`` when given.
    """
    if isinstance(model, nn.Module):
        model = _cpu_runtime(model, MLP_TRAITS, _descriptor_forward)
    runtime = model

    def classify(image: np.ndarray, candidates: Candidates, ys: np.ndarray,
                 xs: np.ndarray) -> np.ndarray:
        planes = texture_planes(image, candidates.light - candidates.dark, window)
        descriptors = describe(planes, ys, xs)
        out, run = runtime.run(descriptors[:, None, :])
        if runs is not None:
            runs.append(run)
        return out[:, 0, 0]

    return classify


#: Flips averaged by :func:`segnet_probability`: none, left-right, up-down, both (array axes).
_FLIPS: tuple[tuple[int, ...], ...] = ((), (1,), (0,), (0, 1))


def segnet_probability(model: SegNet | ModelRuntime, image: np.ndarray, *, flips: bool = False,
                       runs: list[RunInfo] | None = None) -> np.ndarray:
    """Defect probability float32 (H, W) of float32 (H, W, 3) [0, 1] ``image``.

    ``model``: a :func:`segnet_runtime` (a bare SegNet runs on the CPU). With ``flips`` the
    probability is the mean over the image and its three flips (one pass each, so memory stays
    that of one pass): cracks have no preferred direction, texture that looks like a crack from
    one side often does not from the other: on the validation photos it lowers the false alarms
    at equal detection by a quarter to a third (weights/detector.md), for four times the
    compute. Each pass's RunInfo is appended to ``runs`` when given.
    """
    runtime = _cpu_runtime(model, SEGNET_TRAITS, _segnet_forward) \
        if isinstance(model, nn.Module) else model
    passes = _FLIPS if flips else ((),)
    total = np.zeros(image.shape[:2], np.float32)
    for axes in passes:
        out, run = runtime.run(np.flip(image, axes) if axes else image)
        total += np.flip(out[..., 0], axes) if axes else out[..., 0]
        if runs is not None:
            runs.append(run)
    return total / len(passes)


def _analysed(image: np.ndarray) -> np.ndarray:
    """``image`` as float32, downscaled (area) to at most ``WORK_PIXELS``."""
    height, width = image.shape[:2]
    scale = min(1.0, math.sqrt(WORK_PIXELS / (height * width)))
    image = np.asarray(image, dtype=np.float32)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


def _finish(probability: np.ndarray, shape: tuple[int, int], threshold: float,
            dilate: int) -> np.ndarray:
    """Bool (H, W) mask at ``shape``: ``probability`` >= ``threshold``, grown by ``dilate``."""
    mask = (probability >= threshold).astype(np.uint8)
    height, width = shape
    if mask.shape != (height, width):
        radius = dilate * max(height / mask.shape[0], width / mask.shape[1])
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
        dilate = int(math.ceil(radius)) if dilate > 0 else 0
    if dilate > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1,) * 2)
        mask = cv2.dilate(mask, kernel)
    return mask.astype(bool)


class DescriptorDetector:
    """Stage: morphological candidates, kept or rejected by an MLP on CLBP + HOG + LCP."""

    spec: ClassVar[StageSpec] = StageSpec(
        id=DETECT_LEARNED,
        kind=StageKind.DETECT,
        method="learned",
        title="Learned (texture descriptors + MLP)",
        description="Candidate lines from morphological filtering, each classified from its "
                    "local texture (CLBP, HOG, LCP) by a neural network trained on synthetic "
                    "damage: removes thin real structures the morphological detector flags.",
        produces=frozenset({"mask"}),
        weights=("detect_mlp",),
        options={"sensitivity": Option.number(0.5, 0.0, 1.0, help="higher flags more"),
                 "dilate": Option.integer(1, 0, 16, help="grow the mask by this many px"),
                 "points_per_mp": Option.integer(15000, 100, 50000,
                                                 help="candidates classified per megapixel")},
    )

    def __init__(self, path: Path, *, device: str = "auto", precision: str = "auto") -> None:
        from restorer.runtime import ModelRuntime

        state, meta = _split(_read(path, self.spec.id))
        self.window = int(meta["window"])
        self.threshold = float(meta["threshold"])

        def build(target: torch.device) -> DescriptorMLP:
            model = DescriptorMLP()
            model.load_state_dict(state, strict=True)
            return model.eval().to(target)

        self.runtime = ModelRuntime(build, MLP_TRAITS, device=device, precision=precision,
                                    forward=_descriptor_forward)

    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        progress(0.0, "finding candidate cracks and classifying their texture")
        image = _analysed(work.image)
        runs: list[RunInfo] = []
        classify = descriptor_classifier(self.runtime, self.window, runs)
        probability = candidate_probability(image, classify, float(options["points_per_mp"]))
        threshold = threshold_for(self.threshold, float(options["sensitivity"]))
        mask = _finish(probability, work.image.shape[:2], threshold, int(options["dilate"]))
        return StageOutput(mask=mask, info={"defect_fraction": float(mask.mean()),
                                            "threshold": threshold,
                                            "runtime": self.runtime.record(runs)})


class SegmentationDetector:
    """Stage: a small U-Net's per-pixel defect probability, thresholded."""

    spec: ClassVar[StageSpec] = StageSpec(
        id=DETECT_SEGNET,
        kind=StageKind.DETECT,
        method="segnet",
        title="Learned (segmentation network)",
        description="A small convolutional network trained on synthetic cracks, scratches, "
                    "dust and spots marks every defect pixel; the most accurate detector.",
        produces=frozenset({"mask"}),
        weights=("detect_segnet",),
        options={"sensitivity": Option.number(0.5, 0.0, 1.0, help="higher flags more"),
                 "dilate": Option.integer(0, 0, 16, help="grow the mask by this many px")},
    )

    def __init__(self, path: Path, *, device: str = "auto", precision: str = "auto") -> None:
        self.runtime, self.threshold = segnet_runtime(path, self.spec.id, device=device,
                                                      precision=precision)

    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        progress(0.0, "marking cracks, scratches and spots")
        runs: list[RunInfo] = []
        probability = segnet_probability(self.runtime, _analysed(work.image), runs=runs)
        threshold = threshold_for(self.threshold, float(options["sensitivity"]))
        mask = _finish(probability, work.image.shape[:2], threshold, int(options["dilate"]))
        return StageOutput(mask=mask, info={"defect_fraction": float(mask.mean()),
                                            "threshold": threshold,
                                            "runtime": self.runtime.record(runs)})

