"""The triage network's Keras side: load the ``.keras`` file, run it on whichever backend Keras
runs (torch by default: no TensorFlow is imported).

Views are float32 (N, K, S, S, 3) in [0, 1] with S = :data:`VIEW_SIZE`; answers float64 (N, 2):
p(blur), p(crack). Keras comes from :mod:`restorer.backends`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from restorer.errors import StageUnavailableError

__all__ = ["VIEW_SIZE", "WEIGHT_ID", "load_triage_model", "triage_runner", "run_triage_model"]

log = logging.getLogger(__name__)

VIEW_SIZE = 96
"""Side in px of one view the network scores."""
WEIGHT_ID = "triage_net"
"""Manifest id of the network's ``.keras`` file."""


def _keep_tensorflow_off_the_gpu() -> None:
    """Hide the GPUs from TensorFlow, so it never reserves memory the torch stages need."""
    from restorer.backends import tensorflow

    try:
        tensorflow().config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow already initialised its devices in this process
        log.warning("TensorFlow was initialised before restorer could keep it off the GPU")


def load_triage_model(path: Path) -> Any:
    """The Keras triage model saved at ``path`` (``.keras``, safe mode), its input and output
    shapes checked; raises StageUnavailableError naming what to do."""
    from restorer.backends import keras as import_keras

    keras = import_keras("torch")  # no TensorFlow; a process that already runs Keras keeps it
    if keras.backend.backend() == "tensorflow":
        _keep_tensorflow_off_the_gpu()
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except (OSError, ValueError) as exc:
        raise StageUnavailableError(
            f"the triage model {path.name} could not be loaded ({exc}); run "
            f"'python -m restorer weights verify {WEIGHT_ID}'") from exc
    expected = (None, None, VIEW_SIZE, VIEW_SIZE, 3)
    if tuple(model.input_shape) != expected or tuple(model.output_shape) != (None, 2):
        raise StageUnavailableError(
            f"the triage model {path.name} expects input {model.input_shape} and gives "
            f"{model.output_shape}; this version of restorer needs {expected} -> (None, 2)")
    return model


def _answers(keras: Any, model: Any, inputs: np.ndarray) -> np.ndarray:
    """``model(inputs)`` in inference as a float32 numpy array (on torch, without autograd)."""
    if keras.backend.backend() == "torch":
        import torch

        with torch.no_grad():
            return model(inputs, training=False).cpu().numpy()
    return keras.ops.convert_to_numpy(model(inputs, training=False))


def triage_runner(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A function of float32 (N, K, S, S, 3) views -> float64 (N, 2) answers (blur, crack) of
    the Keras triage ``model``, on whichever backend Keras runs.

    The model's per-view backbone (its ``TimeDistributed`` layer) runs once on all N x K views
    as one batch, then the rest of the model on the (N, K, F) features: the same answers as
    ``model(views)`` (each view is scored alone either way), but Keras' torch backend would run
    the backbone view by view (about 8 times slower here).
    """
    from restorer.backends import keras as import_keras

    keras = import_keras()
    distributed = [layer for layer in model.layers
                   if isinstance(layer, keras.layers.TimeDistributed)]
    if len(distributed) != 1:
        return lambda views: _answers(keras, model, views).astype(np.float64)
    backbone = distributed[0].layer
    head = keras.Model(distributed[0].output, model.output)

    def run(views: np.ndarray) -> np.ndarray:
        count, per_photo = views.shape[:2]
        features = _answers(keras, backbone, views.reshape(count * per_photo, *views.shape[2:]))
        return _answers(keras, head, features.reshape(count, per_photo, -1)).astype(np.float64)

    return run


def run_triage_model(model: Any, views: np.ndarray) -> np.ndarray:
    """:func:`triage_runner` of ``model`` applied once to ``views``."""
    return triage_runner(model)(views)
