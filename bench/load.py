#!/usr/bin/env python
"""Load harness: the real app as a subprocess on 127.0.0.1, driven by N gradio_client users.

    python bench/load.py [--clients 50] [--requests 150] [--concurrency 2] [--queue-size 32]
                         [--keep-minutes M] [--deadline 1200] [--short] [--json PATH] [--keep]

The app is launched as ``app.py --host 127.0.0.1 --offline`` in its own process group, with
GRADIO_TEMP_DIR, TMPDIR, MPLCONFIGDIR and KERAS_HOME inside a fresh work folder owned by the
harness, and its output captured to ``app.log`` there. Once the page answers and a first tiny
/detect succeeded (the triage model is loaded), N simulated users start together; each has its
own ``gradio_client.Client`` and folder and sends its share of the requests one after another.

Requests mix four modes (/detect; /restore Auto; /restore Manual detect+inpaint; /restore
Manual deblur) and three sizes; every request sends a distinct photo made here from scikit-image's
bundled images (own crop, scale, flip, uneven toning and seeded cracks or blur). A "Queue is
full" answer (HTTP 503, ``QueueError``) counts as *busy*, not as a failure: the user backs off
0.5-2 s and tries again until the request's deadline. Any other exception, or a wrong result, is
a failure. Every result is checked against its own input:

* size and the report's ``size`` match the input, the plan is the mode's; /detect returns the
  photo unchanged; inpainting plans change no pixel outside the returned defect mask (by more
  than 1 level); plans with a deblur stage stay above 25 dB PSNR to the input outside the mask;
* cross-talk: the result's 16x16 thumbnail is nearest to its own input's among all inputs of the
  run with the same size, by a clear margin;
* the server-side paths of every file returned (the client runs with ``download_files=False``
  so it sees them, and downloads the files itself into the user's folder, as a browser would):
  no result path is handed to two users. gradio names cached files by a hash of their content,
  so identical outputs (an empty mask of the same size) do share a path; those are counted
  apart, as they reveal nothing.

Meanwhile a probe fetches the page (GET /) every 0.5 s, and the app's resident memory
(VmRSS, its process tree) is sampled every 0.2 s; VmHWM is read before the app is stopped.
gradio's cache (``--keep-minutes``: app.py's janitor deletes older files every third of it) is
watched every 2 s for files that outlived the keep time by a whole cleanup period. After the
load the harness waits for the cleanup and counts the files left in the app's GRADIO_TEMP_DIR
(its start-up copies of the page's examples apart) and TMPDIR (which must stay empty: anything
there is a leak). Once the app is stopped, its log is searched for the uploads' names and
folders (they must not appear), tracebacks and exception lines.

``--deadline`` bounds the load phase: past it the users stop, requests in flight are given up
and the report says so (``aborted``). Start-up is bounded by ``--startup-timeout`` and the
cleanup wait by the keep time plus two cleanup periods. The app is always stopped, its whole
process group, first with SIGINT (as Ctrl-C: gradio closes and reports errors of its background
tasks), and the work folder deleted unless ``--keep``.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import functools
import json
import logging
import math
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from bench.load_app import AppProcess, Sampler, empty_folders_under, files_under  # noqa: E402
from bench.load_checks import RequestSpec, crosstalk, make_photo, plan_requests  # noqa: E402
from bench.load_report import (MODES, UNRESPONSIVE_S, LoadReport, LoadSettings,  # noqa: E402
                               ModeStats, format_table, percentile)
from bench.load_users import RunState, User  # noqa: E402
from restorer.imaging import save_image  # noqa: E402

log = logging.getLogger("restorer.bench.load")


def run_load(settings: LoadSettings) -> LoadReport:
    """Launch the app, run the load, check hygiene; always stops the app.

    Raises when the app cannot be started (with its log's tail); everything after start-up
    is reported in the returned :class:`LoadReport`.
    """
    parent = settings.workdir
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="restorer-load-", dir=parent))
    report = LoadReport(settings={**asdict(settings), "workdir": str(root),
                                  "requests": settings.total_requests,
                                  "keep_s": settings.keep_s,
                                  "cleanup_every_s": settings.cleanup_every_s,
                                  "sizes": [list(s) for s in settings.sizes]})
    app = AppProcess(settings, root)
    run = RunState(settings)
    users: list[User] = []
    try:
        began = time.monotonic()
        app.start()
        warm = root / "clients" / "warm-up.png"
        warm.parent.mkdir(parents=True)
        save_image(make_photo(RequestSpec(-1, -1, "detect", (64, 64), settings.seed)), warm)
        app.wait_ready(settings.startup_timeout, warm)
        report.startup_s = time.monotonic() - began
        log.info("app ready after %.1f s", report.startup_s)
        watcher = Sampler("cache", 2.0, functools.partial(_watch_cache, settings, app, run,
                                                          report))
        watcher.start()
        try:
            _load(settings, app, run, users, report, root)
            _hygiene(settings, app, run, report)
        finally:
            watcher.stop()
    finally:
        run.stop.set()
        run.start.set()
        for user in users:
            user.join(timeout=5)
        report.app_exit_code = app.stop()
        _read_log(app, run, report)
        if settings.keep:
            log.info("kept the work folder %s", root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    return report


def _load(settings: LoadSettings, app: AppProcess, run: RunState, users: list[User],
          report: LoadReport, root: Path) -> None:
    """The load phase: users, page probe and memory sampler; fills ``report``."""
    plans = plan_requests(settings)
    users.extend(User(i, app.url, root / "clients" / f"c{i:03d}", specs, run)
                 for i, specs in enumerate(plans) if specs)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda u: u.connect(), users))

    rss: list[int] = []
    probes: list[float] = []
    probe_errors: list[str] = []

    def sample_rss() -> None:
        rss.append(app.rss_kb())

    probe_client = httpx.Client(timeout=30)

    def probe() -> None:
        started = time.monotonic()
        try:
            response = probe_client.get(app.url)
            if response.status_code != 200 or "<html" not in response.text[:2000].lower():
                probe_errors.append(f"HTTP {response.status_code}")
        except httpx.HTTPError as exc:
            probe_errors.append(f"{type(exc).__name__}: {exc}")
        probes.append(time.monotonic() - started)

    samplers = [Sampler("rss", 0.2, sample_rss), Sampler("probe", 0.5, probe)]
    for user in users:
        user.start()
    for sampler in samplers:
        sampler.start()
    started = run.began = time.monotonic()
    run.deadline = started + settings.deadline
    run.start.set()
    try:
        for user in users:
            while user.is_alive() and time.monotonic() < run.deadline + 60:
                user.join(timeout=1.0)
                crashed = app.proc is not None and app.proc.poll() is not None
                if (crashed or time.monotonic() > run.deadline) and not run.stop.is_set():
                    log.warning("%s: stopping the users", "the app exited" if crashed
                                else "deadline passed")
                    report.aborted = True
                    run.stop.set()
    finally:
        report.duration_s = time.monotonic() - started
        for sampler in samplers:
            sampler.stop()
        probe_client.close()
        report.rss_hwm_mb = app.hwm_kb() / 1024
    outcomes = [o for user in users for o in user.outcomes]
    report.requests = settings.total_requests
    report.succeeded = sum(o.ok for o in outcomes)
    failed = [o for o in outcomes if not o.ok]
    report.failures = len(failed)
    report.not_run = report.requests - len(outcomes)
    report.failure_samples = [f"request {o.spec.index} ({o.spec.mode} {o.spec.size[0]}x"
                              f"{o.spec.size[1]}, user {o.spec.client}): {o.error}"
                              for o in failed[:10]]
    report.busy = sum(run.busy.values())
    report.busy_messages = dict(run.busy)
    for mode in MODES:
        done = [o for o in outcomes if o.ok and o.spec.mode == mode]
        attempt = [o.attempt_s for o in done]
        e2e = [o.e2e_s for o in done]
        report.modes[mode] = ModeStats(len(done), percentile(attempt, 50),
                                       percentile(attempt, 95), max(attempt, default=math.nan),
                                       percentile(e2e, 50), percentile(e2e, 95))
    report.rss_peak_mb = max(rss, default=0) / 1024
    report.rss_samples = len(rss)
    report.probe_count = len(probes)
    report.probe_p95_s = percentile(probes, 95)
    report.probe_max_s = max(probes, default=math.nan)
    report.probe_unresponsive = sum(p > UNRESPONSIVE_S for p in probes)
    report.probe_errors = len(probe_errors)
    if probe_errors:
        report.failure_samples.append(f"page probe: {probe_errors[0]}")
    found = crosstalk(outcomes, run.inputs)
    report.crosstalk_checked, report.crosstalk_wrong = found.checked, found.wrong
    if found.checked:
        report.crosstalk_min_margin = found.margin
        report.crosstalk_own_max, report.crosstalk_other_min = found.own_max, found.other_min
    report.failure_samples.extend(found.samples[:5])
    # Server-side paths: a result path handed to two users is cross-talk; identical content
    # (same hash folder, e.g. an empty mask of one size) is counted apart.
    owners: dict[str, set[int]] = collections.defaultdict(set)
    roles: dict[str, set[str]] = collections.defaultdict(set)
    for outcome in outcomes:
        for role, path in outcome.server_paths.items():
            owners[path].add(outcome.spec.client)
            roles[path].add(role)
    shared = [p for p, who in owners.items() if len(who) > 1]
    result_shared = [p for p in shared if roles[p] & {"restored", "overlay"}]
    report.result_paths_shared = len(result_shared)
    report.identical_paths_shared = len(shared) - len(result_shared)
    report.failure_samples.extend(f"result path shared by users {sorted(owners[p])}: "
                                  f"{Path(p).parent.name[:12]}/{Path(p).name}"
                                  for p in result_shared[:5])


def _watch_cache(settings: LoadSettings, app: AppProcess, run: RunState, report: LoadReport) -> None:
    """Count the cache files that the app's cache janitor should already have deleted."""
    overdue_after = settings.keep_s + settings.cleanup_every_s + 5
    now, overdue = time.time(), 0
    for path in app.cache_files():
        if path in app.startup_files:
            continue
        try:
            overdue += now - path.lstat().st_ctime > overdue_after
        except FileNotFoundError:
            continue
    if overdue and report.cache_overdue_first_s is None:
        report.cache_overdue_first_s = time.monotonic() - (run.began or time.monotonic())
    report.cache_overdue_max = max(report.cache_overdue_max, overdue)


def _hygiene(settings: LoadSettings, app: AppProcess, run: RunState, report: LoadReport) -> None:
    """Wait for the app's cache sweep, then count what is left and read the log."""
    def made_by_requests() -> list[Path]:
        return [p for p in app.cache_files() if p not in app.startup_files]

    report.cache_startup_files = len(app.startup_files)
    report.cache_files_after_load = len(made_by_requests())
    started = time.monotonic()
    limit = settings.keep_s + 2 * settings.cleanup_every_s + 5
    while time.monotonic() - started < limit and made_by_requests():
        if app.proc is not None and app.proc.poll() is not None:
            break
        time.sleep(1.0)
    report.cache_wait_s = time.monotonic() - started
    left = made_by_requests()
    now = time.time()
    report.cache_files_left = len(left)
    report.cache_files_left_expired = sum(
        now - p.lstat().st_ctime > settings.keep_s + settings.cleanup_every_s + 2
        for p in left if p.exists())
    report.cache_dirs_left = empty_folders_under(app.cache_dir)
    report.tmpdir_files = sorted(str(p.relative_to(app.tmp_dir)) for p in files_under(app.tmp_dir))
    report.tmpdir_dirs = sorted(str(p.relative_to(app.tmp_dir)) for p in app.tmp_dir.rglob("*")
                                if p.is_dir())


def _read_log(app: AppProcess, run: RunState, report: LoadReport) -> None:
    """After the app stopped (shutdown errors included): uploads named, tracebacks, errors."""
    text = app.log_path.read_text(errors="replace") if app.log_path.exists() else ""
    needles = (run.tag, str(app.cache_dir), str(app.root / "clients"))
    mentions = [line for line in text.splitlines() if any(n in line for n in needles)]
    report.log_upload_mentions = len(mentions)
    report.log_mention_samples = [line[:200] for line in mentions[:5]]
    report.log_tracebacks = len(re.findall(r"^Traceback", text, re.M))
    errors = re.findall(r"^(\w+(?:Error|Exception)\b.*)$", text, re.M)
    report.log_errors = list(dict.fromkeys(line[:200] for line in errors))[:10]


def parse_args(argv: list[str] | None = None) -> tuple[LoadSettings, Path | None]:
    """Command-line settings and the JSON output path."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="simultaneous users (50)")
    parser.add_argument("--requests", type=int, default=None,
                        help="requests across all users (default 3 x clients)")
    parser.add_argument("--concurrency", type=int, default=2, help="app's --concurrency (2)")
    parser.add_argument("--queue-size", type=int, default=32, help="app's --queue-size (32)")
    parser.add_argument("--keep-minutes", type=float, default=None,
                        help="app's --keep-minutes (default 0.5 with --short, else 2)")
    parser.add_argument("--deadline", type=float, default=1200.0,
                        help="seconds for the load phase; past it the run aborts (1200)")
    parser.add_argument("--request-deadline", type=float, default=300.0,
                        help="seconds one request may take, busy retries included (300)")
    parser.add_argument("--startup-timeout", type=float, default=240.0)
    parser.add_argument("--short", action="store_true", help="small photos (CI)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the report as JSON here")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (app log, cache, photos)")
    args = parser.parse_args(argv)
    if args.clients < 1 or (args.requests is not None and args.requests < 1):
        parser.error("--clients and --requests must be at least 1")
    return LoadSettings(clients=args.clients, requests=args.requests,
                        concurrency=args.concurrency, queue_size=args.queue_size,
                        keep_minutes=args.keep_minutes, deadline=args.deadline,
                        request_deadline=args.request_deadline,
                        startup_timeout=args.startup_timeout, short=args.short, seed=args.seed,
                        keep=args.keep), args.json


def main(argv: list[str] | None = None) -> int:
    """Run the load and print the table; exit status 0 when every check passed."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    settings, json_path = parse_args(argv)

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)  # stop the app on `kill` too, as on Ctrl-C
    report = run_load(settings)
    print(format_table(report))
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_json(), indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
