"""Face restoration with GFP-GAN v1.4: find faces, align, restore, and blend them back.

Steps for a photo (float32 (H, W, 3) RGB in [0, 1]):

1. **Detect** with facexlib's RetinaFace-ResNet50 on a copy whose long side is at most
   ``DETECT_SIDE`` px (BGR, 0-255, as the detector was trained). Implausible detections
   (non-finite, centre outside the photo, eyes closer than 5 px) are dropped.
2. **Choose** the faces the options ask for: all, the centre one, or those at least
   ``min_size`` px; at most ``max_faces`` (the largest), with a message when more were found.
3. **Align** each face to the FFHQ five-point template: a 512 x 512 crop (similarity
   transform, like facexlib's FaceRestoreHelper).
4. **Restore** the crop with GFPGANv1Clean. The StyleGAN noise is the fixed set of N(0, 1) maps
   stored in the checkpoint (``randomize_noise=False``): results repeat exactly run to run and
   under concurrency, and torch's global random state is never touched. Grayscale and toned
   photos get their tone back on the restored crop (:func:`restorer.tone.apply_tone`), so
   GFP-GAN's added colour never reaches the output.
5. **Blend back**. ParseNet segments the restored face; its face classes, blurred (as
   facexlib does), warped back with the inverse alignment, give a soft mask ``m``. Each output
   pixel becomes ``x + fidelity * m * (restored - x)`` where ``x`` is the (upscaled) input. So
   ``fidelity`` is an honest blend of the restored and the input face: 0 gives the input
   exactly, 1 the full restoration. (Blending the aligned crops before the warp back could not
   give the input exactly: the crop-and-warp round trip resamples the face.)

Third-party code: gfpgan, facexlib and basicsr are imported here and nowhere else in restorer,
on first use (:func:`third_party`), after torch and torchvision (:mod:`restorer.backends`).
gfpgan imports basicsr 1.4.2, whose ``basicsr.data.degradations`` imports
``torchvision.transforms.functional_tensor``, a module torchvision removed; only
``rgb_to_grayscale`` is taken from it, and only basicsr's training code calls it. A stand-in
module exposing torchvision's public ``rgb_to_grayscale`` is registered under that name before
the import, only when torchvision lacks the module. This keeps the pinned, published packages
(the PyPI forks overwrite the same package folders) and adds no copy of the architecture to
maintain.

No downloads: facexlib's model-building helpers (which download into their package folder
when a file is missing, without a hash check) and GFPGANer (hard-coded weight folder,
``torch.load`` without ``weights_only``, errors printed and swallowed) are not used. The three
networks are built from facexlib's and gfpgan's architecture classes and loaded from files the
weight store has verified (sha256), with ``torch.load(weights_only=True)``.

Concurrency: the networks are loaded once and shared. GFPGAN and ParseNet forwards keep no
state. RetinaFace's ``detect_faces`` stores per-call values on the module (input scale and
resize factor), so detection runs under a lock. The rest of a call (alignment, masks, paste)
works on local arrays only.

Device: CUDA when present (GFPGAN and ParseNet under fp16 autocast, which keeps reductions in
fp32; a face whose fp16 result is not finite is redone in fp32), else CPU; ``device`` forces
one. A CUDA out-of-memory error reruns that step on a CPU copy of the networks (loaded once, on
first need) and says so in the stage's messages.
"""

from __future__ import annotations

import importlib.util
import logging
import pickle
import sys
import threading
import time
import types
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, TypeVar

import cv2
import numpy as np

from restorer.backends import resolve_device, torch_stack
from restorer.errors import PlanError, RestorerError, StageUnavailableError, WeightsError
from restorer.stages.base import Option, ProgressFn, StageKind, StageOutput, StageSpec, Work
from restorer.tone import Tone, analyse_tone, apply_tone
from restorer.weights import Manifest, WeightEntry, load_torch_checkpoint, sha256_file

if TYPE_CHECKING:
    import torch

__all__ = [
    "DETECT_SIDE",
    "FACE_CHOICES",
    "FFHQ_TEMPLATE",
    "GFPGAN_V14_ARCH",
    "PARSENET_ARCH",
    "UPSCALES",
    "WEIGHT_IDS",
    "FaceArchitectures",
    "FaceLibraries",
    "FaceOptions",
    "GfpganFace",
    "third_party",
    "write_standin_weights",
]

log = logging.getLogger(__name__)

WEIGHT_IDS: tuple[str, ...] = ("gfpgan_v1_4", "retinaface_resnet50", "parsenet")
"""Manifest ids of GFP-GAN v1.4, the RetinaFace-R50 detector and the ParseNet face parser."""

FACE_SIZE = 512
FFHQ_TEMPLATE = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                          [201.26117, 371.41043], [313.08905, 371.15118]], dtype=np.float32)
"""Where the eyes, nose tip and mouth corners sit (x, y) in a 512 px FFHQ-aligned face."""

DETECT_SIDE = 1600
"""Faces are detected on a copy whose long side is at most this many pixels."""
DETECT_THRESHOLD = 0.97
NMS_THRESHOLD = 0.4
MIN_EYE_DISTANCE = 5.0

UPSCALES = (1, 2, 4)
FACE_CHOICES = ("all", "centre", "large")

#: facexlib's grey outside the photo in aligned crops (RGB of its BGR (135, 133, 132)).
_BORDER = (132 / 255, 133 / 255, 135 / 255)
#: ParseNet classes blended back: skin, brows, eyes, glasses, ears, earring, nose, mouth, lips
#: (not 0 background, 14 neck, 16 cloth, 17 hair, 18 hat), as facexlib pastes them.
_FACE_CLASSES = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15])

GFPGAN_V14_ARCH: Mapping[str, Any] = types.MappingProxyType({
    "out_size": 512, "num_style_feat": 512, "channel_multiplier": 2, "decoder_load_path": None,
    "fix_decoder": False, "num_mlp": 8, "input_is_latent": True, "different_w": True,
    "narrow": 1, "sft_half": True,
})
"""GFPGANv1Clean arguments of the published GFPGANv1.4.pth (as in gfpgan's GFPGANer)."""

PARSENET_ARCH: Mapping[str, Any] = types.MappingProxyType(
    {"in_size": 512, "out_size": 512, "parsing_ch": 19})
"""ParseNet arguments of facexlib's parsing_parsenet.pth."""


@dataclass(frozen=True)
class FaceArchitectures:
    """Constructor arguments of the networks; the defaults fit the published checkpoints.

    Tests and benchmarks pass smaller ones together with matching stand-in weights. The
    detector is always RetinaFace-ResNet50.
    """

    gfpgan: Mapping[str, Any] = field(default_factory=lambda: dict(GFPGAN_V14_ARCH))
    parsenet: Mapping[str, Any] = field(default_factory=lambda: dict(PARSENET_ARCH))


# --------------------------------------------------------------------------- third-party imports
@dataclass(frozen=True)
class FaceLibraries:
    """torch and the network classes restorer takes from gfpgan and facexlib."""

    torch: types.ModuleType
    GFPGANv1Clean: type
    RetinaFace: type
    ParseNet: type


_FUNCTIONAL_TENSOR = "torchvision.transforms.functional_tensor"
_import_lock = threading.Lock()
_third_party: FaceLibraries | None = None


def third_party() -> FaceLibraries:
    """torch and the three network classes, imported once, on first use (thread-safe).

    Raises StageUnavailableError when the packages are missing or cannot be imported.
    """
    global _third_party
    with _import_lock:
        if _third_party is None:
            torch, torchvision = torch_stack()
            _register_functional_tensor_standin(torchvision)
            try:
                from facexlib.detection.retinaface import RetinaFace
                from facexlib.parsing.parsenet import ParseNet
                from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean
            except ImportError as exc:
                raise StageUnavailableError(
                    f"face restoration needs gfpgan, facexlib and basicsr ({exc}); install them "
                    "with: pip install -r requirements.txt --no-build-isolation") from exc
            _third_party = FaceLibraries(torch, GFPGANv1Clean, RetinaFace, ParseNet)
        return _third_party


def _register_functional_tensor_standin(torchvision: types.ModuleType) -> None:
    """Give basicsr 1.4.2 the ``rgb_to_grayscale`` it imports from a module torchvision removed."""
    if _FUNCTIONAL_TENSOR in sys.modules or importlib.util.find_spec(_FUNCTIONAL_TENSOR) is not None:
        return
    standin = types.ModuleType(
        _FUNCTIONAL_TENSOR, "Stand-in registered by restorer.stages.face: torchvision removed this "
        "module; basicsr 1.4.2 imports rgb_to_grayscale from it (training code only).")
    standin.rgb_to_grayscale = torchvision.transforms.functional.rgb_to_grayscale
    sys.modules[_FUNCTIONAL_TENSOR] = standin
    log.debug("registered a stand-in for %s", _FUNCTIONAL_TENSOR)


# --------------------------------------------------------------------------- networks
@dataclass(frozen=True)
class _Nets:
    """The three networks on one device, in eval mode."""

    device: torch.device
    detector: Any
    parser: Any
    gfpgan: Any


def _state_dict(path: Path, weight_id: str) -> dict[str, Any]:
    """The tensors of a verified checkpoint, out of basicsr's containers, without "module."."""
    try:
        state = load_torch_checkpoint(path)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise WeightsError(f"{path.name} [{weight_id}] cannot be read as a weights-only torch "
                           f"checkpoint ({type(exc).__name__}: {exc}); check the manifest entry") from exc
    if isinstance(state, Mapping):
        state = state.get("params_ema", state.get("params", state))  # basicsr's containers
    if not isinstance(state, Mapping):
        raise WeightsError(f"{path.name} [{weight_id}] holds no state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load(module: Any, path: Path, weight_id: str) -> Any:
    """Load ``path`` into ``module`` (strict) and return it in eval mode; WeightsError if it does not fit."""
    try:
        module.load_state_dict(_state_dict(path, weight_id), strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise WeightsError(f"{path.name} [{weight_id}] does not fit the {type(module).__name__} "
                           f"architecture restorer builds ({first}); the file holds another "
                           "model than the manifest entry describes") from exc
    return module.eval()


def _load_nets(tp: FaceLibraries, paths: Mapping[str, Path], archs: FaceArchitectures,
               device: torch.device) -> _Nets:
    """The three networks built with ``archs``, loaded from ``paths`` (by weight id), on ``device``."""
    gfpgan = _load(tp.GFPGANv1Clean(**archs.gfpgan), paths["gfpgan_v1_4"], "gfpgan_v1_4")
    parser = _load(tp.ParseNet(**archs.parsenet), paths["parsenet"], "parsenet")
    detector = tp.RetinaFace(network_name="resnet50", half=False, device=device)
    _load(detector, paths["retinaface_resnet50"], "retinaface_resnet50")
    return _Nets(device, detector.to(device), parser.to(device), gfpgan.to(device))


# --------------------------------------------------------------------------- options
@dataclass(frozen=True)
class FaceOptions:
    """Validated per-run options of :class:`GfpganFace` (see its spec for the defaults).

    ``fidelity`` in [0, 1]: share of the restoration kept (0 input, 1 full restoration).
    ``faces``: "all", "centre" (the face nearest the centre) or "large" (faces whose box is at
    least ``min_size`` px on its short side). ``upscale``: 1, 2 or 4 (reduced to fit the stage's
    pixel budget). ``aligned``: the photo is already an FFHQ-aligned square face crop.
    """

    fidelity: float
    faces: str
    min_size: int
    upscale: int
    aligned: bool

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> FaceOptions:
        """Check ``options``; PlanError naming the bad one and what it accepts."""
        def bad(name: str, accepts: str) -> PlanError:
            return PlanError(f"face option '{name}' must be {accepts}, got {options[name]!r}")

        fidelity, faces, min_size = options["fidelity"], options["faces"], options["min_size"]
        upscale, aligned = options["upscale"], options["aligned"]
        if isinstance(fidelity, bool) or not isinstance(fidelity, (int, float)) \
                or not 0.0 <= fidelity <= 1.0:
            raise bad("fidelity", "a number from 0 (input face) to 1 (full restoration)")
        if faces not in FACE_CHOICES:
            raise bad("faces", " or ".join(FACE_CHOICES))
        if isinstance(min_size, bool) or not isinstance(min_size, (int, float)) \
                or min_size < 0 or not float(min_size).is_integer():
            raise bad("min_size", "a whole number of pixels, 0 or more")
        if isinstance(upscale, bool) or upscale not in UPSCALES:
            raise bad("upscale", "1, 2 or 4")
        if not isinstance(aligned, bool):
            raise bad("aligned", "true or false")
        return cls(float(fidelity), faces, int(min_size), int(upscale), aligned)


# --------------------------------------------------------------------------- geometry
@dataclass(frozen=True, eq=False)
class _Face:
    """A detection in input pixels: box (x0, y0, x1, y1), score, landmarks (5, 2). Compared by identity."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray

    @property
    def side(self) -> float:
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])

    @property
    def centre(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])


def _plausible_faces(rows: np.ndarray, scale: float, shape: tuple[int, int]) -> list[_Face]:
    """RetinaFace rows (x0, y0, x1, y1, score, 10 landmark coords) found at ``scale`` -> faces."""
    height, width = shape
    faces = []
    for row in np.asarray(rows, dtype=np.float64).reshape(-1, 15):
        if not np.isfinite(row).all():
            continue
        box = row[:4] / scale
        landmarks = (row[5:] / scale).reshape(5, 2)
        size = box[2:] - box[:2]
        centre = (box[:2] + box[2:]) / 2
        if (size <= 0).any() or (size > 2 * max(height, width)).any():
            continue
        if not (0 <= centre[0] < width and 0 <= centre[1] < height):
            continue
        if np.hypot(*(landmarks[0] - landmarks[1])) < MIN_EYE_DISTANCE:
            continue
        faces.append(_Face(tuple(float(v) for v in box), float(row[4]), landmarks.astype(np.float32)))
    return faces


def _select(faces: list[_Face], options: FaceOptions, shape: tuple[int, int],
            max_faces: int) -> tuple[list[_Face], list[tuple[_Face, str]]]:
    """The faces to restore (detection order) and the others with the reason they are left."""
    if options.faces == "centre" and faces:
        middle = np.array([shape[1] / 2, shape[0] / 2])
        best = min(faces, key=lambda f: float(np.hypot(*(f.centre - middle))))
        return [best], [(f, "not the centre face") for f in faces if f is not best]
    small = [f for f in faces if options.faces == "large" and f.side < options.min_size]
    skipped = [(f, f"smaller than {options.min_size} px") for f in small]
    chosen = [f for f in faces if f not in small]
    if len(chosen) > max_faces:
        largest = sorted(chosen, key=lambda f: -f.side)[:max_faces]
        skipped += [(f, f"beyond the {max_faces} largest faces") for f in chosen if f not in largest]
        chosen = [f for f in chosen if f in largest]
    return chosen, skipped


def _alignment(landmarks: np.ndarray) -> np.ndarray | None:
    """2x3 similarity mapping input pixels to the 512 px aligned crop; None if degenerate."""
    affine, _ = cv2.estimateAffinePartial2D(landmarks, FFHQ_TEMPLATE, method=cv2.LMEDS)
    if affine is None or not np.isfinite(affine).all() or abs(np.linalg.det(affine[:, :2])) < 1e-8:
        return None
    return affine


def _inverse(affine: np.ndarray, upscale: int) -> np.ndarray:
    """2x3 map from crop pixels to output pixels of a photo upscaled ``upscale`` times.

    OpenCV puts pixel centres at integers, so input x lands at ``u * x + (u - 1) / 2`` after an
    ``u`` times resize.
    """
    inverse = cv2.invertAffineTransform(affine) * upscale
    inverse[:, 2] += (upscale - 1) / 2
    return inverse


def _paste(out: np.ndarray, face: np.ndarray, weight: np.ndarray, inverse: np.ndarray) -> None:
    """Blend ``face`` (512, 512, 3) into ``out`` (H, W, 3) in place: ``out += w * (face - out)``.

    ``weight`` (512, 512) in [0, 1] is warped with ``inverse`` like the face. Only the box the
    warped crop covers is touched; where ``w`` is 0 the pixel is left exactly as it was.
    """
    height, width = out.shape[:2]
    corners = np.array([[0, 0, 1], [FACE_SIZE, 0, 1], [0, FACE_SIZE, 1], [FACE_SIZE, FACE_SIZE, 1]],
                       dtype=np.float64) @ inverse.T
    x0, y0 = np.maximum(np.floor(corners.min(axis=0)).astype(int) - 1, 0)
    x1 = min(width, int(np.ceil(corners[:, 0].max())) + 2)
    y1 = min(height, int(np.ceil(corners[:, 1].max())) + 2)
    if x0 >= x1 or y0 >= y1:
        return
    local = inverse.copy()
    local[:, 2] -= (x0, y0)
    size = (int(x1 - x0), int(y1 - y0))
    face_roi = cv2.warpAffine(face, local, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    weight_roi = cv2.warpAffine(weight, local, size, flags=cv2.INTER_CUBIC,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    weight_roi = np.clip(weight_roi, 0.0, 1.0)[..., None]
    region = out[y0:y1, x0:x1]
    region += weight_roi * (np.clip(face_roi, 0.0, 1.0) - region)


def _upscaled(image: np.ndarray, upscale: int) -> np.ndarray:
    """A new float32 copy of ``image`` resized ``upscale`` times (Lanczos, clipped to [0, 1])."""
    if upscale == 1:
        return image.copy()
    height, width = image.shape[:2]
    big = cv2.resize(image, (width * upscale, height * upscale), interpolation=cv2.INTER_LANCZOS4)
    return np.clip(big, 0.0, 1.0, out=big)


def _box_out(box: tuple[float, ...], upscale: int, shape: tuple[int, int]) -> list[int]:
    """A face box in output pixels (x0, y0, x1, y1), clipped to the output."""
    height, width = shape
    x0, y0, x1, y1 = (v * upscale for v in box)
    return [int(np.clip(round(x0), 0, width)), int(np.clip(round(y0), 0, height)),
            int(np.clip(round(x1), 0, width)), int(np.clip(round(y1), 0, height))]


# --------------------------------------------------------------------------- the stage
_T = TypeVar("_T")


class GfpganFace:
    """Stage: restore faces with GFP-GAN v1.4 and blend them back (see the module docstring).

    ``weight_path(id)`` returns the verified local file of a manifest id and must not download
    (the service passes ``WeightStore.resolve(id, download=False)``). ``device`` is "auto",
    "cpu", "cuda" or "cuda:N"; ``precision`` "auto" (fp16 autocast on CUDA, fp32 on CPU),
    "fp16" (CUDA only) or "fp32". ``pixel_budget`` caps the output size (width x height) that
    upscaling may produce. The networks are loaded here, once.
    """

    spec: ClassVar[StageSpec] = StageSpec(
        id="face.gfpgan",
        kind=StageKind.FACE,
        method="gfpgan",
        title="GFP-GAN v1.4 faces",
        description="Finds faces, restores each with GFP-GAN v1.4 and blends it back along the "
                    "face outline; fidelity 0 keeps the input face, 1 the full restoration.",
        weights=WEIGHT_IDS,
        options={
            "fidelity": Option.number(1.0, 0.0, 1.0,
                                      help="0 keeps the input face, 1 the full restoration"),
            "faces": Option.choice("all", FACE_CHOICES, help="which faces to restore"),
            "min_size": Option.integer(64, 0, 8192, help="'large' faces: at least this many px"),
            "upscale": Option.choice(1, UPSCALES, help="output scale"),
            "aligned": Option.flag(False, help="the photo is an FFHQ-aligned face crop"),
        },
    )

    def __init__(
        self,
        weight_path: Callable[[str], Path],
        *,
        device: str = "auto",
        precision: str = "auto",
        archs: FaceArchitectures = FaceArchitectures(),
        max_faces: int = 32,
        pixel_budget: int = 40_000_000,
    ) -> None:
        if precision not in ("auto", "fp16", "fp32"):
            raise RestorerError(f"unknown precision '{precision}': use auto, fp16 or fp32")
        tp = third_party()
        self._torch = tp.torch
        self._third_party = tp
        self._archs = archs
        self._paths = {weight_id: Path(weight_path(weight_id)) for weight_id in WEIGHT_IDS}
        main = resolve_device(device)
        if precision == "fp16" and main.type != "cuda":
            raise RestorerError("fp16 needs a CUDA device; use precision 'fp32' or 'auto' on the CPU")
        self.half = main.type == "cuda" and precision != "fp32"
        self.max_faces = max_faces
        self.pixel_budget = pixel_budget
        self._nets = _load_nets(tp, self._paths, archs, main)
        #: Where a step reruns after a CUDA out-of-memory error (None: no fallback).
        self._fallback_device = tp.torch.device("cpu") if main.type == "cuda" else None
        self._fallback_nets: _Nets | None = None
        self._fallback_lock = threading.Lock()
        self._detect_lock = threading.Lock()
        log.info("face.gfpgan loaded on %s (%s)", main, "fp16 autocast" if self.half else "fp32")

    @property
    def device(self) -> str:
        """Where the networks run, e.g. "cpu" or "cuda:0"."""
        return str(self._nets.device)

    # ----------------------------------------------------------------------- run
    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        """Restore the faces of ``work.image``; the image may grow by ``upscale``.

        ``info`` holds faces_found, faces_restored, boxes (restored faces, output pixels
        [x0, y0, x1, y1]), skipped (box and reason), fidelity, upscale, device, precision,
        milliseconds per step, and messages (fallbacks, limits applied).
        """
        opts = FaceOptions.parse(options)
        image = work.image
        height, width = image.shape[:2]
        messages: list[str] = []
        ms: dict[str, float] = {"detect": 0.0, "align": 0.0, "restore": 0.0, "parse": 0.0, "paste": 0.0}
        upscale = self._fit_upscale(opts.upscale, height, width, messages)
        tone = analyse_tone(image)
        out_shape = (height * upscale, width * upscale)

        if opts.aligned:
            out = self._run_aligned(image, opts.fidelity, upscale, tone, messages, ms)
            found, restored_boxes, skipped = 1, [[0, 0, out_shape[1], out_shape[0]]], []
        else:
            progress(0.0, "finding faces")
            began = time.perf_counter()
            faces = self._detect(image, messages)
            ms["detect"] += (time.perf_counter() - began) * 1000
            chosen, left = _select(faces, opts, (height, width), self.max_faces)
            if not faces:
                messages.append("no face found")
            if capped := sum(why.startswith("beyond") for _, why in left):
                messages.append(f"{len(chosen) + capped} faces qualified; only the "
                                f"{self.max_faces} largest were restored")
            out = _upscaled(image, upscale)
            restored_boxes = []
            for index, face in enumerate(chosen):
                progress(index / len(chosen), f"restoring face {index + 1} of {len(chosen)}")
                if self._restore_into(out, image, face, opts.fidelity, upscale, tone, messages, ms):
                    restored_boxes.append(_box_out(face.box, upscale, out_shape))
                else:
                    left.append((face, "its landmarks give no usable alignment"))
            found = len(faces)
            skipped = [{"box": _box_out(f.box, upscale, out_shape), "why": why} for f, why in left]
        progress(1.0, f"{len(restored_boxes)} face(s) restored")
        for message in messages:
            log.info("face.gfpgan: %s", message)
        return StageOutput(image=out, info={
            "faces_found": found,
            "faces_restored": len(restored_boxes),
            "boxes": restored_boxes,
            "skipped": skipped,
            "fidelity": opts.fidelity,
            "upscale": upscale,
            "device": self.device,
            "precision": "fp16" if self.half else "fp32",
            "ms": {step: round(value, 1) for step, value in ms.items()},
            "messages": messages,
        })

    def _fit_upscale(self, wanted: int, height: int, width: int, messages: list[str]) -> int:
        """The largest of UPSCALES up to ``wanted`` whose output fits ``pixel_budget`` (at least 1)."""
        fits = [u for u in UPSCALES if u <= wanted and (u == 1 or height * width * u * u <= self.pixel_budget)]
        upscale = max(fits)
        if upscale != wanted:
            messages.append(f"upscale {wanted}x would make {height * width * wanted ** 2 / 1e6:.0f} MP, "
                            f"over the {self.pixel_budget / 1e6:.0f} MP budget; used {upscale}x")
        return upscale

    def _run_aligned(self, image: np.ndarray, fidelity: float, upscale: int, tone: Tone,
                     messages: list[str], ms: dict[str, float]) -> np.ndarray:
        """Restore a photo that is itself an aligned square face crop."""
        height, width = image.shape[:2]
        if abs(height - width) > 1:
            raise PlanError(f"'aligned' expects a square, FFHQ-aligned face crop (ideally 512x512); "
                            f"this photo is {width}x{height}: turn 'aligned' off to detect faces")
        began = time.perf_counter()
        crop = image if (height, width) == (FACE_SIZE, FACE_SIZE) else cv2.resize(
            image, (FACE_SIZE, FACE_SIZE),
            interpolation=cv2.INTER_AREA if height > FACE_SIZE else cv2.INTER_CUBIC)
        ms["align"] += (time.perf_counter() - began) * 1000
        restored = self._restore(np.clip(crop, 0.0, 1.0), tone, messages, ms)
        size = (width * upscale, height * upscale)
        if restored.shape[:2] != size[::-1]:
            restored = np.clip(cv2.resize(restored, size, interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
        if fidelity == 1.0:
            return restored
        base = _upscaled(image, upscale)
        base += np.float32(fidelity) * (restored - base)
        return base

    def _restore_into(self, out: np.ndarray, image: np.ndarray, face: _Face, fidelity: float,
                      upscale: int, tone: Tone, messages: list[str], ms: dict[str, float]) -> bool:
        """Align, restore and blend one face into ``out``; False when it cannot be aligned."""
        began = time.perf_counter()
        affine = _alignment(face.landmarks)
        if affine is None:
            return False
        crop = cv2.warpAffine(image, affine, (FACE_SIZE, FACE_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=_BORDER)
        ms["align"] += (time.perf_counter() - began) * 1000
        restored = self._restore(np.clip(crop, 0.0, 1.0), tone, messages, ms)
        began = time.perf_counter()
        weight = self._face_mask(restored, messages) * np.float32(fidelity)
        ms["parse"] += (time.perf_counter() - began) * 1000
        began = time.perf_counter()
        _paste(out, restored, weight, _inverse(affine, upscale))
        ms["paste"] += (time.perf_counter() - began) * 1000
        return True

    # ----------------------------------------------------------------------- networks
    def _detect(self, image: np.ndarray, messages: list[str]) -> list[_Face]:
        """Plausible faces of float (H, W, 3) ``image``, in detection order."""
        height, width = image.shape[:2]
        scale = min(1.0, DETECT_SIDE / max(height, width))
        small = image if scale == 1.0 else cv2.resize(
            image, (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA)
        bgr = np.ascontiguousarray(small[..., ::-1] * np.float32(255.0))
        torch = self._torch

        def detect(nets: _Nets) -> np.ndarray:
            # RetinaFace.detect_faces keeps per-call values on the module: one call at a time.
            with self._detect_lock, torch.inference_mode():
                return nets.detector.detect_faces(bgr, DETECT_THRESHOLD, NMS_THRESHOLD)

        return _plausible_faces(self._on_device("face detection", detect, messages), scale,
                                (height, width))

    def _restore(self, crop: np.ndarray, tone: Tone, messages: list[str],
                 ms: dict[str, float]) -> np.ndarray:
        """GFP-GAN on one aligned crop, float32 (512, 512, 3) [0, 1] in and out, tone kept."""
        torch = self._torch
        began = time.perf_counter()
        x = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None] * 2.0 - 1.0

        def forward(nets: _Nets, half: bool) -> np.ndarray:
            with torch.inference_mode(), self._autocast(nets, half):
                y = nets.gfpgan(x.to(nets.device), return_rgb=False, randomize_noise=False)[0]
            return y.float()[0].permute(1, 2, 0).cpu().numpy()

        y = self._on_device("GFP-GAN", lambda nets: forward(nets, self.half), messages)
        if not np.isfinite(y).all() and self.half:
            messages.append("GFP-GAN overflowed in fp16 on a face; it was redone in fp32")
            y = self._on_device("GFP-GAN", lambda nets: forward(nets, False), messages)
        if not np.isfinite(y).all():
            raise RestorerError("GFP-GAN returned invalid values (NaN or infinity) for a face; "
                                "the weight file may be damaged: run 'python -m restorer weights verify'")
        restored = np.clip((y + 1.0) / 2.0, 0.0, 1.0).astype(np.float32)
        if tone.kind != "colour":
            restored = apply_tone(restored, tone)
        ms["restore"] += (time.perf_counter() - began) * 1000
        return restored

    def _face_mask(self, restored: np.ndarray, messages: list[str]) -> np.ndarray:
        """Soft face mask float32 (512, 512) [0, 1] of a restored crop (ParseNet, as facexlib)."""
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(restored.transpose(2, 0, 1)))[None] * 2.0 - 1.0

        def parse(nets: _Nets) -> np.ndarray:
            with torch.inference_mode(), self._autocast(nets, self.half):
                logits = nets.parser(x.to(nets.device))[0]
            return logits.argmax(dim=1)[0].cpu().numpy()

        classes = self._on_device("face parsing", parse, messages)
        mask = np.isin(classes, _FACE_CLASSES).astype(np.float32)
        mask = cv2.GaussianBlur(mask, (101, 101), 11)
        mask = cv2.GaussianBlur(mask, (101, 101), 11)
        border = 10
        mask[:border, :] = mask[-border:, :] = mask[:, :border] = mask[:, -border:] = 0.0
        return mask

    def _autocast(self, nets: _Nets, half: bool) -> AbstractContextManager[Any]:
        if half and nets.device.type == "cuda":
            return self._torch.autocast(device_type="cuda", dtype=self._torch.float16)
        return nullcontext()

    def _on_device(self, what: str, step: Callable[[_Nets], _T], messages: list[str]) -> _T:
        """Run ``step`` on the main networks; after a CUDA out-of-memory error, on the fallback."""
        torch = self._torch
        try:
            return step(self._nets)
        except torch.cuda.OutOfMemoryError:
            if self._fallback_device is None:
                raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        note = f"the GPU ran out of memory during {what}; that step ran on the CPU instead (slower)"
        log.warning("face.gfpgan: %s", note)
        if note not in messages:
            messages.append(note)
        return step(self._fallback())

    def _fallback(self) -> _Nets:
        with self._fallback_lock:
            if self._fallback_nets is None:
                self._fallback_nets = _load_nets(self._third_party, self._paths, self._archs,
                                                 self._fallback_device)
            return self._fallback_nets


# --------------------------------------------------------------------------- stand-in weights
def write_standin_weights(folder: Path, *, archs: FaceArchitectures = FaceArchitectures(),
                          seed: int = 0, place_faces: bool = True) -> Manifest:
    """Random-weight checkpoints of the three networks in ``folder`` and a manifest for them.

    For tests and benchmarks where the published files are not reachable. Files get the
    manifest's local names and ids; the returned manifest holds their sha256 and sizes, so a
    WeightStore with ``bundled_dir=folder`` resolves and verifies them like real ones. The
    networks are seeded (torch's global random state is restored afterwards).

    A RetinaFace with random weights reports thousands of absurd boxes. With ``place_faces``
    its backbone stays random but its heads are fixed: every anchor of 256 px on the coarsest
    level is a face (score 0.9997) whose five landmarks sit where the FFHQ template puts them
    in that square; the other anchors are background. The detection path then runs end to end
    and places faces at known squares. Such a detector finds nothing about real faces.
    """
    tp = third_party()
    torch = tp.torch
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        nets = {
            "gfpgan_v1_4": ("GFPGANv1.4.pth", tp.GFPGANv1Clean(**archs.gfpgan)),
            "retinaface_resnet50": ("detection_Resnet50_Final.pth",
                                    tp.RetinaFace(network_name="resnet50", half=False,
                                                  device=torch.device("cpu"))),
            "parsenet": ("parsing_parsenet.pth", tp.ParseNet(**archs.parsenet)),
        }
    if place_faces:
        _place_faces(torch, nets["retinaface_resnet50"][1])
    entries = []
    for weight_id, (name, net) in nets.items():
        path = folder / name
        state = {"params_ema": net.state_dict()} if weight_id == "gfpgan_v1_4" else net.state_dict()
        torch.save(state, path)
        entries.append(WeightEntry(
            id=weight_id, repo_id="restorer/standin", filename=name, local_name=name,
            revision="main", sha256=sha256_file(path), size=path.stat().st_size, format="pth",
            licence="none (random weights)", stage="face", input_contract=None, bundled=True,
            description=f"random stand-in for {name} (seed {seed})"))
    return Manifest(tuple(entries))


def _place_faces(torch: Any, detector: Any) -> None:
    """Fix RetinaFace's heads so the 256 px anchors of its coarsest level are template faces."""
    # Landmarks decode as centre + pred * 0.1 * anchor size: put the template in the anchor square.
    template = torch.from_numpy((FFHQ_TEMPLATE.reshape(-1) - FACE_SIZE / 2) / (FACE_SIZE * 0.1))
    with torch.no_grad():
        for level in range(3):
            for head in (detector.ClassHead[level], detector.BboxHead[level], detector.LandmarkHead[level]):
                head.conv1x1.weight.zero_()
                head.conv1x1.bias.zero_()
            face = level == 2  # anchors 256 and 512 px; only the first (256 px) is a face
            detector.ClassHead[level].conv1x1.bias.copy_(torch.tensor(
                [-4.0, 4.0, 4.0, -4.0] if face else [4.0, -4.0, 4.0, -4.0]))
            if face:
                detector.LandmarkHead[level].conv1x1.bias[:10] = template
