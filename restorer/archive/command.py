"""``python -m restorer batch``: settings checked before any work, progress, summary table."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

from restorer import files
from restorer.archive.driver import BatchOptions, BatchSummary, run_batch
from restorer.archive.ledger import LEDGER_NAME, settings_hash
from restorer.archive.sources import list_jobs
from restorer.errors import ExitCode, RestorerError
from restorer.jobs import JobSettings
from restorer.pipeline import Pipeline
from restorer.service import ServiceConfig, build_pipeline

__all__ = ["run_batch_command", "settings_id"]

OUTPUT_FORMAT = "png"


def settings_id(settings: JobSettings, pipeline: Pipeline, reports: bool) -> str:
    """The hash of everything that changes a batch's outputs: mode, stages and options, mask
    handling, depth and size limit, output format, the weight files' versions, restorer's
    version."""
    from restorer import __version__

    stages = None if settings.stages is None else [asdict(s) for s in settings.stages]
    return settings_hash({
        "stages": stages, "options": settings.options, "mask_mode": settings.mask_mode,
        "bits": settings.bits, "max_pixels": settings.limits.max_pixels,
        "format": OUTPUT_FORMAT, "reports": reports, "restorer": __version__,
        "weights": {i: pipeline._weight_versions.get(i) for i in sorted(pipeline._weight_versions)},
        "auto": asdict(pipeline.auto), "triage": pipeline.triage_id,
        "time_budget": pipeline.time_budget,
    })


def run_batch_command(args: argparse.Namespace,
                      make_settings: Callable[[argparse.Namespace, Pipeline], JobSettings]) -> int:
    """Run ``batch`` with parsed ``args``; ``make_settings`` is ``restore``'s flag checker."""
    if importlib.util.find_spec("ray") is None:
        raise RestorerError("batch needs Ray: pip install 'restorer[archive]'")
    if args.workers is not None and args.workers <= 0:
        raise RestorerError("--workers must be a positive number")
    if args.gpus_per_worker < 0:
        raise RestorerError("--gpus-per-worker must be 0 or more")
    if args.max_pixels <= 0:
        raise RestorerError("--max-pixels must be a positive number of pixels")
    config = ServiceConfig(offline=os.environ.get("HF_HUB_OFFLINE") == "1")
    if args.device is not None:
        config = replace(config, device=args.device)
    budget = args.time_budget  # --time-budget (a job flag shared with restore)
    config = replace(config, time_budget=None if budget == float("inf") else budget)
    pipeline = build_pipeline(config)  # cheap: stages are built by the workers
    settings = make_settings(args, pipeline)
    jobs = list_jobs(args.src, args.dest, args.report_dir)
    for folder in (f for f in (args.dest, args.report_dir) if f is not None):
        files.check_writable_folder(folder, create=True)
    for parent in sorted({j.outputs.image.parent for j in jobs}
                         | {j.outputs.report.parent for j in jobs if j.outputs.report}):
        files.check_writable_folder(parent, create=True)
    sid = settings_id(settings, pipeline, args.report_dir is not None)
    options = BatchOptions(address=args.address, workers=args.workers,
                           gpus_per_worker=args.gpus_per_worker,
                           log_dir=None)
    summary = _run_with_progress(jobs, args.dest, settings, sid, config, options)
    print(summary_table(summary, args.dest / LEDGER_NAME))
    if summary.failed == 0:
        return ExitCode.DONE
    return ExitCode.FAILED if summary.failed == summary.total else ExitCode.PARTIAL


def _run_with_progress(jobs: list, dest: Path, settings: JobSettings, sid: str,
                       config: ServiceConfig, options: BatchOptions) -> BatchSummary:
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="restoring", unit="photo", file=sys.stderr,
               dynamic_ncols=True)

    def progress(summary: BatchSummary, finished: int) -> None:
        if bar.n == 0 and summary.skipped:
            bar.update(summary.skipped)
        bar.update(1)
        bar.set_postfix(failed=summary.failed, skipped=summary.skipped, refresh=False)

    try:
        return run_batch(jobs, dest, settings, sid, config, options, progress)
    finally:
        bar.close()


def summary_table(summary: BatchSummary, ledger: Path) -> str:
    """The end-of-run table: done, skipped, failed, by triage label and by plan."""
    rate = summary.done / summary.seconds if summary.seconds else 0.0
    lines = [f"{'photos':<28}{summary.total:>8}", f"{'done':<28}{summary.done:>8}",
             f"{'skipped (done before)':<28}{summary.skipped:>8}",
             f"{'failed':<28}{summary.failed:>8}",
             f"{'seconds':<28}{summary.seconds:>8.1f}", f"{'photos/s':<28}{rate:>8.2f}"]
    lines += [f"label {label:<22}{n:>8}" for label, n in sorted(summary.by_label.items())]
    lines += [f"plan {plan:<23}{n:>8}" for plan, n in sorted(summary.by_plan.items())]
    for worker in summary.workers:
        lines.append(f"worker pid {worker['pid']:<17}peak RSS {worker['peak_rss_mib']:.0f} MiB, "
                     f"start-up {worker['startup_s']:.1f} s")
    for source, error in summary.errors:
        lines.append(f"failed {source}: {error}")
    lines.append(f"ledger: {ledger}")
    return "\n".join(lines)

