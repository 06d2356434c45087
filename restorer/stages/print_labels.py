"""Damage labels from the per-kind detectors: spotted and torn with a confidence (creased
measured, not given).

A label is a logistic of one statistic of its kind's mask (:func:`kind_statistics`):

- spotted: log10 of the share of the photo the spot detector flags (floor 1e-3);
- torn: log10 of the share of the photo the hole detector flags (floor 1e-3; the mount is
  never counted).

The centres and slopes in :data:`CALIBRATION` were fitted by ``python bench/print_kinds.py
--calibrate`` on ``restorer.synth_print`` (the training generator; one kind per damaged photo,
plus the undamaged photos) by logistic regression. ``bench/damage.py`` measures the labels'
precision and recall on held-out photos and the separate evaluation generator.

creased is not given: its statistic (the support of the best crease line) does not separate
creased from clean training photos (the same command: creases are confused with straight
edges), so that label stays "not measured" rather than a guess. torn, fitted on 24 training
photos x (clean, spot, crease, hole): precision 1.00, recall 0.33; on 24 held-out photos,
precision 1.00 / recall 0.38 (training generator) and 0.91 / 0.42 (evaluation generator), with
none of the 24 undamaged held-out photos called torn (docs/damage.md).
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from restorer.stages.detect_kinds import KindParams, crease_lines, hole_mask, spot_mask

__all__ = ["CALIBRATION", "LABEL_OF", "kind_statistics", "print_labels"]

#: The damage label each kind's statistic stands for (creased: measured, not given).
LABEL_OF: Mapping[str, str] = {"spot": "spotted", "crease": "creased", "hole": "torn"}
#: label -> (centre, slope) of its logistic in its statistic (see the module docstring);
#: fitted on 24 training photos x (clean, spot, crease, hole): spotted precision 0.75, recall
#: 0.38; torn precision 1.00, recall 0.33.
CALIBRATION: Mapping[str, tuple[float, float]] = {"spotted": (-1.829, 4.52),
                                                  "torn": (-2.561, 3.35)}
_FLOOR = 1e-3


def kind_statistics(image: np.ndarray, params: KindParams = KindParams(),
                    outside: np.ndarray | None = None) -> dict[str, float]:
    """The statistic behind each label of float32 (H, W, 3) [0, 1] ``image`` (module
    docstring); ``outside`` bool (H, W) is the mount (never counted)."""
    spots = spot_mask(image, params, isolated=False)
    holes = hole_mask(image, params, outside)
    if outside is not None:
        spots = spots & ~outside
    lines = crease_lines(image, params)
    return {"spotted": math.log10(max(float(spots.mean()), _FLOOR)),
            "creased": lines[0][0] if lines else 0.0,
            "torn": math.log10(max(float(holes.mean()), _FLOOR))}


def print_labels(image: np.ndarray) -> dict[str, float]:
    """Probability in [0, 1] of each label of :data:`CALIBRATION` for float32 (H, W, 3) [0, 1]
    ``image`` (analysed at a 512 px short side at most; the mount is left out)."""
    import cv2

    from restorer.mount import find_print

    image = np.asarray(image, dtype=np.float32)
    factor = 512.0 / min(image.shape[:2])
    if factor < 1.0:
        size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    statistics = kind_statistics(image, outside=~find_print(image).mask)
    return {label: 1.0 / (1.0 + math.exp(-slope * (statistics[label] - centre)))
            for label, (centre, slope) in CALIBRATION.items()}
