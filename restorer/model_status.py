"""Which model files are here, and pulling the missing default ones in the background.

:class:`ModelStatus` answers, at any moment and without waiting, the state of each manifest
entry: ``present`` (verified), ``downloading`` (with the percent received), ``queued``,
``missing``, ``unavailable`` or ``failed`` (each with the reason and the ``weights pull``
command). The app polls :meth:`ModelStatus.rows` for its Models panel; :meth:`ModelStatus.
start_pull` fetches the missing default files one after the other in a daemon thread,
through the weight store (sha256 checked, offline-aware), logging a progress line per file.
Nothing here blocks a request: a stage whose file is still missing is unavailable, and Auto
uses its fallback until the file is verified.

The percent comes from the size of the Hub client's partial file (``<cache>/models--ORG--NAME/
blobs/<sha256>[.<id>].incomplete``) against the manifest's size, so any downloader that fills the
Hugging Face cache is measured the same way.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from restorer.errors import RestorerError
from restorer.stage_ids import DEBLUR_NAFNET, DETECT_SCRATCH, FACE_GFPGAN, INPAINT_LAMA

if TYPE_CHECKING:
    from restorer.weights import WeightEntry, WeightStore

__all__ = ["DEFAULT_STAGES", "ModelState", "ModelRow", "ModelStatus", "default_ids"]

log = logging.getLogger(__name__)

DEFAULT_STAGES = (INPAINT_LAMA, DEBLUR_NAFNET, DETECT_SCRATCH, FACE_GFPGAN)
"""Stages whose files the app pulls at start when they are missing (the published models)."""

_PULL = "python -m restorer weights pull"


class ModelState(enum.StrEnum):
    """What the Models panel says of one file."""

    PRESENT = "present"
    DOWNLOADING = "downloading"
    QUEUED = "queued"
    MISSING = "missing"
    UNAVAILABLE = "unavailable"
    FAILED = "failed"


@dataclass(frozen=True)
class ModelRow:
    """One manifest entry as the panel shows it. ``percent`` is set while downloading;
    ``reason`` says why a file is not present and how to get it."""

    id: str
    stage: str
    state: ModelState
    licence: str
    size_mb: float | None
    percent: float | None = None
    reason: str = ""

    @property
    def status(self) -> str:
        """The state in words, e.g. "downloading 42 %" or "unavailable: ...". """
        if self.state == ModelState.DOWNLOADING and self.percent is not None:
            return f"downloading {self.percent:.0f} %"
        return f"{self.state.value}: {self.reason}" if self.reason else self.state.value


def default_ids(stage_weights: Iterable[tuple[str, Sequence[str]]], known: Iterable[str]) -> list[str]:
    """The manifest ids of ``stage_weights`` ((stage id, its weight ids)) for the stages of
    DEFAULT_STAGES, in that order (LaMa first), each once, limited to ``known`` ids."""
    known, by_stage = set(known), dict(stage_weights)
    ids = [w for stage in DEFAULT_STAGES for w in by_stage.get(stage, ())]
    return [w for w in dict.fromkeys(ids) if w in known]


class ModelStatus:
    """States of the files of ``store``'s manifest; pulls ``pull_ids`` that are missing.

    ``on_ready(weight_id)`` is called in the pull thread after each file is verified (the app
    loads the stages it completes). Thread-safe: :meth:`rows` may be called from any request
    while the pull thread runs.
    """

    def __init__(self, store: WeightStore, pull_ids: Sequence[str] = (), *,
                 log_every_s: float = 10.0,
                 on_ready: Callable[[str], object] | None = None) -> None:
        self.store = store
        self.pull_ids = tuple(pull_ids)
        self.log_every_s = log_every_s
        self.on_ready = on_ready
        self._lock = threading.Lock()
        self._pulling: str | None = None
        self._queued: set[str] = set()
        self._failed: dict[str, str] = {}
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------ queries
    def rows(self) -> list[ModelRow]:
        """Every manifest entry's row, in manifest order (never hashes, never downloads)."""
        return [self.row(entry.id) for entry in self.store.manifest]

    def row(self, weight_id: str) -> ModelRow:
        """The row of one manifest id."""
        from restorer.weights import WeightStatus

        entry = self.store.manifest.get(weight_id)
        size = None if entry.size is None else round(entry.size / 1e6, 1)

        def made(state: ModelState, reason: str = "", percent: float | None = None) -> ModelRow:
            return ModelRow(entry.id, entry.stage, state, entry.licence, size, percent, reason)

        with self._lock:
            pulling, queued, failed = self._pulling, set(self._queued), dict(self._failed)
        status = self.store.status(weight_id)
        if status == WeightStatus.UNHASHED:
            return made(ModelState.UNAVAILABLE, "its sha256 is not recorded yet, so it is never "
                        "used: run `python -m restorer weights lock` on a host with network, "
                        f"check the hash in a second source, then `{_PULL} {weight_id}`")
        if status in (WeightStatus.VERIFIED, WeightStatus.PRESENT) and pulling != weight_id:
            return made(ModelState.PRESENT, "" if status == WeightStatus.VERIFIED
                        else "on disk, checked against its sha256 on first use")
        if pulling == weight_id:
            return made(ModelState.DOWNLOADING, percent=self._percent(entry))
        if weight_id in queued:
            return made(ModelState.QUEUED, "waiting for the download before it")
        if weight_id in failed:
            return made(ModelState.FAILED, failed[weight_id])
        if self.store.offline:
            return made(ModelState.UNAVAILABLE, "offline mode is on; on a host with network "
                        f"run `{_PULL} {weight_id}`")
        return made(ModelState.MISSING, f"not downloaded: `{_PULL} {weight_id}`")

    def _percent(self, entry: WeightEntry) -> float:
        """Percent of ``entry`` received so far (0 before the first byte arrives)."""
        partial = self._partial(entry)
        if partial is None or not entry.size:
            return 0.0
        return min(100.0, 100.0 * _size(partial) / entry.size)

    def _partial(self, entry: WeightEntry) -> Path | None:
        """The Hub client's partial file of ``entry`` in the cache (None: none yet)."""
        if entry.sha256 is None:
            return None
        folder = self.store.cache_dir / f"models--{entry.repo_id.replace('/', '--')}" / "blobs"
        # huggingface_hub writes <sha256>.incomplete, or <sha256>.<8 hex>.incomplete (2.x).
        found = sorted(folder.glob(f"{entry.sha256}*.incomplete"), key=_size, reverse=True)
        return found[0] if found else None

    # ------------------------------------------------------------------------------ pulling
    def missing(self) -> list[str]:
        """The ids of ``pull_ids`` whose files are not on disk (hashed entries only)."""
        from restorer.weights import WeightStatus

        return [w for w in self.pull_ids if self.store.status(w) == WeightStatus.MISSING]

    def start_pull(self) -> threading.Thread | None:
        """Pull the missing ``pull_ids`` one by one in a daemon thread (None: nothing to pull,
        or offline: each such file is then shown as unavailable, and logged once)."""
        todo = self.missing()
        if not todo:
            return None
        if self.store.offline:
            log.info("offline: not pulling %s (run `%s %s` on a host with network)",
                     ", ".join(todo), _PULL, " ".join(todo))
            return None
        with self._lock:
            self._queued = set(todo)
        self._thread = threading.Thread(target=self._pull_all, args=(todo,),
                                        name="restorer-model-pull", daemon=True)
        self._thread.start()
        return self._thread

    def join(self, timeout: float | None = None) -> None:
        """Wait for the pull thread (tests, and a clean shutdown)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _pull_all(self, ids: Sequence[str]) -> None:
        for weight_id in ids:
            with self._lock:
                self._queued.discard(weight_id)
                self._pulling = weight_id
            try:
                self._pull_one(weight_id)
                if self.on_ready is not None:
                    self.on_ready(weight_id)
            except Exception as error:  # a pull never stops the app or the next pull
                first = (str(error).strip().splitlines() or [type(error).__name__])[0]
                with self._lock:
                    self._failed[weight_id] = first if isinstance(error, RestorerError) else \
                        f"{type(error).__name__}: {first}; retry with `{_PULL} {weight_id}`"
                log.warning("model %s not pulled: %s", weight_id, self._failed[weight_id])
            finally:
                with self._lock:
                    self._pulling = None

    def _pull_one(self, weight_id: str) -> None:
        entry = self.store.manifest.get(weight_id)
        size = "?" if entry.size is None else f"{entry.size / 1e6:.1f} MB"
        log.info("model %s: pulling %s (%s, %s)", weight_id, entry.filename, size, entry.licence)
        began = time.monotonic()
        done = threading.Event()

        def report() -> None:
            while not done.wait(self.log_every_s):
                log.info("model %s: %.0f %% of %s", weight_id, self._percent(entry), size)

        watcher = threading.Thread(target=report, name="restorer-model-pull-log", daemon=True)
        watcher.start()
        try:
            self.store.resolve(weight_id)  # downloads, then checks size and sha256
        finally:
            done.set()
        log.info("model %s: verified, ready (%.0f s)", weight_id, time.monotonic() - began)


def _size(path: Path) -> int:
    """Bytes in ``path`` (0 when it has just been moved or deleted)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0
