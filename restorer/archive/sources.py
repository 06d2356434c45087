"""Which photos a batch restores and where each one's outputs go.

SRC is a folder tree (walked recursively; the output tree mirrors it) or a text file listing
one photo path a line (relative paths are relative to the list's folder; ``#`` starts a
comment). Outputs are PNG files named after the input's stem, ``a.jpg`` and ``a.png`` in one
folder giving ``a.jpg.png`` and ``a.png.png``; reports are ``.json`` files in a mirrored
report tree.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from restorer.errors import RestorerError
from restorer.jobs import Outputs

__all__ = ["IMAGE_SUFFIXES", "Job", "clean_temporaries", "list_jobs"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".avif", ".bmp"})

_TEMPORARY = re.compile(r"^\..+\.(png|json)\.[A-Za-z0-9_]{8}\.tmp$")
"""restorer.files' temporaries of our outputs: ``.NAME.png.XXXXXXXX.tmp`` (tempfile.mkstemp)."""


@dataclass(frozen=True)
class Job:
    """One photo: its ``source`` path and its ``outputs``; ``key`` names it in the ledger."""

    source: Path
    outputs: Outputs

    @property
    def key(self) -> str:
        return str(self.source)


def _walk(root: Path) -> list[Path]:
    photos = []
    for folder, subfolders, names in os.walk(root, onerror=_raise):
        subfolders.sort()
        photos.extend(Path(folder) / n for n in sorted(names)
                      if Path(n).suffix.lower() in IMAGE_SUFFIXES and not n.startswith("."))
    return photos


def _raise(exc: OSError) -> None:
    raise RestorerError(f"cannot list folder '{exc.filename}': {exc.strerror}")


def _read_list(listing: Path) -> list[Path]:
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RestorerError(f"cannot read the list of photos '{listing}': {exc}") from None
    paths = []
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if text:
            path = Path(text).expanduser()
            paths.append(path if path.is_absolute() else listing.parent / path)
    return paths


def list_jobs(src: Path, dest: Path, report_dir: Path | None) -> list[Job]:
    """The photos of ``src`` (folder tree or list file) with their outputs under ``dest``
    (and ``report_dir``), in a stable order. Raises RestorerError when there are none."""
    if src.is_dir():
        root, photos = src, _walk(src)
    elif src.is_file():
        photos = _read_list(src)
        root = Path(os.path.commonpath([p.absolute().parent for p in photos])) if photos else src
    else:
        raise RestorerError(f"SRC '{src}' is neither a folder nor a list of photos")
    if not photos:
        raise RestorerError(f"no photos ({', '.join(sorted(IMAGE_SUFFIXES))}) in '{src}'")
    stems: dict[tuple[Path, str], int] = {}
    relative = [p.absolute().relative_to(root.absolute()) for p in photos]
    for rel in relative:
        stems[(rel.parent, rel.stem)] = stems.get((rel.parent, rel.stem), 0) + 1
    jobs = []
    for photo, rel in zip(photos, relative):
        stem = rel.name if stems[(rel.parent, rel.stem)] > 1 else rel.stem
        jobs.append(Job(photo, Outputs(dest / rel.parent / f"{stem}.png", None,
                                       report_dir / rel.parent / f"{stem}.json"
                                       if report_dir else None)))
    return jobs


def clean_temporaries(folders: list[Path]) -> int:
    """Remove our own temporaries (a killed worker's) under ``folders``; returns how many."""
    removed = 0
    for top in folders:
        for folder, _, names in os.walk(top):
            for name in names:
                if _TEMPORARY.match(name):
                    (Path(folder) / name).unlink(missing_ok=True)
                    removed += 1
    return removed
