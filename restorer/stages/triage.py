"""Heuristic triage: a blur score and a crack score mapped to the four damage labels.

Stands in for the trained classifier behind the same interface. Blur is the Gaussian sigma
estimated from edges on a view of fixed size (long side 1024 px), so a large sharp scan is not
called blurred for its pixel-level softness; cracks are the density of the detected defect mask.
Each score goes through a logistic curve to a probability; the four labels are the products of
the two independent probabilities.

The crack centre (1 % of the photo flagged) was measured with detect.morph's defaults on 132
clean photos of ../shared/data (kodak24, bsds-test, faces-celebahq at 640 px) with and without
seeded synthetic cracks: clean photos have a median of 0.9 % flagged, cracked ones 3.0 %; at
1 %, 7 % of cracked photos are missed and about half of the clean ones are called cracked
(their thin real structures). The curve is wide because the two overlap: the confidences say so.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Mapping

import numpy as np

from restorer.errors import PlanError
from restorer.ops import fit_long_side, luminance
from restorer.stage_ids import TRIAGE_HEURISTIC
from restorer.stages.base import (Option, ProgressFn, StageKind, StageOutput, StageSpec,
                                  TriageResult, Work)
from restorer.stages.deblur import estimate_blur_sigma
from restorer.stages.triage_labels import DamageMeasure, FadeMeasure, label_probabilities

__all__ = ["HeuristicTriage", "triage_from_scores", "blur_sigma_at_view"]

VIEW_SIDE = 1024


def blur_sigma_at_view(image: np.ndarray, side: int = VIEW_SIDE) -> float:
    """Estimated blur sigma of float (H, W, 3) ``image`` seen with its long side at ``side``."""
    return estimate_blur_sigma(fit_long_side(luminance(image), side))


def _logistic(value: float, centre: float, width: float) -> float:
    return 1.0 / (1.0 + math.exp(-(value - centre) / width))


def triage_from_scores(
    blur_sigma: float,
    defect_fraction: float,
    *,
    blur_centre: float = 1.3,
    crack_centre: float = 0.01,
    image: np.ndarray | None = None,
    fade: FadeMeasure | None = None,
    damage: DamageMeasure | None = None,
) -> TriageResult:
    """Map a blur sigma (px at the 1024 px view) and a defect fraction to a TriageResult;
    its ``labels`` add "faded" from ``fade`` and ``damage``'s labels of ``image`` when given."""
    p_blur = _logistic(blur_sigma, blur_centre, 0.12)
    p_crack = _logistic(math.log10(max(defect_fraction, 1e-6)), math.log10(crack_centre), 0.2)
    confidences = {
        "clean": (1 - p_blur) * (1 - p_crack),
        "blurred": p_blur * (1 - p_crack),
        "cracked": (1 - p_blur) * p_crack,
        "blurred+cracked": p_blur * p_crack,
    }
    return TriageResult(
        confidences=confidences,
        blurred=p_blur >= 0.5,
        cracked=p_crack >= 0.5,
        method="heuristic",
        scores={"blur_sigma": round(blur_sigma, 3), "defect_fraction": round(defect_fraction, 5)},
        labels=label_probabilities(p_blur, p_crack, image, fade, damage),
    )


class HeuristicTriage:
    """Stage: blur and crack scores from measurements, no trained model."""

    spec: ClassVar[StageSpec] = StageSpec(
        id=TRIAGE_HEURISTIC,
        kind=StageKind.TRIAGE,
        method="heuristic",
        title="Heuristic triage",
        description="Blur from edge widths, cracks from the detected defect density.",
        requires=frozenset({"image", "mask"}),
        produces=frozenset({"triage"}),
        options={"blur_centre": Option.number(1.3, 0.3, 8.0, help="blur sigma (px) called blurred"),
                 "crack_centre": Option.number(0.01, 1e-5, 0.5,
                                               help="flagged share called cracked")},
    )

    def __init__(self, fade: FadeMeasure | None = None,
                 damage: DamageMeasure | None = None) -> None:
        self.fade = fade
        self.damage = damage

    def run(self, work: Work, options: Mapping[str, Any], progress: ProgressFn) -> StageOutput:
        if work.mask is None:
            raise PlanError("the heuristic triage needs a defect mask from the detect stage")
        progress(0.0, "measuring blur and cracks")
        result = triage_from_scores(
            blur_sigma_at_view(work.image),
            float(work.mask.mean()),
            blur_centre=float(options["blur_centre"]),
            crack_centre=float(options["crack_centre"]),
            image=work.image,
            fade=self.fade,
            damage=self.damage,
        )
        return StageOutput(triage=result, info=dict(result.scores))
