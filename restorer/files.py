"""Writing files so that each appears complete or not at all.

Every file restorer writes goes through here: the bytes are written to a hidden temporary
file in the target's folder, flushed, and renamed over the target. A group of files (a photo,
its mask and its report) is written all or nothing: every temporary file first, then every
rename; if any step fails (an OS error, Ctrl-C, SIGTERM turned into an exception at the edge)
the temporary files and any target already renamed in this call are removed.
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from restorer.errors import OutputError, OutputPathError

__all__ = ["write_bytes", "write_text", "write_all", "write_with", "same_file",
           "check_writable_folder"]

#: Mode of written files (mkstemp makes 0600; a saved photo or report is an ordinary file).
_FILE_MODE = 0o644


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    write_all([(Path(path), data)])
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; returns the path."""
    return write_bytes(path, text.encode("utf-8"))


def write_with(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Have ``write`` make the file at a hidden temporary path beside ``path`` (with the same
    suffix, for writers that choose the format by it, as Keras does), then rename it over
    ``path``; returns the path. On any failure the temporary file is removed and ``path`` is
    untouched; an OS error is raised as OutputError naming ``path``."""
    path = Path(path)
    created: list[Path] = []
    _write_temporary(path, b"", created, suffix=path.suffix or ".tmp")
    try:
        write(created[0])
        os.chmod(created[0], _FILE_MODE)
        os.replace(created[0], path)
    except OSError as exc:
        created[0].unlink(missing_ok=True)
        raise OutputError(f"cannot write '{path}': {_reason(exc)}") from None
    except BaseException:
        created[0].unlink(missing_ok=True)
        raise
    return path


def write_all(files: Sequence[tuple[Path, bytes]]) -> None:
    """Write every ``(path, data)`` pair, all or nothing.

    Raises OutputError naming the path on an OS error (permission denied, read-only folder,
    disk full); nothing of this call is left behind then, and no target that existed before
    is touched unless every file was written.
    """
    temporaries: list[Path] = []
    renamed: list[Path] = []
    try:
        for path, data in files:
            _write_temporary(path, data, temporaries)
        for tmp, (path, _) in zip(temporaries, files):
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise OutputError(f"cannot write '{path}': {_reason(exc)}") from None
            renamed.append(path)
    except BaseException:
        for tmp in temporaries:
            tmp.unlink(missing_ok=True)
        for path in renamed:
            path.unlink(missing_ok=True)
        raise


def _write_temporary(path: Path, data: bytes, created: list[Path], *,
                     suffix: str = ".tmp") -> None:
    """``data`` in a hidden temporary file beside ``path`` (name ending in ``suffix``), flushed
    to disk; its name is appended to ``created`` as soon as it exists (signals are held until
    then), so the caller can always remove it."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        created.append(Path(name))
    except OSError as exc:
        raise OutputError(f"cannot write '{path}': {_reason(exc)}") from None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, _FILE_MODE)
        os.fsync(fd)
    except OSError as exc:
        raise OutputError(f"cannot write '{path}': {_reason(exc)}") from None
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    """An OS error as a short phrase ("No space left on device")."""
    return exc.strerror or type(exc).__name__


def same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name the same file (through symlinks and hard links too)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_writable_folder(folder: Path, *, create: bool) -> None:
    """Make sure ``folder`` exists (creating it when ``create``) and files can be created in it.

    Raises OutputError naming the folder. The check creates and removes a temporary file,
    which is the only reliable test (permissions, read-only mounts, root's privileges).
    """
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(f"'{folder}' is a file, not a folder: choose another output folder")
    if not folder.exists():
        if not create:
            raise OutputPathError(f"folder '{folder}' does not exist: create it first")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputPathError(f"cannot create folder '{folder}': {_reason(exc)}") from None
    try:
        fd, name = tempfile.mkstemp(prefix=".restorer-check.", dir=folder)
    except OSError as exc:
        raise OutputPathError(f"cannot write into folder '{folder}': {_reason(exc)}") from None
    os.close(fd)
    os.unlink(name)
