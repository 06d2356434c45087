"""Where and in what precision a network runs: the device and precision choices.

:func:`pick_device` and :func:`pick_precision` are pure (they are told what is present);
:func:`resolve_device` asks torch what this machine has (torch is imported then);
:func:`check_precision` checks a choice before any model is built.
:class:`restorer.runtime.ModelRuntime` uses them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from restorer.errors import RestorerError, StageUnavailableError
from restorer.runtime_plan import ModelTraits
from restorer.settings import PRECISIONS

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICE_CHOICES", "pick_device", "resolve_device", "pick_precision",
           "check_precision"]

DEVICE_CHOICES = "auto (CUDA, then Apple MPS, then CPU), cpu, mps, cuda or cuda:N"
"""What a device choice may be."""

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def pick_device(choice: str, *, cuda_count: int, mps: bool) -> str:
    """The device string for ``choice`` given what is present (pure: no torch).

    "auto": "cuda" when a CUDA GPU is present, else "mps" when Apple's is, else "cpu". A device
    asked for that is not present raises StageUnavailableError saying what is.
    """
    wanted = choice.strip().lower() if isinstance(choice, str) else ""
    if not _DEVICE.fullmatch(wanted):
        raise RestorerError(f"unknown device '{choice}': use {DEVICE_CHOICES}")
    if wanted == "auto":
        return "cuda" if cuda_count else "mps" if mps else "cpu"
    if wanted.startswith("cuda"):
        index = int(wanted.partition(":")[2] or 0)
        if index >= cuda_count:
            raise StageUnavailableError(f"device '{wanted}' was asked for but {cuda_count} CUDA "
                                        "GPU(s) are present here; use 'auto' or 'cpu'")
    if wanted == "mps" and not mps:
        raise StageUnavailableError("device 'mps' was asked for but Apple's GPU is not present "
                                    "here; use 'auto' or 'cpu'")
    return wanted


def resolve_device(choice: str) -> torch.device:
    """The ``torch.device`` for ``choice`` on this machine (see :func:`pick_device`)."""
    import torch

    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return torch.device(pick_device(choice, cuda_count=cuda, mps=mps))


def pick_precision(choice: str, device_type: str, traits: ModelTraits, *,
                   bf16_supported: bool = True) -> str:
    """"fp32", "fp16" or "bf16" for ``choice`` on ``device_type`` (pure).

    "auto": fp16 on CUDA when the traits allow it, else bf16 when they and the GPU allow it,
    else fp32. Half precision is only used on CUDA; asking for one elsewhere, or for one the
    model does not declare safe, raises RestorerError.
    """
    if choice not in PRECISIONS:
        raise RestorerError(f"unknown precision '{choice}': use {', '.join(PRECISIONS)}")
    if choice == "fp32":
        return "fp32"
    cuda = device_type == "cuda"
    if choice == "auto":
        if cuda and traits.fp16:
            return "fp16"
        return "bf16" if cuda and traits.bf16 and bf16_supported else "fp32"
    if not cuda:
        raise RestorerError(f"{choice} needs a CUDA GPU; use precision 'fp32' or 'auto' here")
    if not getattr(traits, choice):
        raise RestorerError(f"{traits.name} does not run correctly in {choice}; use 'auto' or "
                            "'fp32'")
    if choice == "bf16" and not bf16_supported:
        raise RestorerError("this GPU has no bf16; use 'auto' or 'fp16' or 'fp32'")
    return choice


def check_precision(precision: str, device_type: str) -> str:
    """``precision`` if it can be asked for on ``device_type``; RestorerError saying what to
    use otherwise (fp16 and bf16 need a CUDA GPU)."""
    anything = ModelTraits(name="any model", fp16=True, bf16=True)
    pick_precision(precision, device_type, anything)
    return precision
