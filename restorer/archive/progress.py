"""What a batch tells its user: a progress bar as it runs, a summary table and file at the end.

On a terminal the bar is tqdm's (photos done / total, photos per second, ETA, failures); when
stderr is not a terminal (a log file, a scheduler) it prints a plain line at most every
``every`` seconds and one at the end, so logs stay readable.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, TextIO

from restorer import files
from restorer.archive.driver import BatchSummary
from restorer.archive.ledger import LEDGER_NAME

__all__ = ["RUN_SUMMARY_NAME", "Progress", "summary_table", "write_run_summary"]

RUN_SUMMARY_NAME = "restorer-run.json"
"""The last run's summary (counts, workers' peak memory) in DEST, beside the ledger."""


class Progress:
    """Call with the batch's summary after each photo; ``close`` at the end."""

    def __init__(self, stream: TextIO, *, every: float = 10.0) -> None:
        self._stream = stream
        self._every = every
        self._bar: Any = None
        self._tty = stream.isatty()
        self._started = time.perf_counter()
        self._last = float("-inf")
        self._summary: BatchSummary | None = None

    def __call__(self, summary: BatchSummary) -> None:
        self._summary = summary
        if self._tty:
            self._update_bar(summary)
        elif time.perf_counter() - self._last >= self._every:
            self._line(summary)

    def _update_bar(self, summary: BatchSummary) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=summary.total, initial=summary.skipped, desc="restoring",
                             unit="photo", file=self._stream, dynamic_ncols=True)
        self._bar.update(summary.skipped + summary.finished - self._bar.n)
        self._bar.set_postfix(failed=summary.failed, skipped=summary.skipped)

    def _line(self, summary: BatchSummary) -> None:
        self._last = time.perf_counter()
        elapsed = self._last - self._started
        rate = summary.finished / elapsed if elapsed > 0 else 0.0
        left = summary.total - summary.skipped - summary.finished
        eta = f"{left / rate:.0f} s" if rate > 0 else "?"
        self._stream.write(f"restoring: {summary.skipped + summary.finished}/{summary.total} "
                           f"photos ({summary.skipped} skipped, {summary.failed} failed), "
                           f"{rate:.2f} photos/s, ETA {eta}\n")
        self._stream.flush()

    def close(self) -> None:
        """End the bar, or print the last plain line."""
        if self._bar is not None:
            self._bar.close()
        elif self._summary is not None and not self._tty:
            self._line(self._summary)


def summary_table(summary: BatchSummary, dest: Path) -> str:
    """The end-of-run table: done, skipped, failed, by triage label and by plan, each
    worker's peak memory, the failures with their errors."""
    rate = summary.finished / summary.seconds if summary.seconds else 0.0
    lines = [f"{'photos':<28}{summary.total:>8}", f"{'done':<28}{summary.done:>8}",
             f"{'skipped (done before)':<28}{summary.skipped:>8}",
             f"{'failed':<28}{summary.failed:>8}",
             f"{'seconds':<28}{summary.seconds:>8.1f}", f"{'photos/s':<28}{rate:>8.2f}"]
    lines += [f"label {label:<22}{n:>8}" for label, n in sorted(summary.by_label.items())]
    lines += [f"plan {plan:<23}{n:>8}" for plan, n in sorted(summary.by_plan.items())]
    for worker in summary.workers:
        state = (f"start-up {worker['startup_s']:.1f} s" if worker["alive"]
                 else "died, replaced")
        lines.append(f"worker pid {worker['pid']:<17}peak RSS {worker['peak_rss_mib']:.0f} MiB, "
                     f"{state}")
    for source, error in summary.errors:
        lines.append(f"failed {source}: {error}")
    lines.append(f"ledger: {dest / LEDGER_NAME}, summary: {dest / RUN_SUMMARY_NAME}")
    return "\n".join(lines)


def write_run_summary(summary: BatchSummary, dest: Path, settings_id: str) -> Path:
    """Write the run's summary as JSON in DEST (atomically); returns its path."""
    data = {"finished": time.time(), "settings": settings_id, "total": summary.total,
            "done": summary.done, "skipped": summary.skipped, "failed": summary.failed,
            "seconds": round(summary.seconds, 3), "by_label": dict(summary.by_label),
            "by_plan": dict(summary.by_plan), "workers": summary.workers,
            "errors": [{"input": s, "error": e} for s, e in summary.errors]}
    return files.write_text(dest / RUN_SUMMARY_NAME, json.dumps(data, indent=2) + "\n")
