"""Trained triage: a small network (trained with Keras) labels a photo's blur and cracks.

A photo of any size is judged from views that keep both kinds of evidence
(:func:`triage_views`): crops of ``VIEW_SIZE`` px that tile the whole of a working copy whose
long side is at most ``WORK_SIDE`` (blur and thin cracks are measured there at a known scale, as
the heuristic triage does; a crack anywhere in the photo is in some crop), plus the whole photo
shrunk to one view (wide cracks, layout). The network was trained on ten of these views (nine
crops on a 3 x 3 grid and the whole, :func:`training_views`); judging from the whole tiling
instead raised its held-out accuracy by about 4 points with the same weights. The network
sees all views at once, scores each with one shared backbone, pools over the views (the
strongest crack evidence counts; blur is judged from all of them) and outputs two independent
sigmoid probabilities, blur and crack. The four labels are their products, as in the heuristic
triage: two binary outputs let every training photo teach both questions, and "blurred+cracked"
needs no examples of its own to be recognised.

The network's answers are then fused with two measurements (:func:`fuse`): the crack
probability with the shipped detector, ``detect.segnet``, run on the working copy and its
three flips, averaged (the share of the photo it flags, the extent of its longest defect and
how sure it is of what it flags; texture that looks like a crack from one side often does not
from another), and the blur probability with the edge-width blur estimate of the heuristic
triage, taken over all edges and over the edges of the widest orientation alone (motion blur,
common in old photos, widens only the edges across its direction), both leaving out the edges
the detector flags (a crack's edges are sharp however blurred the photo under it). The fusion
is two logistic regressions (weights ``triage_fusion``, fitted by ``python -m
restorer.train.triage --fusion`` on photos apart from the benchmark's; the file records the
:class:`Recipe` of the measurements, and the stage measures as it says); the detector is a
segmentation network trained for pixel masks, the triage network a classifier of whole
photos: each catches cracks the other misses.

The network is read from its ``.keras`` file into torch (:mod:`restorer.stages.triage_model`:
no Keras or TensorFlow is imported, which took most of a single-photo run's start) when the stage
is built (the registry builds it on first use, or :func:`restorer.service.warm_up` in the
background at start-up); its answers equal Keras' to 1e-5 (a test checks it). The network and
the detector run through :mod:`restorer.runtime` on the device asked for (how they ran is the
``runtime`` of the stage's info).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import cv2
import numpy as np
from safetensors import safe_open

from restorer.errors import StageUnavailableError
from restorer.ops import fit_long_side, luminance
from restorer.stage_ids import TRIAGE_NET
from restorer.stages.base import (ProgressFn, StageKind, StageOutput, StageSpec, TriageResult,
                                  Work)
from restorer.stages.deblur import estimate_blur_sigmas
from restorer.stages.detect_learned import segnet_probability, segnet_runtime
from restorer.stages.triage_model import (VIEW_SIZE, WEIGHT_ID, TriageModel, load_triage_model,
                                          run_triage_model, triage_runner)
from restorer.stages.triage_labels import DamageMeasure, FadeMeasure, label_probabilities
from restorer.weights import sha256_file

__all__ = ["VIEW_SIZE", "WORK_SIDE", "VIEW_COUNT", "WEIGHT_ID", "SEGNET_ID", "FUSION_ID",
           "triage_views", "training_views", "working_copy", "pad_to_view",
           "crop_origins", "crack_features", "Recipe", "Fusion",
           "Measurement", "fuse", "fusion_inputs", "logit", "labels_from_probabilities",
           "fitted_on", "load_fusion", "load_triage_model", "run_triage_model", "triage_runner",
           "NetTriage"]


WORK_SIDE = 1024
GRID = 3
VIEW_COUNT = GRID * GRID + 1
SEGNET_ID = "detect_segnet"
FUSION_ID = "triage_fusion"
#: Floor of the flagged share before its logarithm (a clean photo flags about 1e-4 or less).
_FRACTION_FLOOR = 1e-4
#: Share of each side left out of :func:`crack_features` (the edge of the print or scan).
BORDER = 0.03
#: Flagged pixels grown by this window before their edges are left out of the blur measure
#: (an edge found by Canny can sit one pixel outside the flagged crack).
_NEIGHBOURS = np.ones((3, 3), np.uint8)

#: Returns the verified local path of a manifest weight id (never downloads).
WeightPath = Callable[[str], Path]


def working_copy(image: np.ndarray) -> np.ndarray:
    """Float (H, W, 3) ``image`` shrunk (area, never enlarged) to a long side of ``WORK_SIDE``."""
    return fit_long_side(np.asarray(image, dtype=np.float32), WORK_SIDE)


def crack_features(probability: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """Crack evidence in the detector's float (H, W) ``probability`` map, flagged where it is
    at least ``threshold``: (log10 of the flagged share, floored at 1e-4; longest defect extent
    / diagonal; mean probability of the flagged pixels, 0 when none).

    A crack is long and thin and the detector is sure of it; dust is short and scattered, and
    thin real structures (railings, lattices) are flagged with less certainty. A band of
    ``BORDER`` of each side is left out: it holds the edge of the print or of the scan, which
    the detector often flags as one long line the length of the photo.
    """
    height, width = probability.shape
    top, left = round(height * BORDER), round(width * BORDER)
    probability = probability[top:height - top, left:width - left]
    mask = probability >= threshold
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    extent = 0.0
    if count > 1:
        sides = np.maximum(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT])
        extent = float(sides.max()) / float(np.hypot(*mask.shape))
    confidence = float(probability[mask].mean()) if count > 1 else 0.0
    return math.log10(max(float(mask.mean()), _FRACTION_FLOOR)), extent, confidence


@dataclass(frozen=True)
class Recipe:
    """How the measurements a fusion was fitted on are taken: the detector's probability
    averaged over the photo and its three flips (``detector_flips``), the blur measured away
    from the edges the detector flags (``blur_excludes_flagged``). Both since 2026-12-03; a
    fusion file that does not record them was fitted without either."""

    detector_flips: bool = True
    blur_excludes_flagged: bool = True

    def metadata(self) -> dict[str, str]:
        """The recipe as safetensors metadata ("1" or "0")."""
        return {"detector_flips": str(int(self.detector_flips)),
                "blur_excludes_flagged": str(int(self.blur_excludes_flagged))}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> Recipe:
        """The recipe recorded in a fusion file's ``metadata`` (a missing entry: "0")."""
        return cls(detector_flips=metadata.get("detector_flips", "0") == "1",
                   blur_excludes_flagged=metadata.get("blur_excludes_flagged", "0") == "1")


@dataclass(frozen=True)
class Fusion:
    """Two logistic regressions: blur from (network blur logit, blur sigma and widest
    orientation's blur sigma in px at the 1024 px view), crack from (network crack logit,
    :func:`crack_features`), and the :class:`Recipe` of the measurements they were fitted on."""

    blur_weight: np.ndarray
    blur_bias: float
    crack_weight: np.ndarray
    crack_bias: float
    recipe: Recipe = Recipe()


def logit(p: float) -> float:
    """log(p / (1 - p)) of ``p`` in [0, 1], clipped to [1e-6, 1 - 1e-6] first."""
    p = min(max(p, 1e-6), 1.0 - 1e-6)
    return math.log(p / (1.0 - p))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass(frozen=True)
class Measurement:
    """What the triage measures on a photo before fusion.

    The network's blur and crack probabilities in [0, 1], the edge-width blur sigma over all
    edges and over the widest edge orientation (px at the 1024 px view,
    :func:`~restorer.stages.deblur.estimate_blur_sigmas`: motion blur widens one orientation
    only), both over the edges the detector does not flag, and :func:`crack_features` of the
    detector's probability (averaged over flips) on the working copy.
    """

    p_blur: float
    p_crack: float
    blur_sigma: float
    blur_sigma_widest: float
    features: tuple[float, float, float]


def fusion_inputs(measured: Measurement) -> tuple[list[float], list[float]]:
    """The inputs of :class:`Fusion`'s blur (3) and crack (4) regressions."""
    return ([logit(measured.p_blur), measured.blur_sigma, measured.blur_sigma_widest],
            [logit(measured.p_crack), *measured.features])


def fuse(fusion: Fusion, measured: Measurement) -> tuple[float, float]:
    """Fused (p_blur, p_crack) in [0, 1] from the network's answers and the measurements."""
    blur, crack = fusion_inputs(measured)
    return (_sigmoid(float(fusion.blur_weight @ blur) + fusion.blur_bias),
            _sigmoid(float(fusion.crack_weight @ crack) + fusion.crack_bias))


def triage_views(image: np.ndarray) -> np.ndarray:
    """The network's input for float (H, W, 3) [0, 1] ``image``: float32 (K + 1, S, S, 3) in
    [0, 1].

    Views 0 to K - 1: S x S crops that tile the whole photo shrunk (never enlarged) to a long
    side of ``WORK_SIDE`` (evenly spaced, overlapping by less than S; K is 1 to 121); a side
    shorter than S is reflect-padded. View K: the whole photo resized to S x S.
    """
    image = np.asarray(image, dtype=np.float32)
    return _views(image, working_copy(image), tile=True)


def training_views(image: np.ndarray) -> np.ndarray:
    """The network's training input for float (H, W, 3) [0, 1] ``image``: float32
    (``VIEW_COUNT``, S, S, 3) in [0, 1], crops on an evenly spaced 3 x 3 grid instead of the
    whole tiling (a fixed count, and a tenth of the memory per sample), plus the whole photo."""
    image = np.asarray(image, dtype=np.float32)
    return _views(image, working_copy(image), tile=False)


def pad_to_view(work: np.ndarray) -> np.ndarray:
    """(H, W, ...) ``work`` reflect-padded, centred, to at least ``VIEW_SIZE`` on each side."""
    pad_y, pad_x = max(0, VIEW_SIZE - work.shape[0]), max(0, VIEW_SIZE - work.shape[1])
    if pad_y or pad_x:
        work = cv2.copyMakeBorder(work, pad_y // 2, pad_y - pad_y // 2, pad_x // 2,
                                  pad_x - pad_x // 2, cv2.BORDER_REFLECT_101)
    return work


def crop_origins(height: int, width: int, tile: bool = True) -> list[tuple[int, int]]:
    """(top, left) of the ``VIEW_SIZE`` crops of a padded working copy of ``height`` x
    ``width`` (each at least ``VIEW_SIZE``): the whole tiling (``tile``, evenly spaced,
    overlapping by less than a crop) or the 3 x 3 grid."""

    def starts(length: int) -> np.ndarray:
        count = math.ceil((length - VIEW_SIZE) / VIEW_SIZE) + 1 if tile else GRID
        return np.linspace(0, length - VIEW_SIZE, count).round().astype(int)

    return [(int(t), int(l)) for t in starts(height) for l in starts(width)]


def _views(image: np.ndarray, work: np.ndarray, tile: bool) -> np.ndarray:
    """:func:`triage_views` (``tile``) or :func:`training_views` of ``image`` whose
    :func:`working_copy` is ``work``."""
    work = pad_to_view(work)
    views = [work[t:t + VIEW_SIZE, l:l + VIEW_SIZE]
             for t, l in crop_origins(work.shape[0], work.shape[1], tile)]
    views.append(cv2.resize(image, (VIEW_SIZE, VIEW_SIZE), interpolation=cv2.INTER_AREA))
    return np.clip(np.stack(views), 0.0, 1.0).astype(np.float32)


def labels_from_probabilities(p_blur: float, p_crack: float, method: str,
                              labels: Mapping[str, float] | None = None) -> TriageResult:
    """The four-label TriageResult of independent blur and crack probabilities in [0, 1];
    ``labels`` its independent labels (default: blurred and cracked from the same)."""
    confidences = {
        "clean": (1 - p_blur) * (1 - p_crack),
        "blurred": p_blur * (1 - p_crack),
        "cracked": (1 - p_blur) * p_crack,
        "blurred+cracked": p_blur * p_crack,
    }
    return TriageResult(confidences=confidences, blurred=p_blur >= 0.5, cracked=p_crack >= 0.5,
                        method=method,
                        scores={"p_blur": round(p_blur, 4), "p_crack": round(p_crack, 4)},
                        labels=label_probabilities(p_blur, p_crack) if labels is None else labels)


def fitted_on(segnet_path: Path, model_path: Path) -> dict[str, str]:
    """The fusion file's metadata: sha256 of the detector and network files it is fitted on."""
    return {"detect_segnet_sha256": sha256_file(segnet_path),
            "triage_net_sha256": sha256_file(model_path)}


def load_fusion(path: Path, segnet_path: Path, model_path: Path) -> Fusion:
    """The fusion of weight file ``path``, refused unless fitted on the SegNet at
    ``segnet_path`` and the triage network at ``model_path`` (its inputs are their answers).

    The file is safetensors with tensors ``blur.weight`` (3,), ``blur.bias`` (1,),
    ``crack.weight`` (4,), ``crack.bias`` (1,) and the metadata ``detect_segnet_sha256``,
    ``triage_net_sha256`` and the :class:`Recipe`.
    """
    try:
        with safe_open(str(path), framework="numpy") as handle:
            recorded = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k).astype(np.float64) for k in handle.keys()}
        fusion = Fusion(tensors["blur.weight"], float(tensors["blur.bias"][0]),
                        tensors["crack.weight"], float(tensors["crack.bias"][0]),
                        Recipe.from_metadata(recorded))
    except Exception as exc:  # safetensors raises its own error types; a missing key, KeyError
        raise StageUnavailableError(f"the triage fusion {path.name} could not be read ({exc}); "
                                    f"run 'python -m restorer weights verify {FUSION_ID}'") from exc
    if fusion.blur_weight.shape != (3,) or fusion.crack_weight.shape != (4,):
        raise StageUnavailableError(f"the triage fusion {path.name} has the wrong shapes; refit "
                                    "it with 'python -m restorer.train.triage --fusion'")
    names = {"detect_segnet_sha256": "detector", "triage_net_sha256": "triage network"}
    for key, actual in fitted_on(segnet_path, model_path).items():
        expected = recorded.get(key, "")
        if expected != actual:
            raise StageUnavailableError(
                f"the triage fusion {path.name} was fitted on another {names[key]} file "
                f"({expected[:12] or 'unknown'}, here {actual[:12]}); refit it with "
                "'python -m restorer.train.triage --fusion'")
    return fusion


class TriageNetwork:
    """The trained triage network and the SegNet detector: :class:`Measurement` of a photo.

    ``device`` and ``precision``: where and how both run (see :class:`TriageModel`)."""

    def __init__(self, model_path: Path, segnet_path: Path, *, device: str = "auto",
                 precision: str = "auto") -> None:
        self.model = TriageModel(model_path, device=device, precision=precision)
        self.segnet, self.threshold = segnet_runtime(segnet_path, NetTriage.spec.id,
                                                     device=device, precision=precision)

    def measure(self, image: np.ndarray, recipe: Recipe = Recipe(),
                runs: list[Any] | None = None,
                network_runs: list[Any] | None = None) -> Measurement:
        """The measurements of float (H, W, 3) [0, 1] ``image``, taken as ``recipe`` says
        (``runs`` and ``network_runs`` collect how the detector and the network ran)."""
        image = np.asarray(image, dtype=np.float32)
        work = working_copy(image)  # shared by the views, the detector and the blur measure
        views = _views(image, work, tile=True)[None]
        out = self.model.answers(views, network_runs)[0]
        probability = segnet_probability(self.segnet, work, flips=recipe.detector_flips,
                                         runs=runs)
        flagged = None
        if recipe.blur_excludes_flagged:
            flagged = cv2.dilate((probability >= self.threshold).astype(np.uint8),
                                 _NEIGHBOURS) > 0
        return Measurement(float(out[0]), float(out[1]),
                           *estimate_blur_sigmas(luminance(work), exclude=flagged),
                           crack_features(probability, self.threshold))


class NetTriage:
    """Stage: the trained triage network fused with the detector and a blur measure."""

    spec: ClassVar[StageSpec] = StageSpec(
        id=TRIAGE_NET,
        kind=StageKind.TRIAGE,
        method="net",
        title="Trained triage (Keras + detector)",
        description="A small network trained on synthetic blur and cracks over clean photos, "
                    "its crack answer checked against the learned detector's mask and its "
                    "blur answer against the measured edge width.",
        produces=frozenset({"triage"}),
        weights=(WEIGHT_ID, SEGNET_ID, FUSION_ID),
    )

    def __init__(self, weight_path: WeightPath, fade: FadeMeasure | None = None,
                 damage: DamageMeasure | None = None, *, device: str = "auto",
                 precision: str = "auto") -> None:
        self.fade = fade
        self.damage = damage
        segnet_path, model_path = weight_path(SEGNET_ID), weight_path(WEIGHT_ID)
        self.fusion = load_fusion(weight_path(FUSION_ID), segnet_path, model_path)
        self.network = TriageNetwork(model_path, segnet_path, device=device, precision=precision)

    def measure(self, image: np.ndarray, runs: list[Any] | None = None,
                network_runs: list[Any] | None = None) -> Measurement:
        """The measurements of float (H, W, 3) [0, 1] ``image`` its fusion was fitted on."""
        return self.network.measure(image, self.fusion.recipe, runs, network_runs)

    def probabilities(self, image: np.ndarray) -> tuple[float, float]:
        """Fused (p_blur, p_crack) in [0, 1] for float (H, W, 3) [0, 1] ``image``."""
        return fuse(self.fusion, self.measure(image))

    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        progress(0.0, "looking for blur and cracks")
        runs: list[Any] = []
        network_runs: list[Any] = []
        measured = self.measure(work.image, runs, network_runs)
        p_blur, p_crack = fuse(self.fusion, measured)
        result = labels_from_probabilities(p_blur, p_crack, method="net", labels=label_probabilities(
            p_blur, p_crack, work.image, self.fade, self.damage))
        info = {**result.scores, "net_p_blur": round(measured.p_blur, 4),
                "net_p_crack": round(measured.p_crack, 4),
                "blur_sigma": round(measured.blur_sigma, 3),
                "blur_sigma_widest": round(measured.blur_sigma_widest, 3),
                "flagged_log10": round(measured.features[0], 3),
                "longest_defect": round(measured.features[1], 4),
                "flagged_confidence": round(measured.features[2], 4),
                "runtime": self.network.segnet.record(runs),
                "network_runtime": self.network.model.record(network_runs)}
        return StageOutput(triage=result, info=info)
