"""The load harness's app process and its watchers: start, stop (the whole process group), memory
sampling and the folders it leaves."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterator



import httpx
from gradio_client import Client, handle_file

from bench.load_report import REPO, LoadSettings

log = logging.getLogger("restorer.bench.load")


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
