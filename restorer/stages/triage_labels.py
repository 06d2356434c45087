"""Independent damage labels of a triage (``TriageResult.labels``, several at once).

Today's triage stages measure two of :data:`~restorer.stages.base.DAMAGE_LABELS`: blurred and
cracked (independent probabilities). "faded" comes from one injected measure, a function of
the image returning a probability (part B's fade measure in ``restorer.tone``); without one the
label is absent, "not measured", never a made-up number. creased, torn and spotted are absent
until a detector with per-kind masks measures them.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from restorer.stages.base import DAMAGE_LABELS

__all__ = ["FadeMeasure", "label_probabilities"]

#: Probability in [0, 1] that a float32 (H, W, 3) [0, 1] photo is faded or colour cast, or None
#: where the measure cannot tell (the label is then absent: not measured).
FadeMeasure = Callable[[np.ndarray], "float | None"]


def label_probabilities(p_blur: float, p_crack: float, image: np.ndarray | None = None,
                        fade: FadeMeasure | None = None) -> dict[str, float]:
    """The measured labels: blurred and cracked from their probabilities, faded from ``fade``
    of ``image`` when both are given and it measures one (clipped to [0, 1]); in DAMAGE_LABELS
    order."""
    measured = {"blurred": float(p_blur), "cracked": float(p_crack)}
    faded = None if fade is None or image is None else fade(image)
    if faded is not None:
        measured["faded"] = float(np.clip(faded, 0.0, 1.0))
    return {name: measured[name] for name in DAMAGE_LABELS if name in measured}
