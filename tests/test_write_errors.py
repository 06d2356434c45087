"""OS errors while writing (disk full, file too large, permission denied, read-only folder)
are one line naming the path, exit 3 (2 when refused before any work), nothing left behind."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from cli_support import assert_one_line_error, files_under, photo_array, png_bytes, run_cli
from restorer import files
from restorer.cli import main
from restorer.errors import ExitCode, OutputError

FAST = ["--mode", "manual", "--stages", "deblur:rl"]


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    path.write_bytes(png_bytes(photo_array((96, 96))))
    return path


@pytest.mark.parametrize("error, words", [
    (OSError(errno.ENOSPC, "No space left on device"), "no space left on device"),
    (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
    (OSError(errno.EROFS, "Read-only file system"), "read-only file system"),
])
def test_write_error_is_one_line_naming_the_path(error, words, photo, tmp_path, capsys,
                                                 monkeypatch):
    def failing_write(fd, data):
        raise error

    monkeypatch.setattr(files.os, "write", failing_write)
    out = tmp_path / "out" / "restored.png"
    assert main(["restore", str(photo), "-o", str(out), *FAST]) == ExitCode.FAILED
    assert_one_line_error(capsys.readouterr().err, str(out), words)
    assert files_under(tmp_path) == ["photo.png"]


@pytest.mark.slow
def test_the_kernel_refusing_a_large_file(photo, tmp_path):
    # A real OS error, no mock: the file-size limit makes the kernel refuse the write (EFBIG),
    # as a full disk refuses it with ENOSPC.
    prelude = ("import resource, signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
               "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))")
    out = tmp_path / "restored.png"
    result = run_cli(["restore", photo, "-o", out, "--report", tmp_path / "r.json", *FAST],
                     prelude=prelude)
    assert result.returncode == ExitCode.FAILED, result.stderr
    assert_one_line_error(result.stderr, str(out), "file too large")
    assert files_under(tmp_path) == ["photo.png"]


def test_write_all_names_the_file_and_removes_its_temporaries(tmp_path, monkeypatch):
    real = files.os.fsync
    calls = []

    def fsync_fails_second(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    monkeypatch.setattr(files.os, "fsync", fsync_fails_second)
    with pytest.raises(OutputError, match="b.bin.*Input/output error"):
        files.write_all([(tmp_path / "a.bin", b"a"), (tmp_path / "b.bin", b"b")])
    assert files_under(tmp_path) == []
