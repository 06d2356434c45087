"""Independent damage labels of a triage (``TriageResult.labels``, several at once).

Today's triage stages measure two of :data:`~restorer.stages.base.DAMAGE_LABELS`: blurred and
cracked (independent probabilities). "faded" comes from one injected measure, a function of
the image returning a probability (part B's fade measure in ``restorer.tone``); without one the
label is absent, "not measured", never a made-up number. spotted and torn come from an injected
damage measure (:func:`restorer.stages.print_labels.print_labels`: the spot and hole detectors'
masks, calibrated on the training generator); creased is absent (its detector does not
separate creased from clean photos well enough to name it: see docs/damage.md).
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from restorer.stages.base import DAMAGE_LABELS

__all__ = ["FadeMeasure", "DamageMeasure", "label_probabilities"]

#: Probability in [0, 1] that a float32 (H, W, 3) [0, 1] photo is faded or colour cast, or None
#: where the measure cannot tell (the label is then absent: not measured).
FadeMeasure = Callable[[np.ndarray], "float | None"]
#: Probabilities in [0, 1] of some of DAMAGE_LABELS (e.g. torn, spotted) of a float32
#: (H, W, 3) [0, 1] photo.
DamageMeasure = Callable[[np.ndarray], Mapping[str, float]]


def label_probabilities(p_blur: float, p_crack: float, image: np.ndarray | None = None,
                        fade: FadeMeasure | None = None,
                        damage: DamageMeasure | None = None) -> dict[str, float]:
    """The measured labels: blurred and cracked from their probabilities, faded from ``fade``
    of ``image`` when both are given and it measures one, and the labels ``damage`` measures
    of ``image`` when given (clipped to [0, 1]); in DAMAGE_LABELS order (a name outside
    DAMAGE_LABELS is a bug: ValueError)."""
    measured = {"blurred": float(p_blur), "cracked": float(p_crack)}
    faded = None if fade is None or image is None else fade(image)
    if faded is not None:
        measured["faded"] = float(np.clip(faded, 0.0, 1.0))
    if damage is not None and image is not None:
        for name, value in damage(image).items():
            if name not in DAMAGE_LABELS or name in ("blurred", "cracked", "faded"):
                raise ValueError(f"damage measure gave label '{name}', not one it may measure")
            measured[name] = float(np.clip(value, 0.0, 1.0))
    return {name: measured[name] for name in DAMAGE_LABELS if name in measured}
