"""Exceptions raised by restorer. Every message says what is wrong and what to do."""

from __future__ import annotations

import enum


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


class ExitCode(enum.IntEnum):
    """Exit status of every command-line subcommand (documented in the README)."""

    DONE = 0
    """Everything asked for was done."""
    PARTIAL = 1
    """Part was done: some photos of a batch (or some weight files) failed, the rest are done."""
    REFUSED = 2
    """Refused before any work: bad arguments, an unreadable input, a refused output path, an
    invalid option. Nothing was written."""
    FAILED = 3
    """Failed while working: a stage failed, an OS error on write, weights missing or corrupt."""
    INTERRUPTED = 130
    """Interrupted with Ctrl-C (SIGINT)."""
    TERMINATED = 143
    """Stopped by SIGTERM."""
