"""Streaming a batch of photos through a pool of Ray actors, with a ledger.

Why actors and not Ray Data: Ray Data's ``map_batches`` fails the whole dataset when a
block's task fails (after its retries), and its retries re-run a block, not one photo; the
issue asks for a photo that kills its worker to be retried once and then recorded as failed
while the batch goes on, with each result in the ledger as it lands. A fixed pool of actors
(each loads the pipeline once) fed from a bounded in-flight window gives exactly that:
memory stays bounded (at most ``2 x workers`` photos queued, one in each worker's memory),
a dead worker is replaced, and the driver appends the ledger row only after the photo's
files are in place, so a SIGKILL anywhere loses at most the photos in flight.
"""

from __future__ import annotations

import collections
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from restorer.archive.ledger import DONE, FAILED, LEDGER_NAME, Ledger, file_sha256
from restorer.archive.sources import Job, clean_temporaries
from restorer.archive.worker import Worker
from restorer.jobs import JobSettings
from restorer.service import ServiceConfig

__all__ = ["BatchOptions", "BatchSummary", "run_batch", "to_do"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchOptions:
    """Where Ray runs: ``address`` None starts an embedded local Ray with ``workers`` CPUs
    (default: the machine's cores); "auto" or "ray://host:port" joins a cluster."""

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0
    log_dir: Path | None = None


@dataclass
class BatchSummary:
    """What a batch did: counts, per-label and per-plan counts, worker peaks."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    by_label: collections.Counter = field(default_factory=collections.Counter)
    by_plan: collections.Counter = field(default_factory=collections.Counter)
    workers: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


def to_do(jobs: list[Job], ledger: Ledger, settings_id: str) -> tuple[list[Job], int]:
    """The jobs not yet done with these settings and these input bytes, and how many were."""
    latest = ledger.latest()
    todo, skipped = [], 0
    for job in jobs:
        row = latest.get(job.key)
        if (row and row.get("status") == DONE and row.get("settings") == settings_id
                and all(p.exists() for _, p in job.outputs.paths())
                and row.get("sha256") == _sha256_or_none(job.source)):
            skipped += 1
        else:
            todo.append(job)
    return todo, skipped


def _sha256_or_none(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None


def _init_ray(options: BatchOptions, dest: Path) -> int:
    """Start or join Ray quietly; returns the number of workers to run."""
    import ray

    log_dir = options.log_dir or Path(tempfile.mkdtemp(prefix="restorer-ray-"))
    kwargs: dict[str, Any] = dict(include_dashboard=False, logging_level=logging.ERROR,
                                  log_to_driver=False, configure_logging=True)
    if options.address is None:
        cpus = options.workers or os.cpu_count() or 1
        ray.init(num_cpus=cpus, num_gpus=None, _temp_dir=str(log_dir), **kwargs)
    else:
        ray.init(address=options.address, **kwargs)
    return options.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))


def run_batch(jobs: list[Job], dest: Path, settings: JobSettings, settings_id: str,
              config: ServiceConfig, options: BatchOptions,
              progress: Callable[[BatchSummary, int], None] | None = None) -> BatchSummary:
    """Restore the ``jobs`` not done yet into their outputs on Ray, recording each result in
    DEST's ledger; ``progress(summary, finished)`` is called after each photo."""
    started = time.perf_counter()
    ledger = Ledger(dest / LEDGER_NAME)
    clean_temporaries(sorted({j.outputs.image.parent for j in jobs}
                             | {j.outputs.report.parent for j in jobs if j.outputs.report}))
    todo, skipped = to_do(jobs, ledger, settings_id)
    summary = BatchSummary(total=len(jobs), skipped=skipped)
    if todo:
        try:
            _stream(todo, ledger, settings, settings_id, config, options, dest, summary, progress)
        finally:
            ledger.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _stream(todo: list[Job], ledger: Ledger, settings: JobSettings, settings_id: str,
            config: ServiceConfig, options: BatchOptions, dest: Path, summary: BatchSummary,
            progress: Callable[[BatchSummary, int], None] | None) -> None:
    import ray
    from ray.exceptions import RayActorError

    workers = min(_init_ray(options, dest), len(todo))
    actor_class = ray.remote(num_cpus=1, num_gpus=options.gpus_per_worker,
                             max_restarts=0, max_task_retries=0)(Worker)
    try:
        actors = [actor_class.remote(config, settings) for _ in range(workers)]
        pending = collections.deque((job, 0) for job in todo)
        inflight: dict[Any, tuple[Job, int, int]] = {}
        load = [0] * workers
        while pending or inflight:
            while pending and len(inflight) < 2 * workers:
                job, attempt = pending.popleft()
                slot = min(range(workers), key=load.__getitem__)
                inflight[actors[slot].restore.remote(job)] = (job, attempt, slot)
                load[slot] += 1
            (ref,), _ = ray.wait(list(inflight), num_returns=1)
            job, attempt, slot = inflight.pop(ref)
            load[slot] -= 1
            try:
                row = ray.get(ref)
            except RayActorError as exc:
                actors[slot] = _replace_dead(ray, actors[slot], actor_class, config, settings)
                if attempt == 0:
                    pending.appendleft((job, 1))
                    continue
                row = {"input": job.key, "status": FAILED, "seconds": None,
                       "error": f"the worker died twice on this photo ({type(exc).__name__})"}
            _record(row, settings_id, ledger, summary)
            if progress:
                progress(summary, summary.done + summary.failed)
        summary.workers = ray.get([a.info.remote() for a in actors])
    finally:
        ray.shutdown()


def _replace_dead(ray: Any, actor: Any, actor_class: Any, config: ServiceConfig,
                  settings: JobSettings) -> Any:
    """``actor`` if it still answers, else a fresh one (a worker killed by OOM or a signal)."""
    try:
        ray.get(actor.info.remote(), timeout=30)
        return actor
    except Exception:
        log.warning("a worker died; starting a new one")
        ray.kill(actor)
        return actor_class.remote(config, settings)


def _record(row: dict[str, Any], settings_id: str, ledger: Ledger, summary: BatchSummary) -> None:
    row = {"sha256": None, "outputs": [], "label": None, "plan": None, **row,
           "settings": settings_id, "finished": time.time()}
    ledger.append(row)
    if row["status"] == DONE:
        summary.done += 1
        summary.by_label[row["label"] or "-"] += 1
        summary.by_plan[",".join(row["plan"]) or "none"] += 1
    else:
        summary.failed += 1
        summary.errors.append((row["input"], row["error"]))
