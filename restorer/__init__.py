"""restorer: bring old and damaged photographs back.

Images are float32 (H, W, 3) RGB in [0, 1]; masks bool (H, W), True = defect. Convert at the
boundary with ``load_image`` / ``save_image``.
"""

from restorer.errors import (ImageInputError, PlanError, RestorerError, StageError,
                             StageUnavailableError, WeightsError, WeightsIntegrityError,
                             WeightsMissingError)
from restorer.imaging import ImageLimits, load_image, load_mask, save_image, save_mask
from restorer.pipeline import Pipeline, RestoreResult, StageRecord
from restorer.planner import AutoMethods, Plan, PlannedStage, plan_auto, plan_manual
from restorer.registry import Registry, StageEntry, default_registry
from restorer.stages.base import (TRIAGE_LABELS, Stage, StageKind, StageOutput, StageSpec,
                                  TriageResult, Work)

__version__ = "0.1.0"

__all__ = [
    "AutoMethods", "ImageInputError", "ImageLimits", "Pipeline", "Plan", "PlanError",
    "PlannedStage", "Registry", "RestoreResult", "RestorerError", "Stage", "StageEntry",
    "StageError", "StageKind", "StageOutput", "StageRecord", "StageSpec", "StageUnavailableError",
    "TRIAGE_LABELS", "TriageResult", "WeightsError", "WeightsIntegrityError",
    "WeightsMissingError", "Work", "default_registry", "load_image", "load_mask", "plan_auto",
    "plan_manual", "save_image", "save_mask", "__version__",
]
