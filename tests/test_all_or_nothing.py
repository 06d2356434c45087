"""A photo, its mask and its report are written together or not at all: a failure at any
point, Ctrl-C or SIGTERM leaves no temporary file and no partial output, and one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import assert_one_line_error, files_under, photo_array, png_bytes, run_cli
from restorer import files
from restorer.cli import main
from restorer.errors import ExitCode

FAST = ["--mode", "manual", "--stages", "deblur:rl"]


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    path.write_bytes(png_bytes(photo_array()))
    return path


def _outputs(tmp_path: Path) -> list[str]:
    out = tmp_path / "out"
    return ["-o", str(out / "o.png"), "--mask-out", str(out / "m.png"), "--report",
            str(out / "r.json")]


@pytest.mark.slow
def test_failing_report_write_leaves_no_photo(photo, tmp_path, capsys, monkeypatch):
    real = files._write_temporary

    def fail_on_report(path, data, created):
        if path.suffix == ".json":
            raise files.OutputError(f"cannot write '{path}': No space left on device")
        return real(path, data, created)

    monkeypatch.setattr(files, "_write_temporary", fail_on_report)
    assert main(["restore", str(photo), *_outputs(tmp_path), *FAST]) == ExitCode.FAILED
    assert_one_line_error(capsys.readouterr().err, "r.json", "no space left")
    assert files_under(tmp_path) == ["photo.png"]


def test_failing_last_rename_removes_what_was_renamed(photo, tmp_path, capsys, monkeypatch):
    import os

    real = os.replace

    def fail_on_report(src, dst):
        if str(dst).endswith(".json"):
            raise PermissionError(13, "Permission denied")
        return real(src, dst)

    monkeypatch.setattr(files.os, "replace", fail_on_report)
    assert main(["restore", str(photo), *_outputs(tmp_path), *FAST]) == ExitCode.FAILED
    assert_one_line_error(capsys.readouterr().err, "r.json", "permission denied")
    assert files_under(tmp_path) == ["photo.png"]


def test_a_failing_stage_writes_nothing(photo, tmp_path, capsys, monkeypatch):
    from restorer.stages import deblur

    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(deblur.RichardsonLucyDeblur, "run", broken)
    assert main(["restore", str(photo), *_outputs(tmp_path), *FAST]) == ExitCode.FAILED
    assert_one_line_error(capsys.readouterr().err, "deblur.rl", "simulated bug")
    assert files_under(tmp_path) == ["photo.png"]


_SIGNAL_DURING_SAVE = """
import os, signal
_real = os.fsync
def _fsync_then_signal(fd):  # the signal lands while the report's bytes are being saved
    _real(fd)
    os.kill(os.getpid(), signal.{name})
os.fsync = _fsync_then_signal
"""


@pytest.mark.parametrize("name, code, word", [("SIGTERM", ExitCode.TERMINATED, "terminated"),
                                              ("SIGINT", ExitCode.INTERRUPTED, "interrupted")])
@pytest.mark.slow
def test_signal_during_save_leaves_nothing(name, code, word, photo, tmp_path):
    before = photo.read_bytes()
    result = run_cli(["restore", photo, *_outputs(tmp_path), *FAST],
                     prelude=_SIGNAL_DURING_SAVE.format(name=name))
    assert result.returncode == code, result.stderr
    assert_one_line_error(result.stderr, word)
    assert files_under(tmp_path) == ["photo.png"]
    assert photo.read_bytes() == before
