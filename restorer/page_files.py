"""The page's files: where an upload is, uploads kept per browser session, and the sweeping of
gradio's cache folder (re-exported by :mod:`restorer.page`)."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Mapping

__all__ = ["CacheJanitor", "SessionUploads", "upload_path"]

log = logging.getLogger("restorer.app")


def upload_path(payload: str | Mapping[str, Any]) -> str:
    """The uploaded file's path. Events that take uploads skip the toolkit's preprocessing so
    that restorer's imaging boundary (not PIL inside gradio) judges every file."""
    return payload["path"] if isinstance(payload, Mapping) else payload


class SessionUploads:
    """Uploaded files per browser session, deleted as soon as no open tab uses them.

    While a tab is open its photo stays, so the user can re-run with other settings. gradio
    stores uploads by content, so two sessions may share a file: it goes with the last one.
    API clients have no tab; their uploads go with gradio's cache (``keep_minutes``), and
    sessions whose files are gone are dropped from the table.
    """

    def __init__(self) -> None:
        self._sessions: dict[str, set[Path]] = {}
        self._lock = threading.Lock()

    def add(self, session: str | None, path: str) -> None:
        """Remember ``path`` as used by ``session`` (None: not a browser session)."""
        if not session:
            return
        with self._lock:
            for known in list(self._sessions):
                alive = {p for p in self._sessions[known] if p.exists()}
                if alive:
                    self._sessions[known] = alive
                else:
                    del self._sessions[known]
            self._sessions.setdefault(session, set()).add(Path(path))

    def forget(self, session: str | None) -> list[Path]:
        """Delete the files only ``session`` used (and their emptied folders); returns them."""
        with self._lock:
            paths = self._sessions.pop(session, set()) if session else set()
            in_use = set().union(*self._sessions.values())
        deleted = sorted(paths - in_use)
        for path in deleted:
            path.unlink(missing_ok=True)
            try:
                path.parent.rmdir()  # gradio keeps each upload in a folder of its own
            except OSError:
                pass
        return deleted


class CacheJanitor:
    """Deletes uploads and results older than ``keep_seconds`` from gradio's cache folder.

    Replaces gradio's own schedule (``delete_cache``), which in gradio 6.31 iterates its live
    sets of cached files while requests add to them: under load it dies of "Set changed size
    during iteration" and the cache then grows for the rest of the server's life (found by
    bench/load.py: 4,601 files left after 1,000 requests). This one works on the folder: it
    also removes the per-file folders gradio leaves, and files a killed server left behind.
    The page's example photos (``keep_in_cache``) stay. ``demo``: the page (its ``blocks`` and
    ``temp_file_sets`` are read).
    """

    def __init__(self, demo: Any, folder: Path, keep_seconds: float) -> None:
        self.demo = demo
        self.folder = Path(folder)
        self.keep_seconds = keep_seconds
        self._stop = threading.Event()

    def sweep(self, now: float | None = None) -> int:
        """Delete what is older than the keep time; returns the number of files deleted."""
        now = time.time() if now is None else now
        keep = {str(Path(f)) for block in self.demo.blocks.values()
                for f in getattr(block, "keep_in_cache", ())}
        deleted = 0
        for root, folders, files in os.walk(self.folder, topdown=False):
            emptied = False
            for name in files:
                path = os.path.join(root, name)
                try:
                    if path not in keep and now - os.lstat(path).st_ctime > self.keep_seconds:
                        os.remove(path)
                        deleted += 1
                        emptied = True
                except FileNotFoundError:
                    continue
            if root != str(self.folder):
                try:  # emptied now, or old and empty: a new one may be about to get its upload
                    if emptied or now - os.lstat(root).st_mtime > self.keep_seconds:
                        os.rmdir(root)
                except OSError:
                    pass
        for files in self.demo.temp_file_sets:  # forget what is gone (list() copies atomically)
            for name in list(files):
                if not os.path.exists(name):
                    files.discard(name)
        return deleted

    def start(self) -> threading.Thread:
        """Sweep now and then every third of the keep time, in a daemon thread."""
        def loop() -> None:
            while True:
                try:
                    if deleted := self.sweep():
                        log.info("deleted %d cached upload/result files older than %.0f s",
                                 deleted, self.keep_seconds)
                except Exception:  # a sweep must never stop the next one
                    log.exception("cache sweep failed")
                if self._stop.wait(max(1.0, self.keep_seconds / 3)):
                    return

        thread = threading.Thread(target=loop, name="restorer-cache-janitor", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop the sweeping thread after its current sweep."""
        self._stop.set()
