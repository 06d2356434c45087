"""The face stage's networks: gfpgan and facexlib imported once, loaded from verified files.

gfpgan, facexlib and basicsr are imported here and nowhere else in restorer, on first use
(:func:`third_party`), after torch and torchvision (:mod:`restorer.backends`). gfpgan imports
basicsr 1.4.2, whose ``basicsr.data.degradations`` imports
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
weight store has verified (sha256), with ``torch.load(weights_only=True)``; each runs in a
:class:`restorer.runtime.ModelRuntime` (:func:`face_runtimes`).
"""

from __future__ import annotations

import importlib.util
import logging
import pickle
import sys
import threading
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping


from restorer.backends import torch_stack
from restorer.errors import StageUnavailableError, WeightsError
from restorer.runtime_plan import ModelTraits
from restorer.stages.face_detect import FACE_SIZE, FFHQ_TEMPLATE
from restorer.weights import Manifest, WeightEntry, load_torch_checkpoint, sha256_file

if TYPE_CHECKING:
    from restorer.runtime import ModelRuntime

__all__ = ["GFPGAN_V14_ARCH", "PARSENET_ARCH", "WEIGHT_IDS", "FaceArchitectures",
           "FaceLibraries", "FaceRuntimes", "face_runtimes", "third_party",
           "write_standin_weights"]

log = logging.getLogger(__name__)

WEIGHT_IDS: tuple[str, ...] = ("gfpgan_v1_4", "retinaface_resnet50", "parsenet")
"""Manifest ids of GFP-GAN v1.4, the RetinaFace-R50 detector and the ParseNet face parser."""


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



#: GFP-GAN and ParseNet see one whole aligned face (never tiled: min_tile is the face size);
#: fp16 autocast on CUDA as before (reductions stay fp32; a non-finite face is redone in fp32).
GFPGAN_TRAITS = ModelTraits(name="GFP-GAN", reach=None, min_tile=FACE_SIZE, fp16=True,
                            thread_safe=True)
PARSENET_TRAITS = ModelTraits(name="ParseNet", output_channels=19, reach=None,
                              min_tile=FACE_SIZE, fp16=True, thread_safe=True)
#: RetinaFace's detect_faces keeps per-call values on the module: one call at a time, fp32.
DETECTOR_TRAITS = ModelTraits(name="RetinaFace", thread_safe=False)


@dataclass(frozen=True)
class FaceRuntimes:
    """The three networks, each in its runtime (device, precision, out-of-memory fallback)."""

    detector: ModelRuntime
    gfpgan: ModelRuntime
    parser: ModelRuntime


def _restore_forward(model: Any, crop: Any) -> Any:
    """GFP-GAN on a (1, 3, 512, 512) [0, 1] crop -> (1, 3, 512, 512) in [-1, 1]; the StyleGAN
    noise is the fixed set stored in the checkpoint (results repeat exactly)."""
    return model(crop * 2.0 - 1.0, return_rgb=False, randomize_noise=False)[0]


def _parse_forward(model: Any, face: Any) -> Any:
    """ParseNet on a (1, 3, 512, 512) [0, 1] face -> (1, 19, 512, 512) class logits."""
    return model(face * 2.0 - 1.0)[0]


def face_runtimes(paths: Mapping[str, Path], archs: FaceArchitectures, *, device: str = "auto",
                  precision: str = "auto") -> FaceRuntimes:
    """The three networks built with ``archs`` from ``paths`` (by weight id), loaded on
    ``device``; GFP-GAN and ParseNet in ``precision`` (the detector always in fp32)."""
    from restorer.runtime import ModelRuntime

    tp = third_party()

    def detector(target: Any) -> Any:
        net = tp.RetinaFace(network_name="resnet50", half=False, device=target)
        return _load(net, paths["retinaface_resnet50"], "retinaface_resnet50").to(target)

    def gfpgan(target: Any) -> Any:
        return _load(tp.GFPGANv1Clean(**archs.gfpgan), paths["gfpgan_v1_4"], "gfpgan_v1_4").to(target)

    def parser(target: Any) -> Any:
        return _load(tp.ParseNet(**archs.parsenet), paths["parsenet"], "parsenet").to(target)

    return FaceRuntimes(
        detector=ModelRuntime(detector, DETECTOR_TRAITS, device=device, precision="fp32"),
        gfpgan=ModelRuntime(gfpgan, GFPGAN_TRAITS, device=device, precision=precision,
                            forward=_restore_forward),
        parser=ModelRuntime(parser, PARSENET_TRAITS, device=device, precision=precision,
                            forward=_parse_forward))


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
