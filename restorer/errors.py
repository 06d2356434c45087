"""Exceptions raised by restorer. Every message says what is wrong and what to do."""

from __future__ import annotations


class RestorerError(Exception):
    """Base class of every error restorer raises on purpose."""


class ImageInputError(RestorerError, ValueError):
    """An input image or mask cannot be used (unreadable, too large, wrong size...)."""


class PlanError(RestorerError, ValueError):
    """The requested stages cannot run in that combination or order."""


class StageError(RestorerError, RuntimeError):
    """A stage failed while running; ``stage_id`` names it."""

    def __init__(self, stage_id: str, message: str) -> None:
        super().__init__(f"stage '{stage_id}' failed: {message}")
        self.stage_id = stage_id


class StageUnavailableError(RestorerError, RuntimeError):
    """A stage cannot be built here (missing weights or packages)."""


class WeightsError(RestorerError, RuntimeError):
    """A weight file is missing, corrupt, or cannot be fetched."""


class WeightsMissingError(WeightsError):
    """Weight files are absent locally and cannot be downloaded (offline or unreachable)."""


class WeightsIntegrityError(WeightsError):
    """A weight file's size or sha256 does not match the manifest."""
