"""The run ledger: one JSON line per finished photo, appended and fsynced as results land.

The file survives SIGKILL of the process at any moment: a row is written in one ``write`` of
one line and flushed to disk before the next photo is counted done, and the reader ignores a
torn last line (a killed write). The latest row of an input wins, so a retried photo simply
gets a newer row.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

__all__ = ["LEDGER_NAME", "Ledger", "file_sha256", "settings_hash"]

LEDGER_NAME = "restorer-ledger.jsonl"
"""The ledger's file name in DEST."""

DONE, FAILED = "done", "failed"


def file_sha256(path: Path) -> str:
    """The hex sha256 of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def settings_hash(settings: Mapping[str, Any]) -> str:
    """A short stable hash of JSON-ready ``settings`` (everything that changes the output)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class Ledger:
    """The append-only ledger at ``path`` (created on the first row)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every complete row, oldest first; a torn or unreadable line is skipped."""
        try:
            text = self.path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return
        for line in text.splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "input" in row:
                yield row

    def latest(self) -> dict[str, dict[str, Any]]:
        """The latest row of each input path."""
        return {row["input"]: row for row in self.rows()}

    def append(self, row: Mapping[str, Any]) -> None:
        """Append ``row`` as one line and flush it to disk before returning."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if os.lseek(self._fd, 0, os.SEEK_END) > 0:
                os.write(self._fd, b"\n")  # end a torn last line, if any; blank lines are skipped
        data = (json.dumps(dict(row), sort_keys=True) + "\n").encode("utf-8")
        os.write(self._fd, data)
        os.fsync(self._fd)

    def close(self) -> None:
        """Close the file (rows already written are on disk)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
