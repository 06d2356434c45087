"""Trained triage: a small Keras network labels the damage (blur and cracks) of a photo.

A photo of any size is judged from a fixed set of views that keep both kinds of evidence
(:func:`triage_views`): nine crops of ``VIEW_SIZE`` px on a 3 x 3 grid of a working copy whose
long side is at most ``WORK_SIDE`` (blur and thin cracks are measured there at a known scale, as
the heuristic triage does), plus the whole photo shrunk to one view (wide cracks, layout). The
network sees all views at once, scores each with one shared backbone, pools over the views (the
strongest crack evidence counts; blur is judged from all of them) and outputs two independent
sigmoid probabilities, blur and crack. The four labels are their products, as in the heuristic
triage: two binary outputs let every training photo teach both questions, and "blurred+cracked"
needs no examples of its own to be recognised.

TensorFlow comes from :mod:`restorer.backends` (after torch and torchvision, the only import order
that does not crash here) when the stage is built (the registry builds it on first use, or
:func:`restorer.service.warm_up` in the background at start-up); the model is placed on the CPU
so TensorFlow never reserves GPU memory that the torch stages need, and runs under a lock (one
Keras call at a time).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import cv2
import numpy as np

from restorer.errors import StageUnavailableError
from restorer.stages.base import (ProgressFn, StageKind, StageOutput, StageSpec, TriageResult,
                                  Work)

__all__ = ["VIEW_SIZE", "WORK_SIDE", "VIEW_COUNT", "WEIGHT_ID", "triage_views",
           "labels_from_probabilities", "NetTriage"]

log = logging.getLogger(__name__)

VIEW_SIZE = 96
WORK_SIDE = 1024
GRID = 3
VIEW_COUNT = GRID * GRID + 1
WEIGHT_ID = "triage_net"

#: Returns the verified local path of a manifest weight id (never downloads).
WeightPath = Callable[[str], Path]


def triage_views(image: np.ndarray) -> np.ndarray:
    """The network's input for float (H, W, 3) [0, 1] ``image``: float32 (10, S, S, 3) in [0, 1].

    Views 0-8: S x S crops on an evenly spaced 3 x 3 grid of the photo shrunk (never enlarged)
    to a long side of ``WORK_SIDE``; a side shorter than S is reflect-padded. View 9: the whole
    photo resized to S x S.
    """
    image = np.asarray(image, dtype=np.float32)
    height, width = image.shape[:2]
    scale = min(1.0, WORK_SIDE / max(height, width))
    work = image
    if scale < 1.0:
        work = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                          interpolation=cv2.INTER_AREA)
    pad_y, pad_x = max(0, VIEW_SIZE - work.shape[0]), max(0, VIEW_SIZE - work.shape[1])
    if pad_y or pad_x:
        work = cv2.copyMakeBorder(work, pad_y // 2, pad_y - pad_y // 2, pad_x // 2,
                                  pad_x - pad_x // 2, cv2.BORDER_REFLECT_101)
    tops = np.linspace(0, work.shape[0] - VIEW_SIZE, GRID).round().astype(int)
    lefts = np.linspace(0, work.shape[1] - VIEW_SIZE, GRID).round().astype(int)
    views = [work[t:t + VIEW_SIZE, l:l + VIEW_SIZE] for t in tops for l in lefts]
    views.append(cv2.resize(image, (VIEW_SIZE, VIEW_SIZE), interpolation=cv2.INTER_AREA))
    return np.clip(np.stack(views), 0.0, 1.0).astype(np.float32)


def labels_from_probabilities(p_blur: float, p_crack: float, method: str) -> TriageResult:
    """The four-label TriageResult of independent blur and crack probabilities in [0, 1]."""
    confidences = {
        "clean": (1 - p_blur) * (1 - p_crack),
        "blurred": p_blur * (1 - p_crack),
        "cracked": (1 - p_blur) * p_crack,
        "blurred+cracked": p_blur * p_crack,
    }
    return TriageResult(confidences=confidences, blurred=p_blur >= 0.5, cracked=p_crack >= 0.5,
                        method=method,
                        scores={"p_blur": round(p_blur, 4), "p_crack": round(p_crack, 4)})


class NetTriage:
    """Stage: the trained Keras triage network (weights ``triage_net`` in the manifest)."""

    spec: ClassVar[StageSpec] = StageSpec(
        id="triage.net",
        kind=StageKind.TRIAGE,
        method="net",
        title="Trained triage (Keras)",
        description="A small network trained on synthetic blur and cracks over clean photos.",
        produces=frozenset({"triage"}),
        weights=(WEIGHT_ID,),
    )

    def __init__(self, weight_path: WeightPath) -> None:
        self._path = weight_path(WEIGHT_ID)
        self._lock = threading.Lock()
        self._model = self._load()

    def _load(self) -> Any:
        from restorer.backends import tensorflow

        tf = tensorflow()
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:  # TensorFlow already initialised its devices in this process
            log.warning("TensorFlow was initialised before restorer could keep it off the GPU")
        import keras

        try:
            model = keras.saving.load_model(self._path, compile=False, safe_mode=True)
        except (OSError, ValueError) as exc:
            raise StageUnavailableError(
                f"the triage model {self._path.name} could not be loaded ({exc}); run "
                f"'python -m restorer weights verify {WEIGHT_ID}'") from exc
        expected = (None, VIEW_COUNT, VIEW_SIZE, VIEW_SIZE, 3)
        if tuple(model.input_shape) != expected or tuple(model.output_shape) != (None, 2):
            raise StageUnavailableError(
                f"the triage model {self._path.name} expects input {model.input_shape} and gives "
                f"{model.output_shape}; this version of restorer needs {expected} -> (None, 2)")
        return model

    def probabilities(self, image: np.ndarray) -> tuple[float, float]:
        """(p_blur, p_crack) in [0, 1] for float (H, W, 3) [0, 1] ``image``."""
        views = triage_views(image)[None]
        with self._lock:
            out = np.asarray(self._model(views, training=False), dtype=np.float64)[0]
        return float(out[0]), float(out[1])

    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        progress(0.0, "looking for blur and cracks")
        result = labels_from_probabilities(*self.probabilities(work.image), method="net")
        return StageOutput(triage=result, info=dict(result.scores))
