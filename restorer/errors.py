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


class OutputPathError(RestorerError, ValueError):
    """An output path is refused before any work (it is an input, a folder, not writable...)."""


class OutputError(RestorerError, OSError):
    """A file could not be written (permission denied, read-only folder, disk full)."""


class Terminated(BaseException):
    """SIGTERM arrived; raised by the command line's signal handler so clean-ups run."""


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


def exit_code(error: BaseException) -> ExitCode:
    """The documented exit status for a run that ended with ``error``."""
    if isinstance(error, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(error, Terminated):
        return ExitCode.TERMINATED
    if isinstance(error, (StageError, StageUnavailableError, WeightsError, OutputError)):
        return ExitCode.FAILED
    return ExitCode.REFUSED
