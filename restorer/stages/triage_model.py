"""The triage network's ``.keras`` file and how it runs.

The stage runs the shipped "compact" network in torch (:mod:`restorer.nets.triage_compact`, the
same weights read from the file, the same answers to 1e-5), through :mod:`restorer.runtime` on
the device asked for: no Keras, no TensorFlow, which made a single-photo run's start several
seconds long. A file of another architecture (e.g. "inception") runs through Keras on its torch
backend (:func:`load_triage_model`, also what training loads with ``--init``), on the CPU.

Views are float32 (N, K, S, S, 3) in [0, 1] with S = :data:`VIEW_SIZE`; answers float64 (N, 2):
p(blur), p(crack). Keras comes from :mod:`restorer.backends`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from restorer.errors import StageUnavailableError
from restorer.runtime_plan import ModelTraits

if TYPE_CHECKING:
    import torch

    from restorer.runtime import ModelRuntime, RunInfo

__all__ = ["TRIAGE_TRAITS", "VIEW_SIZE", "WEIGHT_ID", "TriageModel", "load_triage_model",
           "triage_runner", "run_triage_model"]

log = logging.getLogger(__name__)

VIEW_SIZE = 96
"""Side in px of one view the network scores."""
WEIGHT_ID = "triage_net"
"""Manifest id of the network's ``.keras`` file."""
TRIAGE_TRAITS = ModelTraits(name=WEIGHT_ID, output_channels=2, reach=None, thread_safe=True)
"""What the torch triage network is to the runtime: views of a fixed size, never tiled; its
eval-mode forward keeps no state, so requests share it without a lock."""


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


class TriageModel:
    """The triage network of a ``.keras`` file, ready to score views.

    ``device`` and ``precision``: where the torch network runs (a Keras-only architecture runs
    on the CPU in fp32, one call at a time). :attr:`parameters` counts its weights as Keras
    does; :meth:`record` is how its calls ran, for the stage's report.
    """

    def __init__(self, path: Path, *, device: str = "auto", precision: str = "auto") -> None:
        from restorer.nets.triage_compact import read_keras_compact

        self.runtime: ModelRuntime | None = None
        self._keras: Callable[[np.ndarray], np.ndarray] | None = None
        self._keras_lock = threading.Lock()  # Keras models are not known to be thread-safe
        try:
            network = read_keras_compact(path)
        except ValueError as exc:  # another architecture: Keras runs it
            log.info("triage model %s runs through Keras (%s)", path.name, exc)
            model = load_triage_model(path)
            self.parameters = int(model.count_params())
            self._keras = triage_runner(model)
            return
        except OSError as exc:
            raise StageUnavailableError(
                f"the triage model {path.name} could not be read ({exc}); run "
                f"'python -m restorer weights verify {WEIGHT_ID}'") from exc
        from restorer.runtime import ModelRuntime

        # As Keras counts them: the batch norms' running statistics included.
        self.parameters = sum(int(t.numel()) for name, t in network.state_dict().items()
                              if not name.endswith("num_batches_tracked"))
        first = [network]

        def build(target: torch.device) -> Any:
            return (first.pop() if first else read_keras_compact(path)).to(target)

        self.runtime = ModelRuntime(build, TRIAGE_TRAITS, device=device, precision=precision)

    def answers(self, views: np.ndarray, runs: list[RunInfo] | None = None) -> np.ndarray:
        """Float64 (N, 2) (blur, crack) for float32 (N, K, S, S, 3) [0, 1] ``views``; ``runs``
        collects how the torch network ran."""
        if self.runtime is None:
            assert self._keras is not None
            with self._keras_lock:
                return self._keras(views)

        def step(model: Any, device: torch.device) -> np.ndarray:
            import torch

            batch = torch.from_numpy(np.ascontiguousarray(views, np.float32)).to(device)
            return model(batch.permute(0, 1, 4, 2, 3)).float().cpu().numpy()

        out, info = self.runtime.apply(step)
        if runs is not None:
            runs.append(info)
        return out.astype(np.float64)

    def record(self, runs: Sequence[RunInfo]) -> dict[str, Any]:
        """How the network's calls ran (device, precision, notes), for the report."""
        if self.runtime is None:
            return {"device": "cpu", "precision": "fp32", "tiles": 1, "tile": None,
                    "notes": ["runs through Keras (not the compact architecture)"]}
        return self.runtime.record(runs)
