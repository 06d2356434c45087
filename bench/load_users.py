"""The load harness's simulated users: one gradio_client each, sending its requests one after
another, backing off while the queue is full, checking every answer."""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import math
import random
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


import httpx
from gradio_client import Client, handle_file
from gradio_client.utils import QueueError

from bench.load_checks import (Outcome, RequestSpec, WrongResult, check_result,
                               file_entries, make_photo, read_pixels, thumbnail)
from bench.load_report import MANUAL_KINDS, RESTORE_OPTIONS, LoadSettings
from restorer.imaging import save_image

log = logging.getLogger("restorer.bench.load")


class User(threading.Thread):
    """One simulated user: its own Client and folder; sends its requests one after another."""

    def __init__(self, number: int, url: str, folder: Path, specs: list[RequestSpec],
                 run: "RunState") -> None:
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


class RunState:
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
