"""Helpers of the batch tests: a generated archive with bad photos, a worker that dies."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from restorer.archive.ledger import LEDGER_NAME
from restorer.archive.sources import Job
from restorer.archive.worker import Worker
from restorer.errors import WeightsMissingError
from tests.cli_support import photo_array, png_bytes

BAD = {"truncated.png": "truncated", "notes.jpg": "text", "empty.png": "zero bytes"}
"""The bad photos of :func:`make_archive` and what is wrong with each."""


def make_archive(folder: Path, count: int, *, bad: bool = True, prefix: str = "p") -> list[Path]:
    """``count`` small seeded photos (64 to 128 px a side) in ``folder``, plus the
    :data:`BAD` files when ``bad``; returns the good photos' paths."""
    folder.mkdir(parents=True, exist_ok=True)
    good = []
    for i in range(count):
        size = (64 + (i * 23) % 65, 64 + (i * 37) % 65)
        path = folder / f"{prefix}{i:02d}.png"
        path.write_bytes(png_bytes(photo_array(size, seed=i)))
        good.append(path)
    if bad:
        whole = png_bytes(photo_array((96, 80), seed=99))
        (folder / "truncated.png").write_bytes(whole[: len(whole) // 2])
        (folder / "notes.jpg").write_text("not a photo, just a note\n")
        (folder / "empty.png").write_bytes(b"")
    return good


def ledger_rows(dest: Path) -> list[dict[str, Any]]:
    """Every row of DEST's ledger, oldest first."""
    path = dest / LEDGER_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def pixels(path: Path) -> np.ndarray:
    """The decoded pixels of an image file, int16 (to subtract)."""
    with Image.open(path) as image:
        return np.asarray(image).astype(np.int16)


class DyingWorker(Worker):
    """A worker that exits at once (as the OOM killer would end it) on photos named
    ``die*``, after noting the attempt in ``NAME.attempts`` beside the photo."""

    def restore(self, job: Job) -> dict[str, Any]:
        if job.source.name.startswith("die"):
            with open(job.source.with_suffix(".attempts"), "a") as handle:
                handle.write(f"{os.getpid()}\n")
            os._exit(1)
        return super().restore(job)


class BrokenWorker(Worker):
    """A worker that cannot start (as on a node without the weight files)."""

    def __init__(self, config: Any, settings: Any) -> None:
        raise WeightsMissingError("weight file 'triage_net' is missing on this node")
