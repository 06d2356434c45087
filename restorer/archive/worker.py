"""The per-photo work of a batch, in a worker that holds its loaded pipeline.

:func:`restore_one` is the ONE adapter between a batch and ``restore``'s per-photo job: a
batch's outputs are exactly ``python -m restorer restore``'s for each photo. ``Worker`` is
made a Ray actor by the driver (``ray.remote(Worker)``), so it builds the pipeline once per
process and runs one photo at a time (a worker holds at most one photo in memory).
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import time
from typing import Any

from restorer.archive.ledger import DONE, FAILED, file_sha256
from restorer.archive.sources import Job
from restorer.errors import RestorerError
from restorer.jobs import JobSettings, Outputs, restore_file
from restorer.pipeline import Pipeline
from restorer.result import RestoreResult
from restorer.service import build_pipeline
from restorer.settings import Settings

__all__ = ["Worker", "restore_one"]

log = logging.getLogger(__name__)


def restore_one(pipeline: Pipeline, job: Job, settings: JobSettings) -> RestoreResult:
    """Restore ``job.source`` into ``job.outputs`` exactly as ``restore`` does one photo."""
    return restore_file(pipeline, job.source, Outputs(job.outputs.image, job.outputs.mask,
                                                      job.outputs.report), settings)


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, MiB (on Linux its own ``VmHWM``:
    ``ru_maxrss`` also counts the parent's high-water mark, carried over at exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration, ValueError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


class Worker:
    """Restores photos one at a time with a pipeline built once from ``config``."""

    def __init__(self, config: Settings, settings: JobSettings) -> None:
        started = time.perf_counter()
        self._pipeline = build_pipeline(config)
        for stage_id in self._stage_ids(settings):  # load the models before any photo
            self._pipeline.registry.build(stage_id)
        self._settings = settings
        self.startup_s = time.perf_counter() - started

    def _stage_ids(self, settings: JobSettings) -> list[str]:
        """The stages these settings may run: Auto's whose files are here (Auto falls back from
        the others, as the page's warm-up does), or triage and the manual plan's."""
        if settings.stages is None:
            available = self._pipeline.registry.is_available
            return [i for i in self._pipeline.auto_stage_ids() if available(i)]
        return list(dict.fromkeys([self._pipeline.triage_id, *(s.id for s in settings.stages)]))

    def info(self) -> dict[str, Any]:
        """Process id, start-up seconds and peak RSS (MiB) of this worker."""
        return {"pid": os.getpid(), "startup_s": round(self.startup_s, 3),
                "peak_rss_mib": round(peak_rss_mib(), 1)}

    def restore(self, job: Job) -> dict[str, Any]:
        """Restore ``job``; returns its ledger row (status done or failed, never raises for a
        bad photo)."""
        started = time.perf_counter()
        row: dict[str, Any] = {"input": job.key, "pid": os.getpid()}
        try:
            row["sha256"] = file_sha256(job.source)
            result = restore_one(self._pipeline, job, self._settings)
        except RestorerError as exc:
            row.update(status=FAILED, error=str(exc))
        except OSError as exc:
            row.update(status=FAILED, error=f"{exc.strerror or exc}: '{exc.filename}'")
        except Exception as exc:  # a bug: recorded, the batch goes on
            log.exception("unexpected failure on %s", job.source)
            row.update(status=FAILED, error=f"internal error ({type(exc).__name__}: {exc})")
        else:
            row.update(status=DONE, error=None,
                       label=result.triage.label if result.triage else None,
                       plan=list(result.plan.ids),
                       outputs=[str(p) for _, p in job.outputs.paths()])
        row["seconds"] = round(time.perf_counter() - started, 4)
        row["peak_rss_mib"] = round(peak_rss_mib(), 1)
        return row
