"""Loading published models through spandrel, refusing a file that is not the declared model.

spandrel (chaiNNer-org/spandrel, MIT) reads a state dict (its restricted unpickler: no code
runs) or a TorchScript file (only its state dict is kept), recognises the architecture from the
keys and builds the network in spandrel's own code. :func:`load_descriptor` adds what restorer
needs on top: the architecture, purpose and input channels must be the ones the manifest entry
and the stage declare, else :class:`~restorer.errors.WeightsError` says what the file holds.
spandrel and torch are imported on first use; torch.jit's deprecation warnings on loading a
TorchScript file are kept off the terminal.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from restorer.errors import WeightsError

if TYPE_CHECKING:
    from restorer.runtime import RunInfo
    from restorer.weights import WeightEntry

__all__ = ["load_descriptor", "model_record"]


def load_descriptor(path: Path, *, weight_id: str, architecture: str, purpose: str,
                    input_channels: int, entry: WeightEntry | None = None) -> Any:
    """The spandrel ModelDescriptor of verified file ``path`` (on the CPU, eval mode).

    Refused with WeightsError naming the file: a file spandrel cannot read or recognise, one
    whose architecture is not ``architecture`` (and the manifest ``entry``'s, when given),
    whose purpose is not ``purpose`` (e.g. "Inpainting", "Restoration") or whose input
    channels are not ``input_channels``.
    """
    declared = None if entry is None else entry.architecture
    if declared is not None and declared != architecture:
        raise WeightsError(f"manifest entry '{weight_id}' declares architecture {declared}, but this "
                           f"stage runs {architecture}; fix the entry's 'architecture' or its stage")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit", category=FutureWarning)
        import spandrel

        try:
            descriptor = spandrel.ModelLoader().load_from_file(path)
        except spandrel.UnsupportedModelError:
            raise WeightsError(f"{path.name} [{weight_id}] holds no model spandrel recognises; "
                               f"expected {architecture}: check the manifest entry") from None
        except (pickle.UnpicklingError, RuntimeError, ValueError, KeyError, EOFError, OSError) as error:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise WeightsError(f"{path.name} [{weight_id}] cannot be read as {architecture} "
                               f"({type(error).__name__}: {first}); check the manifest entry") from None
    found = (str(descriptor.architecture.id), str(descriptor.purpose), int(descriptor.input_channels))
    if found != (architecture, purpose, input_channels):
        raise WeightsError(
            f"{path.name} [{weight_id}] holds a {found[0]} {found[1].lower()} model with {found[2]} input "
            f"channel(s), not the declared {architecture} {purpose.lower()} model with {input_channels}: "
            "the file is not the model the manifest entry describes")
    return descriptor.eval()


def model_record(weight_id: str, entry: WeightEntry | None, architecture: str,
                 run: RunInfo) -> dict[str, Any]:
    """What the report records of one learned stage's run: model, revision, sha256, device,
    precision and tiles."""
    return {"model": weight_id, "architecture": architecture,
            "revision": None if entry is None else entry.revision,
            "sha256": None if entry is None else entry.sha256, **run.as_dict()}
