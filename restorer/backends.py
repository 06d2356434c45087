"""The one place restorer imports its deep-learning frameworks, in the only order that works.

Measured here: importing TensorFlow and then torchvision kills the process with a segmentation
fault (exit 139); torch and torchvision first, then TensorFlow, works in one process. So:

- :func:`torch_stack` imports torch and torchvision together. If TensorFlow is already loaded
  without torchvision (someone imported it directly), it refuses with an error instead of
  letting the process crash.
- :func:`tensorflow` imports torch and torchvision first, then TensorFlow.
- :func:`keras` imports torch (and, unless Keras runs on torch, torchvision) first, then Keras
  (which loads TensorFlow on its TensorFlow backend and none on its torch backend, the one the
  triage stage asks for).

Every restorer module that needs torchvision, TensorFlow or Keras gets it from here. A test
checks this, so the crashing order cannot happen through restorer. Nothing is imported when
this module is imported.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from types import ModuleType
from typing import Any

from restorer.errors import RestorerError, StageUnavailableError

__all__ = ["DEVICE_HELP", "KERAS_BACKENDS", "check_device_choice", "keras", "limit_threads",
           "resolve_device", "return_large_blocks_to_the_system", "tensorflow", "torch_stack"]

DEVICE_HELP = "auto (CUDA when present, else CPU), cpu, cuda or cuda:N"
"""What a device choice may be (CLI ``--device``, ``RESTORER_DEVICE``, ``ServiceConfig.device``)."""

KERAS_BACKENDS = ("tensorflow", "torch")
"""The Keras backends restorer runs on (see :func:`keras`)."""

_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
_lock = threading.RLock()


def check_device_choice(choice: str) -> str:
    """Return ``choice`` if it names a device restorer can use; RestorerError otherwise."""
    if not isinstance(choice, str) or not _DEVICE.fullmatch(choice.strip().lower()):
        raise RestorerError(f"unknown device '{choice}': use {DEVICE_HELP}")
    return choice.strip().lower()


def resolve_device(choice: str) -> Any:
    """The ``torch.device`` for a device choice ("auto": CUDA when present, else CPU).

    Raises StageUnavailableError when a CUDA device is asked for that torch does not see.
    """
    torch, _ = torch_stack()
    choice = check_device_choice(choice)
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(choice.partition(":")[2] or 0)
        if index >= count:
            raise StageUnavailableError(
                f"device '{choice}' was asked for (--device or RESTORER_DEVICE) but torch sees "
                f"{count} CUDA GPU(s) here; use 'auto' or 'cpu'")
    return torch.device(choice)


def torch_stack() -> tuple[ModuleType, ModuleType]:
    """``(torch, torchvision)``, imported in that order.

    Raises StageUnavailableError when TensorFlow was imported before torchvision in this
    process: importing torchvision now would crash it.
    """
    with _lock:
        if "torchvision" not in sys.modules and sys.modules.get("tensorflow") is not None:
            raise StageUnavailableError(
                "TensorFlow was imported before torchvision in this process, and loading "
                "torchvision after it crashes Python (segmentation fault); import TensorFlow "
                "through restorer.backends.tensorflow(), or load restorer's torch stages first"
            )
        import torch
        import torchvision

    return torch, torchvision


def tensorflow() -> ModuleType:
    """TensorFlow, imported after torch and torchvision (the order that does not crash)."""
    with _lock:
        torch_stack()
        import tensorflow as tf

    return tf


def keras(backend: str | None = None) -> ModuleType:
    """Keras, imported after torch (and torchvision, unless Keras runs on torch).

    ``backend`` is what Keras runs on when this process has not imported it yet: "torch" (no
    TensorFlow at all: a triage network of another architecture than the shipped one, and
    training on a GPU host), "tensorflow" (imported in
    the order that does not crash) or None (Keras' own default, TensorFlow). Keras reads that
    choice from the ``KERAS_BACKEND`` environment variable when first imported and offers no
    other way, so this is the one place restorer sets it. Once imported, Keras keeps its
    backend for the life of the process: ``keras.backend.backend()`` says which it is.
    """
    if backend is not None and backend not in KERAS_BACKENDS:
        raise ValueError(f"unknown Keras backend '{backend}': use one of {', '.join(KERAS_BACKENDS)}")
    with _lock:
        loaded = sys.modules.get("keras")
        if (loaded.backend.backend() if loaded is not None else backend) == "torch":
            import torch  # noqa: F401  Keras on torch loads no TensorFlow: torchvision can wait
        else:
            torch_stack()
        if loaded is not None or backend is None:
            import keras as keras_module
        else:
            # Set only while Keras is imported: left in the environment it would reach child
            # processes, where "import tensorflow" then loads Keras on torch and crashes.
            before = os.environ.get("KERAS_BACKEND")
            os.environ["KERAS_BACKEND"] = backend
            try:
                import keras as keras_module
            finally:
                if before is None:
                    del os.environ["KERAS_BACKEND"]
                else:
                    os.environ["KERAS_BACKEND"] = before

    return keras_module


def limit_threads(count: int) -> None:
    """Let torch and OpenCV use at most ``count`` CPU threads in this process
    (``Settings.threads``)."""
    import cv2

    torch, _ = torch_stack()
    torch.set_num_threads(count)
    cv2.setNumThreads(count)


#: glibc's mallopt parameter number for the mmap threshold (malloc.h: M_MMAP_THRESHOLD).
_M_MMAP_THRESHOLD = -3


def return_large_blocks_to_the_system(threshold: int = 1 << 20) -> bool:
    """Make glibc serve allocations of ``threshold`` bytes and more from their own mappings.

    By default glibc raises that threshold to 32 MB after the first large free, so the many
    1-32 MB buffers of a run on a big scan (network activations, image bands) come from the
    heap, whose freed pieces stay in the process: after a 24 MP run the face stage alone left
    about 0.25 GB resident. With a fixed 1 MB threshold each such buffer goes back to the
    system when freed. Called once at start by the app and the CLI; returns False (and does
    nothing) where the C library is not glibc.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, int(threshold)))
