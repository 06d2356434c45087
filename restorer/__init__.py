"""restorer: bring old and damaged photographs back.

Images are float32 (H, W, 3) RGB in [0, 1]; masks bool (H, W), True = defect. Convert at the
boundary with ``load_image`` / ``save_image``.

Importing the package is cheap: the public names below are imported from their modules on
first use (the pipeline's modules bring OpenCV, scikit-image and torch with them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from restorer.errors import (ImageInputError, PlanError, RestorerError, StageError,
                             StageUnavailableError, WeightsError, WeightsIntegrityError,
                             WeightsMissingError)

if TYPE_CHECKING:
    from restorer.imaging import ImageLimits, load_image, load_mask, save_image, save_mask
    from restorer.pipeline import Pipeline
    from restorer.planner import AutoMethods, Plan, PlannedStage, plan_auto, plan_manual
    from restorer.registry import Registry, StageEntry, default_registry
    from restorer.result import RestoreResult, StageRecord
    from restorer.settings import Settings, build_settings
    from restorer.stages.base import (TRIAGE_LABELS, Stage, StageKind, StageOutput, StageSpec,
                                      TriageResult, Work)

__version__ = "0.1.0"

_LAZY = {
    "restorer.imaging": ("ImageLimits", "load_image", "load_mask", "save_image", "save_mask"),
    "restorer.pipeline": ("Pipeline",),
    "restorer.planner": ("AutoMethods", "Plan", "PlannedStage", "plan_auto", "plan_manual"),
    "restorer.registry": ("Registry", "StageEntry", "default_registry"),
    "restorer.result": ("RestoreResult", "StageRecord"),
    "restorer.settings": ("Settings", "build_settings"),
    "restorer.stages.base": ("TRIAGE_LABELS", "Stage", "StageKind", "StageOutput", "StageSpec",
                             "TriageResult", "Work"),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}

__all__ = sorted([
    "ImageInputError", "PlanError", "RestorerError", "StageError", "StageUnavailableError",
    "WeightsError", "WeightsIntegrityError", "WeightsMissingError", "__version__", *_MODULE_OF,
])


def __getattr__(name: str) -> Any:
    """A public name of a module not imported yet (PEP 562): import it now, keep it."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'restorer' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF))
