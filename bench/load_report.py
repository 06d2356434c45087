"""The load harness's settings, report and table (bench/load.py runs it)."""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: The repository root (app.py, examples/).
REPO = Path(__file__).resolve().parents[1]

log = logging.getLogger("restorer.bench.load")


#: The simulated modes: /detect, /restore Auto, Manual detect+inpaint, Manual deblur.
MODES = ("detect", "auto", "inpaint", "deblur")


#: (width, height) of the photos sent: default run and CI (--short) run.
SIZES = ((256, 256), (512, 384), (1152, 864))


SHORT_SIZES = ((128, 128), (192, 144), (256, 192))


#: /restore arguments after photo, mode and kinds (detector, sensitivity, inpainter, deblurrer,
#: mask file, face stage, fidelity, which faces, min face size, upscale); face is never asked.
RESTORE_OPTIONS = ("detect.morph", 0.5, "inpaint.telea", "deblur.rl", None,
                   "face.gfpgan", 0.7, "all", 64, 1)


MANUAL_KINDS = {"inpaint": ["detect", "inpaint"], "deblur": ["deblur"]}


#: The plan each mode must run (Auto: whatever triage decides).
EXPECTED_PLAN = {"detect": ["detect.morph"], "inpaint": ["detect.morph", "inpaint.telea"],
                 "deblur": ["deblur.rl"]}


#: A page fetch slower than this counts as the page being unresponsive.
UNRESPONSIVE_S = 5.0


THUMB = 16


@dataclass(frozen=True)
class LoadSettings:
    """One load run. ``requests`` defaults to 3 x ``clients``; ``keep_minutes`` to 0.5 with
    ``short`` (cleanup every 10 s) else 2 (every 40 s). The keep time must exceed the longest
    queue wait, or an upload is deleted before its request runs."""

    clients: int = 50
    requests: int | None = None
    concurrency: int = 2
    queue_size: int = 32
    keep_minutes: float | None = None
    #: Seconds for the load phase (all users, all requests); past it the run is aborted.
    deadline: float = 1200.0
    #: Seconds one request may take, busy retries included (capped by ``deadline``).
    request_deadline: float = 300.0
    startup_timeout: float = 240.0
    short: bool = False
    seed: int = 0
    keep: bool = False
    #: Parent of the work folder (default: the system temp folder).
    workdir: Path | None = None
    python: str = sys.executable

    @property
    def total_requests(self) -> int:
        """Requests across all users."""
        return self.requests if self.requests is not None else 3 * self.clients

    @property
    def keep_s(self) -> int:
        """The app's delete-older-than age in seconds (its cache janitor's keep time)."""
        minutes = self.keep_minutes if self.keep_minutes is not None else (
            0.5 if self.short else 2.0)
        return max(1, round(minutes * 60))

    @property
    def cleanup_every_s(self) -> int:
        """The app's cache sweep period in seconds (a third of the keep time, as app.py does)."""
        return max(1, self.keep_s // 3)

    @property
    def sizes(self) -> tuple[tuple[int, int], ...]:
        """(width, height) of the photos sent."""
        return SHORT_SIZES if self.short else SIZES


@dataclass
class ModeStats:
    """Latency of one mode's successful requests, seconds. ``attempt``: the answered attempt
    (upload, queue, processing); ``e2e``: from the first try, busy back-offs included."""

    count: int = 0
    p50: float = math.nan
    p95: float = math.nan
    max: float = math.nan
    e2e_p50: float = math.nan
    e2e_p95: float = math.nan


@dataclass
class LoadReport:
    """Everything one run measured; ``ok`` says whether every check passed."""

    settings: dict[str, Any]
    requests: int = 0
    succeeded: int = 0
    failures: int = 0
    failure_samples: list[str] = field(default_factory=list)
    not_run: int = 0
    aborted: bool = False
    busy: int = 0
    busy_messages: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    startup_s: float = 0.0
    modes: dict[str, ModeStats] = field(default_factory=dict)
    rss_peak_mb: float = 0.0
    rss_hwm_mb: float = 0.0
    rss_samples: int = 0
    probe_count: int = 0
    probe_p95_s: float = math.nan
    probe_max_s: float = math.nan
    probe_unresponsive: int = 0
    probe_errors: int = 0
    crosstalk_checked: int = 0
    crosstalk_wrong: int = 0
    crosstalk_min_margin: float = math.nan
    crosstalk_own_max: float = math.nan
    crosstalk_other_min: float = math.nan
    result_paths_shared: int = 0
    identical_paths_shared: int = 0
    #: Files gradio put in its cache at start (copies of the page's examples), not counted
    #: below.
    cache_startup_files: int = 0
    cache_files_after_load: int = 0
    cache_files_left: int = 0
    cache_files_left_expired: int = 0
    cache_dirs_left: int = 0
    cache_wait_s: float = 0.0
    #: Most cache files seen at once, during the load and the wait after it, that had outlived
    #: the keep time by more than a cleanup period (the app should have deleted them), and
    #: when they were first seen (seconds after the load began).
    cache_overdue_max: int = 0
    cache_overdue_first_s: float | None = None
    tmpdir_files: list[str] = field(default_factory=list)
    #: Folders in the app's TMPDIR (informational: torch makes an empty one at import).
    tmpdir_dirs: list[str] = field(default_factory=list)
    log_upload_mentions: int = 0
    log_mention_samples: list[str] = field(default_factory=list)
    log_tracebacks: int = 0
    #: Distinct exception lines in the app's output (shutdown included).
    log_errors: list[str] = field(default_factory=list)
    app_exit_code: int | None = None

    @property
    def ok(self) -> bool:
        """Every request answered right, nothing left behind, page responsive."""
        return (self.failures == 0 and self.not_run == 0 and not self.aborted
                and self.succeeded == self.requests and self.crosstalk_wrong == 0
                and self.result_paths_shared == 0 and self.probe_unresponsive == 0
                and self.probe_errors == 0 and self.cache_files_left_expired == 0
                and self.cache_overdue_max == 0
                and not self.tmpdir_files and self.log_upload_mentions == 0
                and all("Queue is full" in m for m in self.busy_messages))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (NaN and infinity written as null)."""
        def clean(value: Any) -> Any:
            if isinstance(value, float) and not math.isfinite(value):
                return None
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, list):
                return [clean(v) for v in value]
            return value
        return clean({**asdict(self), "ok": self.ok})


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def format_table(report: LoadReport) -> str:
    """The run as a fixed-width text table."""
    s = report.settings

    def sec(value: float) -> str:
        return "-" if math.isnan(value) else f"{value:.2f}"

    sizes = " ".join(f"{w}x{h}" for w, h in s["sizes"])
    lines = [
        f"restorer load: {s['clients']} clients, {report.requests} requests, concurrency "
        f"{s['concurrency']}, queue {s['queue_size']}, keep {s['keep_s']} s, sizes {sizes}",
        f"{'requests':<22}{report.requests} (succeeded {report.succeeded}, failed "
        f"{report.failures}, not run {report.not_run})"
        + ("  ABORTED (deadline passed or the app exited)" if report.aborted else ""),
        f"{'busy answers':<22}{report.busy}"
        + "".join(f"  {m!r} x{n}" for m, n in report.busy_messages.items()),
        f"{'load time':<22}{report.duration_s:.1f} s (start-up {report.startup_s:.1f} s)",
        "",
        f"{'mode':<10}{'n':>5}{'p50 s':>9}{'p95 s':>9}{'max s':>9}{'e2e p50':>10}{'e2e p95':>10}",
    ]
    for mode, st in report.modes.items():
        lines.append(f"{mode:<10}{st.count:>5}{sec(st.p50):>9}{sec(st.p95):>9}{sec(st.max):>9}"
                     f"{sec(st.e2e_p50):>10}{sec(st.e2e_p95):>10}")
    lines += [
        "",
        f"{'peak RSS (app)':<22}{report.rss_peak_mb:.0f} MB sampled ({report.rss_samples} "
        f"samples), VmHWM {report.rss_hwm_mb:.0f} MB",
        f"{'page probe GET /':<22}{report.probe_count} probes, p95 {sec(report.probe_p95_s)} s, "
        f"max {sec(report.probe_max_s)} s, >{UNRESPONSIVE_S:g} s: {report.probe_unresponsive}, "
        f"errors {report.probe_errors}",
        f"{'cross-talk':<22}{report.crosstalk_checked} results checked, {report.crosstalk_wrong} "
        f"wrong (distance to own input <= {report.crosstalk_own_max:.4f}, to any other >= "
        f"{report.crosstalk_other_min:.4f}, min ratio {report.crosstalk_min_margin:.1f}x)",
        f"{'server paths':<22}result paths handed to 2+ users: {report.result_paths_shared}; "
        f"identical-content paths shared: {report.identical_paths_shared}",
        f"{'temp files left':<22}gradio cache {report.cache_files_left} files "
        f"({report.cache_files_left_expired} past keep time; {report.cache_files_after_load} at "
        f"end of load, waited {report.cache_wait_s:.0f} s; {report.cache_dirs_left} empty "
        f"dirs; {report.cache_startup_files} example copies from start-up not counted), "
        f"app TMPDIR {len(report.tmpdir_files)} files "
        f"(folders: {', '.join(report.tmpdir_dirs) or 'none'})",
        f"{'cache cleanup':<22}" + (
            "kept up (no file outlived keep time + a cleanup period)"
            if report.cache_overdue_first_s is None else
            f"STALLED: files past due from {report.cache_overdue_first_s:.0f} s into the load, "
            f"up to {report.cache_overdue_max} at once"),
        f"{'uploads in app log':<22}{report.log_upload_mentions} lines "
        f"(tracebacks in log: {report.log_tracebacks})",
        f"{'result':<22}{'OK' if report.ok else 'FAILED'}",
    ]
    if report.failure_samples:
        lines.append("problems:")
        lines += [f"  {p}" for p in report.failure_samples]
    if report.tmpdir_files:
        lines.append("app TMPDIR: " + ", ".join(report.tmpdir_files[:10]))
    if report.log_errors:
        lines.append("errors in the app's output: " + " | ".join(report.log_errors))
    if report.log_mention_samples:
        lines.append("log lines naming uploads: " + " | ".join(report.log_mention_samples))
    return "\n".join(lines)
