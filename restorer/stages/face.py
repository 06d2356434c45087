"""Face restoration with GFP-GAN v1.4: find faces, align, restore, and blend them back.

Steps for a photo (float32 (H, W, 3) RGB in [0, 1]):

1. **Detect** faces and **align** each to the FFHQ template (:mod:`restorer.stages.face_detect`).
2. **Choose** the faces the options ask for: all, the centre one, or those at least
   ``min_size`` px; at most ``max_faces`` (the largest), with a message when more were found.
3. **Restore** the crop with GFPGANv1Clean (:mod:`restorer.stages.face_nets`). The StyleGAN
   noise is the fixed set of N(0, 1) maps stored in the checkpoint (``randomize_noise=False``):
   results repeat exactly run to run and under concurrency, and torch's global random state is
   never touched. Grayscale and toned photos get their tone back on the restored crop
   (:func:`restorer.tone.apply_tone`), so GFP-GAN's added colour never reaches the output.
4. **Blend back** (:mod:`restorer.stages.face_blend`): ParseNet's face classes give a soft
   mask ``m``; each output pixel becomes ``x + fidelity * m * (restored - x)`` where ``x`` is
   the (upscaled) input. So ``fidelity`` is an honest blend of the restored and the input
   face: 0 gives the input exactly, 1 the full restoration. (Blending the aligned crops before
   the warp back could not give the input exactly: the crop-and-warp round trip resamples the
   face.)

Networks, device and memory: the three networks are loaded once and shared, each in a
:class:`restorer.runtime.ModelRuntime`: CUDA when present (GFP-GAN and ParseNet under fp16
autocast, which keeps reductions in fp32; a face whose fp16 result is not finite is redone in
fp32), else MPS, else the CPU; ``device`` forces one. An out-of-memory error reruns that step on
a CPU copy of the network (loaded once, on first need) and says so in the stage's messages.
RetinaFace keeps per-call values on the module, so detection runs one call at a time; the
rest of a call (alignment, masks, paste) works on local arrays only. How the networks ran is
the ``runtime`` of the stage's info.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import cv2
import numpy as np

from restorer.errors import PlanError, RestorerError
from restorer.runtime import RunInfo, merge_runs
from restorer.stages.base import Option, ProgressFn, StageKind, StageOutput, StageSpec, Work
from restorer.stages.face_blend import box_out, face_mask, inverse_map, paste, upscaled
from restorer.stages.face_detect import (DETECT_SIDE, FACE_SIZE, FFHQ_TEMPLATE, Face,
                                         aligned_crop, alignment, detect_faces, select_faces)
from restorer.stages.face_nets import (GFPGAN_V14_ARCH, PARSENET_ARCH, WEIGHT_IDS,
                                       FaceArchitectures, FaceLibraries, face_runtimes,
                                       third_party, write_standin_weights)
from restorer.tone import Tone, analyse_tone, apply_tone

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

UPSCALES = (1, 2, 4)
FACE_CHOICES = ("all", "centre", "large")


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



class GfpganFace:
    """Stage: restore faces with GFP-GAN v1.4 and blend them back (see the module docstring).

    ``weight_path(id)`` returns the verified local file of a manifest id and must not download
    (the service passes ``WeightStore.resolve(id, download=False)``). ``device`` is "auto",
    "cpu", "mps", "cuda" or "cuda:N"; ``precision`` "auto" (fp16 autocast on CUDA, fp32
    elsewhere), "fp16" or "bf16" (CUDA only) or "fp32". ``pixel_budget`` caps the output size
    (width x height) that upscaling may produce. The networks are loaded here, once.
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
        paths = {weight_id: Path(weight_path(weight_id)) for weight_id in WEIGHT_IDS}
        self.max_faces = max_faces
        self.pixel_budget = pixel_budget
        self.nets = face_runtimes(paths, archs, device=device, precision=precision)
        log.info("face.gfpgan loaded on %s (%s)", self.device, self.nets.gfpgan.precision)

    @property
    def device(self) -> str:
        """Where the networks run, e.g. "cpu" or "cuda:0"."""
        return self.nets.gfpgan.device

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
        runs: list[RunInfo] = []
        ms: dict[str, float] = {"detect": 0.0, "align": 0.0, "restore": 0.0, "parse": 0.0, "paste": 0.0}
        upscale = self._fit_upscale(opts.upscale, height, width, messages)
        tone = analyse_tone(image)
        out_shape = (height * upscale, width * upscale)

        if opts.aligned:
            out = self._run_aligned(image, opts.fidelity, upscale, tone, runs, ms)
            found, restored_boxes, skipped = 1, [[0, 0, out_shape[1], out_shape[0]]], []
        else:
            progress(0.0, "finding faces")
            began = time.perf_counter()
            faces, detected = detect_faces(self.nets.detector, image)
            runs.append(detected)
            ms["detect"] += (time.perf_counter() - began) * 1000
            chosen, left = select_faces(faces, opts, (height, width), self.max_faces)
            if not faces:
                messages.append("no face found")
            if capped := sum(why.startswith("beyond") for _, why in left):
                messages.append(f"{len(chosen) + capped} faces qualified; only the "
                                f"{self.max_faces} largest were restored")
            out = upscaled(image, upscale)
            restored_boxes = []
            for index, face in enumerate(chosen):
                progress(index / len(chosen), f"restoring face {index + 1} of {len(chosen)}")
                if self._restore_into(out, image, face, opts.fidelity, upscale, tone, runs, ms):
                    restored_boxes.append(box_out(face.box, upscale, out_shape))
                else:
                    left.append((face, "its landmarks give no usable alignment"))
            found = len(faces)
            skipped = [{"box": box_out(f.box, upscale, out_shape), "why": why} for f, why in left]
        progress(1.0, f"{len(restored_boxes)} face(s) restored")
        ran = merge_runs(runs)
        messages += [note for note in (ran.notes if ran else ()) if note not in messages]
        for message in messages:
            log.info("face.gfpgan: %s", message)
        return StageOutput(image=out, info={
            "faces_found": found,
            "faces_restored": len(restored_boxes),
            "boxes": restored_boxes,
            "skipped": skipped,
            "fidelity": opts.fidelity,
            "upscale": upscale,
            "device": self.device if ran is None else ran.device,
            "precision": self.nets.gfpgan.precision,
            "ms": {step: round(value, 1) for step, value in ms.items()},
            "messages": messages,
            "runtime": self.nets.gfpgan.record(runs),
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
                     runs: list[RunInfo], ms: dict[str, float]) -> np.ndarray:
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
        restored = self._restore(np.clip(crop, 0.0, 1.0), tone, runs, ms)
        size = (width * upscale, height * upscale)
        if restored.shape[:2] != size[::-1]:
            restored = np.clip(cv2.resize(restored, size, interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
        if fidelity == 1.0:
            return restored
        base = upscaled(image, upscale)
        base += np.float32(fidelity) * (restored - base)
        return base

    def _restore_into(self, out: np.ndarray, image: np.ndarray, face: Face, fidelity: float,
                      upscale: int, tone: Tone, runs: list[RunInfo], ms: dict[str, float]) -> bool:
        """Align, restore and blend one face into ``out``; False when it cannot be aligned."""
        began = time.perf_counter()
        affine = alignment(face.landmarks)
        if affine is None:
            return False
        crop = aligned_crop(image, affine)
        ms["align"] += (time.perf_counter() - began) * 1000
        restored = self._restore(crop, tone, runs, ms)
        began = time.perf_counter()
        classes, parsed = self.nets.parser.run(restored)
        runs.append(parsed)
        weight = face_mask(classes.argmax(axis=2)) * np.float32(fidelity)
        ms["parse"] += (time.perf_counter() - began) * 1000
        began = time.perf_counter()
        paste(out, restored, weight, inverse_map(affine, upscale))
        ms["paste"] += (time.perf_counter() - began) * 1000
        return True

    def _restore(self, crop: np.ndarray, tone: Tone, runs: list[RunInfo],
                 ms: dict[str, float]) -> np.ndarray:
        """GFP-GAN on one aligned crop, float32 (512, 512, 3) [0, 1] in and out, tone kept."""
        began = time.perf_counter()
        y, run = self.nets.gfpgan.run(crop)
        runs.append(run)
        if not np.isfinite(y).all():
            raise RestorerError("GFP-GAN returned invalid values (NaN or infinity) for a face; "
                                "the weight file may be damaged: run 'python -m restorer weights verify'")
        restored = np.clip((y + 1.0) / 2.0, 0.0, 1.0).astype(np.float32)
        if tone.kind != "colour":
            restored = apply_tone(restored, tone)
        ms["restore"] += (time.perf_counter() - began) * 1000
        return restored
