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
import contextlib
import functools
import json
import logging
import math
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.utils import QueueError  # noqa: E402

from restorer.imaging import load_image, save_image  # noqa: E402
from restorer.synth import damage  # noqa: E402

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


@dataclass(frozen=True)
class RequestSpec:
    """One request: who sends it, which mode, the photo's size and seed."""

    index: int
    client: int
    mode: str
    size: tuple[int, int]
    seed: int


@dataclass
class Outcome:
    """What happened to one request."""

    spec: RequestSpec
    ok: bool = False
    error: str = ""
    busy: int = 0
    attempt_s: float = math.nan
    e2e_s: float = math.nan
    #: role -> server-side path of every file in the answer.
    server_paths: dict[str, str] = field(default_factory=dict)
    result_thumb: np.ndarray | None = None


# --------------------------------------------------------------------------------------------
# photos and checks


class WrongResult(Exception):
    """An answer that does not fit its own request."""


@functools.lru_cache(maxsize=1)
def base_photos() -> tuple[np.ndarray, ...]:
    """scikit-image's bundled photos as float32 (H, W, 3): astronaut, coffee, chelsea, camera,
    rocket."""
    from skimage import data

    return tuple(load_image(f()) for f in (data.astronaut, data.coffee, data.chelsea,
                                          data.camera, data.rocket))


def make_photo(spec: RequestSpec) -> np.ndarray:
    """The distinct damaged photo of ``spec``: float32 (H, W, 3) in [0, 1].

    A seeded crop at a seeded scale of one bundled photo, maybe mirrored, with uneven toning
    (a smooth random gain, so no two inputs are alike even from the same crop) and then seeded
    cracks, or blur for the deblur mode.
    """
    rng = np.random.default_rng([spec.seed, spec.index + 1])  # index -1: the warm-up
    bases = base_photos()
    base = bases[spec.index % len(bases)]
    width, height = spec.size
    scale = max(width / base.shape[1], height / base.shape[0]) * rng.uniform(1.0, 1.8)
    scaled = cv2.resize(base, (math.ceil(base.shape[1] * scale), math.ceil(base.shape[0] * scale)),
                        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    top = int(rng.integers(0, scaled.shape[0] - height + 1))
    left = int(rng.integers(0, scaled.shape[1] - width + 1))
    photo = scaled[top:top + height, left:left + width]
    if rng.random() < 0.5:
        photo = photo[:, ::-1]
    gain = cv2.resize(rng.uniform(-1.0, 1.0, (3, 3)).astype(np.float32), (width, height),
                      interpolation=cv2.INTER_CUBIC)
    photo = np.clip(photo * (1.0 + 0.25 * gain[..., None]), 0.0, 1.0).astype(np.float32)
    if spec.mode == "deblur":
        return damage(photo, rng, cracks=False, blurred=True).image
    return damage(photo, rng).image


def thumbnail(pixels: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (16, 16, 3) in [0, 1], area-averaged."""
    return cv2.resize(pixels.astype(np.float32) / 255.0, (THUMB, THUMB),
                      interpolation=cv2.INTER_AREA)


def read_pixels(path: Path, mode: str = "RGB") -> np.ndarray:
    """An image file's pixels as uint8 (H, W, 3) or (H, W) for mode "L"."""
    with Image.open(path) as image:
        return np.asarray(image.convert(mode))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def check_result(mode: str, before: np.ndarray, restored: np.ndarray, mask: np.ndarray,
                 report: dict[str, Any]) -> list[str]:
    """Problems with one answer, judged against its own input (empty when right).

    ``before``/``restored`` uint8 (H, W, 3), ``mask`` uint8 (H, W) with 255 = defect.
    """
    problems = []
    height, width = before.shape[:2]
    if restored.shape != before.shape:
        problems.append(f"restored is {restored.shape}, input {before.shape}")
        return problems
    if mask.shape != before.shape[:2]:
        problems.append(f"mask is {mask.shape}, input {before.shape[:2]}")
        return problems
    if report.get("size") != [width, height]:
        problems.append(f"report size {report.get('size')} != input {[width, height]}")
    plan = report.get("plan")
    if mode in EXPECTED_PLAN and plan != EXPECTED_PLAN[mode]:
        problems.append(f"plan {plan} != {EXPECTED_PLAN[mode]}")
    kinds = {s.get("kind") for s in report.get("stages", [])}
    changed = np.abs(restored.astype(int) - before.astype(int)).max(axis=2)
    if mode == "detect":
        if changed.any():
            problems.append("/detect changed the photo")
    elif "deblur" in kinds:
        # Deblurring changes every pixel a little; inpainting (Auto) the defects a lot.
        keep = mask != 255
        if (value := psnr(restored[keep], before[keep])) <= 25.0:
            problems.append(f"deblurred result only {value:.1f} dB from its own input "
                            f"outside the defect mask")
    else:
        outside = changed[mask != 255]
        if outside.size and outside.max() > 1:
            problems.append(f"{int((outside > 1).sum())} pixels outside the mask changed "
                            f"(by up to {int(outside.max())})")
        if (fraction := float((mask == 255).mean())) > 0.6:
            # Else "unchanged outside the mask" would say little.
            problems.append(f"the defect mask covers {fraction:.0%} of the photo")
    return problems


def file_entries(value: Any, role: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(role, FileData dict) for every file in an answer (``download_files=False``)."""
    if isinstance(value, dict):
        if value.get("meta", {}).get("_type") == "gradio.FileData" or (
                "path" in value and "url" in value):
            yield role, value
            return
        for key, item in value.items():
            yield from file_entries(item, f"{role}.{key}" if role else str(key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from file_entries(item, f"{role}[{i}]")


# --------------------------------------------------------------------------------------------
# the app process and its watchers


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _proc_status_kb(pid: int, key: str) -> int:
    """A ``Vm*`` field of /proc/PID/status in kB (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return 0


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc/PID/task/*/children."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(c) for c in children.read_text().split())
            except (FileNotFoundError, ProcessLookupError, ValueError):
                pass
    return tree


class Sampler(threading.Thread):
    """Calls ``sample`` every ``period`` seconds until stopped."""

    def __init__(self, name: str, period: float, sample: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self.period, self.sample, self.halt = period, sample, threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                started = time.monotonic()
                self.sample()
                self.halt.wait(max(0.0, self.period - (time.monotonic() - started)))
        except Exception as exc:  # re-raised by stop(): a dead sampler must not pass silently
            self.error = exc

    def stop(self) -> None:
        """Stop and wait for the thread; re-raise what made it die, if anything did."""
        self.halt.set()
        self.join(timeout=60)
        if self.error is not None:
            raise RuntimeError(f"the {self.name} sampler died: {self.error!r}") from self.error


@contextlib.contextmanager
def _sigint_not_ignored() -> Iterator[None]:
    """Let a child started inside get SIGINT as Ctrl-C (for a graceful stop).

    A background job inherits SIGINT ignored, and a child inherits that in turn: Python then
    never raises KeyboardInterrupt in it. A *handled* signal is reset to the default at exec.
    """
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


class AppProcess:
    """app.py as a subprocess in its own process group, on 127.0.0.1, with its folders in
    ``root``; stopped (the whole group) by :meth:`stop`."""

    def __init__(self, settings: LoadSettings, root: Path) -> None:
        self.settings, self.root = settings, root
        self.cache_dir, self.tmp_dir = root / "gradio", root / "tmp"
        self.log_path = root / "app.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen[bytes] | None = None
        #: Files in the cache once the page answered, before any request: gradio's copies of
        #: the page's example photos (kept for the app's lifetime, not user data).
        self.startup_files: set[Path] = set()

    def start(self) -> None:
        """Launch app.py (returns at once)."""
        for folder in (self.cache_dir, self.tmp_dir, self.root / "home"):
            folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GRADIO_TEMP_DIR": str(self.cache_dir), "TMPDIR": str(self.tmp_dir),
               "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
               "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
               "MPLCONFIGDIR": str(self.root / "home" / "mpl"),
               "KERAS_HOME": str(self.root / "home" / "keras")}
        s = self.settings
        command = [s.python, str(REPO / "app.py"), "--host", "127.0.0.1", "--port", str(self.port),
                   "--concurrency", str(s.concurrency), "--queue-size", str(s.queue_size),
                   "--keep-minutes", f"{s.keep_s / 60:g}", "--offline"]
        with open(self.log_path, "wb") as out, _sigint_not_ignored():
            self.proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        log.info("started app pid %d on %s", self.proc.pid, self.url)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        """Raise with the log's tail when the app has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"the app exited with code {self.proc.returncode}:\n"
                               f"{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the app's output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout: float, photo: Path) -> None:
        """Wait until GET / answers 200 and a /detect of ``photo`` succeeds (model loaded)."""
        end = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                if httpx.get(self.url, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > end:
                raise TimeoutError(f"the page did not answer within {timeout:g} s")
            time.sleep(0.5)
        self.startup_files = set(files_under(self.cache_dir))
        client = Client(self.url, verbose=False, download_files=False, analytics_enabled=False,
                        httpx_kwargs={"timeout": 60})
        try:
            job = client.submit(handle_file(str(photo)), "detect.morph", 0.5, api_name="/detect")
            job.result(timeout=max(1.0, end - time.monotonic()))
        finally:
            client.close()

    def cache_files(self) -> list[Path]:
        """Files in gradio's cache now (its example copies from start-up included)."""
        return files_under(self.cache_dir)

    def rss_kb(self) -> int:
        """Resident memory of the app's process tree, kB."""
        return sum(_proc_status_kb(p, "VmRSS") for p in process_tree(self.pid))

    def hwm_kb(self) -> int:
        """Peak resident memory of the app's main process (VmHWM), kB."""
        return _proc_status_kb(self.pid, "VmHWM")

    def stop(self) -> int | None:
        """Stop the process group: SIGINT (gradio closes its server and reports errors of its
        background tasks), SIGTERM after 15 s, SIGKILL after 10 more; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGINT, 15), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        # Whatever is left of the group (a child that outlived the leader).
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.proc.returncode


def files_under(folder: Path) -> list[Path]:
    """Regular files under ``folder`` (recursively); folders deleted meanwhile (the app's cache
    janitor works at the same time) are skipped."""
    return [Path(root, name) for root, _, names in os.walk(folder) for name in names
            if os.path.isfile(os.path.join(root, name))]


def empty_folders_under(folder: Path) -> int:
    """Folders under ``folder`` that hold nothing (skipping ones deleted meanwhile)."""
    return sum(1 for root, dirs, names in os.walk(folder)
               if Path(root) != folder and not dirs and not names)


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


# --------------------------------------------------------------------------------------------
# the users


class User(threading.Thread):
    """One simulated user: its own Client and folder; sends its requests one after another."""

    def __init__(self, number: int, url: str, folder: Path, specs: list[RequestSpec],
                 run: "_Run") -> None:
        super().__init__(name=f"user-{number}", daemon=True)
        self.number, self.url, self.folder, self.specs, self.run_ = number, url, folder, specs, run
        self.random = random.Random(f"{run.settings.seed}-{number}")
        self.outcomes: list[Outcome] = []
        self.client: Client | None = None
        self.http: httpx.Client | None = None

    def connect(self) -> None:
        """Create the Client (reads the app's config): done before the clock starts."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.client = Client(self.url, verbose=False, download_files=False,
                             analytics_enabled=False, httpx_kwargs={"timeout": 60})
        self.http = httpx.Client(timeout=60)

    def run(self) -> None:
        run = self.run_
        try:
            run.start.wait()
            for spec in self.specs:
                if run.stop.is_set():
                    break
                outcome = Outcome(spec)
                try:
                    self.one(spec, outcome)
                except Exception as exc:  # any error is this request's failure, reported
                    outcome.ok, outcome.error = False, f"{type(exc).__name__}: {exc}"[:300]
                self.outcomes.append(outcome)
        finally:
            if self.client is not None:
                self.client.close()
            if self.http is not None:
                self.http.close()

    def one(self, spec: RequestSpec, outcome: Outcome) -> None:
        """Send ``spec`` (retrying while busy), download and check its answer."""
        run = self.run_
        photo = self.folder / f"{run.tag}-r{spec.index:05d}.png"
        save_image(make_photo(spec), photo)
        before = read_pixels(photo)
        run.remember_input(spec, thumbnail(before))
        first = time.monotonic()
        deadline = min(first + run.settings.request_deadline, run.deadline)
        answer = None
        while answer is None:
            if run.stop.is_set():
                raise TimeoutError("the run was stopped (deadline passed or the app exited)")
            started = time.monotonic()
            job = self._submit(spec, photo)
            try:
                answer = job.result(timeout=max(0.1, deadline - time.monotonic()))
            except QueueError as exc:
                outcome.busy += 1
                run.count_busy(str(exc))
                pause = self.random.uniform(0.5, 2.0)
                if time.monotonic() + pause > deadline:
                    raise TimeoutError(f"still busy at the request's deadline after "
                                       f"{outcome.busy} tries") from None
                run.stop.wait(pause)
            except concurrent.futures.TimeoutError:
                job.cancel()
                raise TimeoutError("no answer before the deadline") from None
        done = time.monotonic()
        outcome.attempt_s, outcome.e2e_s = done - started, done - first
        self._check(spec, outcome, answer, before)
        if not run.settings.keep:
            photo.unlink(missing_ok=True)

    def _submit(self, spec: RequestSpec, photo: Path) -> Any:
        assert self.client is not None
        if spec.mode == "detect":
            return self.client.submit(handle_file(str(photo)), "detect.morph", 0.5,
                                      api_name="/detect")
        mode = "Auto" if spec.mode == "auto" else "Manual"
        return self.client.submit(handle_file(str(photo)), mode, MANUAL_KINDS.get(spec.mode, []),
                                  *RESTORE_OPTIONS, api_name="/restore")

    def _check(self, spec: RequestSpec, outcome: Outcome, answer: Any, before: np.ndarray) -> None:
        """Download every file of the answer (as the page would) and check it."""
        assert self.http is not None
        names = ("note", "labels", "slider", "overlay", "mask", "restored", "timings", "report",
                 "editor")
        if not isinstance(answer, (list, tuple)) or len(answer) != len(names):
            raise ValueError(f"unexpected answer shape: {type(answer).__name__}")
        values = dict(zip(names, answer))
        local: dict[str, Path] = {}
        for role, entry in file_entries({k: values[k] for k in
                                         ("slider", "overlay", "mask", "restored", "editor")}):
            outcome.server_paths[role] = entry["path"]
            url = entry.get("url") or f"{self.url}gradio_api/file={entry['path']}"
            if not url.startswith("http"):
                url = self.url.rstrip("/") + "/" + url.lstrip("/")
            target = (self.folder / f"{self.run_.tag}-r{spec.index:05d}-{role}"
                      f"{Path(entry['path']).suffix}")
            response = self.http.get(url)
            response.raise_for_status()
            target.write_bytes(response.content)
            local[role] = target
        if "restored" not in local or "mask" not in local:
            raise ValueError("the answer lacks the restored photo or the mask")
        restored = read_pixels(local["restored"])
        problems = check_result(spec.mode, before, restored, read_pixels(local["mask"], "L"),
                                values["report"] or {})
        outcome.result_thumb = thumbnail(restored) if restored.shape == before.shape else None
        if not self.run_.settings.keep:
            for path in local.values():
                path.unlink(missing_ok=True)
        if problems:
            raise WrongResult("; ".join(problems))
        outcome.ok = True


class _Run:
    """State shared by the users of one run."""

    def __init__(self, settings: LoadSettings) -> None:
        self.settings = settings
        self.tag = f"load-{secrets.token_hex(4)}"
        self.start, self.stop = threading.Event(), threading.Event()
        self.deadline = math.inf
        #: time.monotonic() when the users were let go.
        self.began: float | None = None
        self.lock = threading.Lock()
        self.busy: collections.Counter[str] = collections.Counter()
        self.inputs: dict[int, tuple[tuple[int, int], np.ndarray]] = {}

    def remember_input(self, spec: RequestSpec, thumb: np.ndarray) -> None:
        with self.lock:
            self.inputs[spec.index] = (spec.size, thumb)

    def count_busy(self, message: str) -> None:
        with self.lock:
            self.busy[message] += 1


def plan_requests(settings: LoadSettings) -> list[list[RequestSpec]]:
    """Each user's requests: round-robin over users, modes x sizes cycling."""
    per_user: list[list[RequestSpec]] = [[] for _ in range(settings.clients)]
    sizes = settings.sizes
    for index in range(settings.total_requests):
        mode = MODES[index % len(MODES)]
        size = sizes[(index // len(MODES) + index) % len(sizes)]
        client = index % settings.clients
        per_user[client].append(RequestSpec(index, client, mode, size, settings.seed))
    return per_user


def thumb_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Median over the 16x16 cells of the mean absolute difference: robust to the few cells
    that inpainting changes a lot."""
    return float(np.median(np.abs(a - b).mean(axis=2)))


@dataclass
class Crosstalk:
    """The thumbnail comparison of every result with every input of its size."""

    checked: int = 0
    wrong: int = 0
    #: Largest distance of a result to its own input; smallest to another input.
    own_max: float = 0.0
    other_min: float = math.inf
    #: Smallest ratio (nearest other input) / (own input) over the results.
    margin: float = math.inf
    samples: list[str] = field(default_factory=list)


def crosstalk(outcomes: list[Outcome], inputs: dict[int, tuple[tuple[int, int], np.ndarray]]
              ) -> Crosstalk:
    """Check that every result came from its own input.

    A result passes when its own input is the nearest of all inputs of its size (by
    :func:`thumb_distance`) and the next nearest is at least 2x as far plus 0.01.
    """
    found = Crosstalk()
    by_size: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = collections.defaultdict(list)
    for index, (size, thumb) in inputs.items():
        by_size[size].append((index, thumb))
    for outcome in outcomes:
        if outcome.result_thumb is None or outcome.spec.index not in inputs:
            continue
        found.checked += 1
        own = thumb_distance(outcome.result_thumb, inputs[outcome.spec.index][1])
        nearest = min((thumb_distance(outcome.result_thumb, thumb)
                       for index, thumb in by_size[outcome.spec.size]
                       if index != outcome.spec.index), default=math.inf)
        found.own_max = max(found.own_max, own)
        found.other_min = min(found.other_min, nearest)
        found.margin = min(found.margin, nearest / max(own, 1e-6))
        if not nearest >= 2 * own + 0.01:
            found.wrong += 1
            found.samples.append(f"request {outcome.spec.index}: {own:.4f} from its own input, "
                                 f"{nearest:.4f} from another")
    return found


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
    run = _Run(settings)
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


def _load(settings: LoadSettings, app: AppProcess, run: _Run, users: list[User],
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
        report.modes[mode] = ModeStats(len(done), _percentile(attempt, 50),
                                       _percentile(attempt, 95), max(attempt, default=math.nan),
                                       _percentile(e2e, 50), _percentile(e2e, 95))
    report.rss_peak_mb = max(rss, default=0) / 1024
    report.rss_samples = len(rss)
    report.probe_count = len(probes)
    report.probe_p95_s = _percentile(probes, 95)
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


def _watch_cache(settings: LoadSettings, app: AppProcess, run: _Run, report: LoadReport) -> None:
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


def _hygiene(settings: LoadSettings, app: AppProcess, run: _Run, report: LoadReport) -> None:
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


def _read_log(app: AppProcess, run: _Run, report: LoadReport) -> None:
    """After the app stopped (shutdown errors included): uploads named, tracebacks, errors."""
    text = app.log_path.read_text(errors="replace") if app.log_path.exists() else ""
    needles = (run.tag, str(app.cache_dir), str(app.root / "clients"))
    mentions = [line for line in text.splitlines() if any(n in line for n in needles)]
    report.log_upload_mentions = len(mentions)
    report.log_mention_samples = [line[:200] for line in mentions[:5]]
    report.log_tracebacks = len(re.findall(r"^Traceback", text, re.M))
    errors = re.findall(r"^(\w+(?:Error|Exception)\b.*)$", text, re.M)
    report.log_errors = list(dict.fromkeys(line[:200] for line in errors))[:10]


# --------------------------------------------------------------------------------------------
# command line


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
