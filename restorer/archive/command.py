"""``python -m restorer batch``: settings checked before any work, progress, summary table."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from dataclasses import asdict
from typing import Callable

from restorer import files
from restorer.archive.driver import BatchOptions, run_batch
from restorer.archive.ledger import settings_hash
from restorer.archive.progress import Progress, summary_table, write_run_summary
from restorer.archive.sources import list_jobs
from restorer.errors import ExitCode, RestorerError
from restorer.jobs import JobSettings
from restorer.pipeline import Pipeline
from restorer.service import build_pipeline
from restorer.settings import Settings

__all__ = ["run_batch_command", "settings_id"]

OUTPUT_FORMAT = "png"


def settings_id(settings: JobSettings, pipeline: Pipeline, reports: bool) -> str:
    """The hash of everything that changes a batch's outputs: mode, stages and options, mask
    handling, depth and size limit, output format, the weight files' versions, restorer's
    version, colourisation and the crop to the print (those two only when on, so that the
    ledgers of earlier runs keep their ids)."""
    from restorer import __version__

    stages = None if settings.stages is None else [asdict(s) for s in settings.stages]
    switches = {name: True for name in ("colourise", "crop_to_print") if getattr(settings, name)}
    return settings_hash({
        "stages": stages, "options": settings.options, "mask_mode": settings.mask_mode,
        "bits": settings.bits, "max_pixels": settings.limits.max_pixels,
        "format": OUTPUT_FORMAT, "reports": reports, "restorer": __version__,
        "weights": {i: pipeline._weight_versions.get(i) for i in sorted(pipeline._weight_versions)},
        "auto": asdict(pipeline.auto), "triage": pipeline.triage_id,
        "time_budget": pipeline.time_budget, **switches,
    })


def run_batch_command(args: argparse.Namespace, config: Settings,
                      make_settings: Callable[[argparse.Namespace, Pipeline], JobSettings],
                      say: Callable[[str], None]) -> int:
    """Run ``batch`` with parsed ``args`` and the run's ``config`` (built once by the CLI from
    the flags and the environment, handed to every worker); ``make_settings`` is ``restore``'s
    flag checker; ``say`` shows the final summary table (the CLI's stdout)."""
    if importlib.util.find_spec("ray") is None:
        raise RestorerError("batch needs Ray: pip install 'restorer[archive]'")
    if args.workers is not None and args.workers <= 0:
        raise RestorerError("--workers must be a positive number")
    if args.gpus_per_worker < 0:
        raise RestorerError("--gpus-per-worker must be 0 or more")
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
                           gpus_per_worker=args.gpus_per_worker)
    progress = Progress(sys.stderr)
    try:
        summary = run_batch(jobs, args.dest, settings, sid, config, options, progress)
    finally:
        progress.close()
    write_run_summary(summary, args.dest, sid)
    say(summary_table(summary, args.dest))
    if summary.failed == 0:
        return ExitCode.DONE
    return ExitCode.FAILED if summary.done + summary.skipped == 0 else ExitCode.PARTIAL
