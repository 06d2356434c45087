"""Streaming a batch of photos through a pool of Ray actors, with a ledger.

Why actors and not Ray Data: Ray Data's ``map_batches`` fails the whole dataset when a
block's task fails (after its retries), and its retries re-run a block, not one photo; the
issue asks for a photo that kills its worker to be retried once and then recorded as failed
while the batch goes on, with each result in the ledger as it lands. A fixed pool of actors
(each loads the pipeline once) fed from a bounded window gives exactly that.

Memory is bounded by construction: only paths travel through Ray (a :class:`Job` is two or
three paths; each worker reads its photo itself), and each worker has at most
``PER_WORKER`` photos assigned (one restoring, one queued so it never waits for the driver),
so at most one decoded photo per worker exists at any time whatever the archive's size. A
dead worker is replaced; the driver appends the ledger row only after the photo's files are
in place, so a SIGKILL anywhere loses at most the photos in flight.
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from restorer.archive.ledger import DONE, FAILED, LEDGER_NAME, Ledger, file_sha256
from restorer.archive.sources import Job, clean_temporaries
from restorer.archive.worker import Worker
from restorer.errors import RestorerError
from restorer.jobs import JobSettings
from restorer.settings import Settings

__all__ = ["BatchOptions", "BatchSummary", "PER_WORKER", "run_batch", "to_do"]

log = logging.getLogger(__name__)

PER_WORKER = 2
"""Photos assigned to one worker at a time: the one it restores and the next one."""


@dataclass(frozen=True)
class BatchOptions:
    """Where Ray runs: ``address`` None starts an embedded local Ray with ``workers`` CPUs
    (default: the machine's cores) keeping its session files in ``temp_dir`` (default: a new
    temporary folder, removed at the end); "auto" or "ray://host:port" joins a cluster. When
    the calling process has already started or joined Ray, that Ray is used as it is."""

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0
    temp_dir: Path | None = None


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

    @property
    def finished(self) -> int:
        """Photos of this run with a result (done or failed)."""
        return self.done + self.failed


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


@dataclass
class _Ray:
    """The Ray this batch runs on: ``owned`` when the batch started it (and stops it)."""

    workers: int
    owned: bool
    temp_dir: Path | None


def _connect(options: BatchOptions) -> _Ray:
    """Start an embedded Ray, join ``options.address``, or use the Ray already running in
    this process; quietly (no dashboard, workers' logs stay in Ray's log files)."""
    import ray

    quiet: dict[str, Any] = dict(logging_level=logging.ERROR, log_to_driver=False,
                                 configure_logging=True)
    owned, temp_dir = not ray.is_initialized(), None
    if owned and options.address is None:
        temp_dir = Path(tempfile.mkdtemp(prefix="restorer-ray-")) if options.temp_dir is None \
            else None
        ray.init(num_cpus=options.workers or os.cpu_count() or 1, include_dashboard=False,
                 _temp_dir=str(options.temp_dir or temp_dir), **quiet)
    elif owned:
        try:
            ray.init(address=options.address, **quiet)
        except Exception as exc:  # ConnectionError, RuntimeError, ValueError, grpc errors
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
            raise RestorerError(
                f"cannot join the Ray cluster at '{options.address}': {reason}; start one with "
                "'ray start --head', or leave out --address to run on this machine") from None
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return _Ray(options.workers or max(1, cpus), owned, temp_dir)


def run_batch(jobs: list[Job], dest: Path, settings: JobSettings, settings_id: str,
              config: Settings, options: BatchOptions,
              progress: Callable[[BatchSummary], None] | None = None,
              worker_class: type = Worker) -> BatchSummary:
    """Restore the ``jobs`` not done yet into their outputs on Ray, recording each result in
    DEST's ledger; ``progress(summary)`` is called once before the first photo and after
    each one. ``worker_class`` is :class:`Worker` (tests give a subclass)."""
    started = time.perf_counter()
    ledger = Ledger(dest / LEDGER_NAME)
    clean_temporaries(sorted({j.outputs.image.parent for j in jobs}
                             | {j.outputs.report.parent for j in jobs if j.outputs.report}))
    todo, skipped = to_do(jobs, ledger, settings_id)
    summary = BatchSummary(total=len(jobs), skipped=skipped)
    cluster = _connect(options) if todo else None  # a cluster not there: before any output
    if progress:
        progress(summary)
    if cluster is not None:
        try:
            _stream(todo, ledger, settings, settings_id, config, options, summary, progress,
                    worker_class, cluster)
        finally:
            ledger.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _stream(todo: list[Job], ledger: Ledger, settings: JobSettings, settings_id: str,
            config: Settings, options: BatchOptions, summary: BatchSummary,
            progress: Callable[[BatchSummary], None] | None, worker_class: type,
            cluster: _Ray) -> None:
    import ray
    from ray.exceptions import RayActorError

    workers = min(cluster.workers, len(todo))
    actor_class = ray.remote(num_cpus=1, num_gpus=options.gpus_per_worker,
                             max_restarts=0, max_task_retries=0)(worker_class)
    actors: list[Any] = []
    peaks: dict[int, float] = {}
    try:
        actors = [actor_class.remote(config, settings) for _ in range(workers)]
        pending = collections.deque((job, 0) for job in todo)
        assigned: list[collections.deque] = [collections.deque() for _ in range(workers)]
        inflight: dict[Any, tuple[Job, int, int]] = {}
        served = [False] * workers  # has this slot's actor returned a photo (is it loaded)?
        while pending or inflight:
            while pending and len(inflight) < PER_WORKER * workers:
                job, attempt = pending.popleft()
                slot = min(range(workers), key=lambda s: len(assigned[s]))
                ref = actors[slot].restore.remote(job)
                inflight[ref] = (job, attempt, slot)
                assigned[slot].append(ref)
            (ref,), _ = ray.wait(list(inflight), num_returns=1)
            job, attempt, slot = inflight[ref]
            try:
                row = ray.get(ref)
            except RayActorError as exc:
                if exc.actor_init_failed:  # every worker would fail alike: stop, say why
                    raise RestorerError(f"a worker could not start: {_last_line(exc)}") from None
                row = _worker_died(ray, slot, actors, assigned, inflight, pending, actor_class,
                                   config, settings, exc)
                served[slot] = False
                if row is None:
                    continue
            else:
                del inflight[ref]
                assigned[slot].remove(ref)
                served[slot] = True
            _record(row, settings_id, ledger, summary, peaks)
            if progress:
                progress(summary)
        summary.workers = _worker_peaks(ray, [a for a, up in zip(actors, served) if up], peaks)
    finally:
        if cluster.owned:
            ray.shutdown()
            if cluster.temp_dir is not None:
                shutil.rmtree(cluster.temp_dir, ignore_errors=True)
        else:
            for actor in actors:
                ray.kill(actor)


def _last_line(exc: Exception) -> str:
    """The last line of a remote error (its traceback's ``Type: message`` line)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _worker_died(ray: Any, slot: int, actors: list[Any], assigned: list[collections.deque],
                 inflight: dict[Any, tuple[Job, int, int]], pending: collections.deque,
                 actor_class: Any, config: Settings, settings: JobSettings,
                 exc: Exception) -> dict[str, Any] | None:
    """Replace the dead worker of ``slot`` and take back its photos: the one it was restoring
    (the oldest assigned: an actor runs its calls in order) is retried once, then gets a
    failed row (returned); the ones queued behind it go back unchanged. None: nothing to
    record now."""
    log.warning("a worker died (%s); starting a new one", type(exc).__name__)
    ray.kill(actors[slot])
    actors[slot] = actor_class.remote(config, settings)
    refs = list(assigned[slot])
    assigned[slot].clear()
    taken = [inflight.pop(ref) for ref in refs]
    (job, attempt, _), queued = taken[0], taken[1:]
    pending.extendleft(reversed([(j, a) for j, a, _ in queued]))
    if attempt == 0:
        pending.appendleft((job, 1))
        return None
    return {"input": job.key, "status": FAILED, "seconds": None,
            "error": f"the worker restoring it died twice ({type(exc).__name__}: killed, "
                     "or out of memory)"}


def _worker_peaks(ray: Any, actors: list[Any], peaks: dict[int, float]) -> list[dict[str, Any]]:
    """Each worker process of the run that restored photos (replaced ones too) with its peak
    RSS in MiB; ``actors`` are the live ones that did (a replacement still loading its models
    is not waited for)."""
    alive = {info["pid"]: {**info, "alive": True}
             for info in ray.get([a.info.remote() for a in actors])}
    gone = [{"pid": pid, "startup_s": None, "peak_rss_mib": peak, "alive": False}
            for pid, peak in peaks.items() if pid not in alive]
    return sorted([*alive.values(), *gone], key=lambda w: w["pid"])


def _record(row: dict[str, Any], settings_id: str, ledger: Ledger, summary: BatchSummary,
            peaks: dict[int, float]) -> None:
    row = {"sha256": None, "outputs": [], "label": None, "plan": None, **row,
           "settings": settings_id, "finished": time.time()}
    ledger.append(row)
    if row.get("pid") is not None:
        peaks[row["pid"]] = max(peaks.get(row["pid"], 0.0), row.get("peak_rss_mib") or 0.0)
    if row["status"] == DONE:
        summary.done += 1
        summary.by_label[row["label"] or "-"] += 1
        summary.by_plan[",".join(row["plan"]) or "none"] += 1
    else:
        summary.failed += 1
        summary.errors.append((row["input"], row["error"]))
