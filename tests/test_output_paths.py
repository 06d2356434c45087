"""Output paths are checked before any work: refused ones end in one line and exit 2 with
nothing written, and an original is never overwritten (through symlinks and hard links too).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cli_support import assert_one_line_error, files_under, photo_array, png_bytes
from restorer.cli import main

FAST = ["--mode", "manual", "--stages", "deblur:rl"]


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    path.write_bytes(png_bytes(photo_array()))
    return path


def _refused(capsys, args, *words) -> None:
    assert main(["restore", *map(str, args), *FAST]) == 2
    captured = capsys.readouterr()
    assert_one_line_error(captured.err, *words)


def test_output_equal_to_the_input_is_refused(photo, tmp_path, capsys):
    before = photo.read_bytes()
    _refused(capsys, [photo, "-o", photo], "is the input", "never overwritten")
    assert photo.read_bytes() == before and files_under(tmp_path) == ["photo.png"]


def test_output_through_a_symlink_or_hard_link_is_refused(photo, tmp_path, capsys):
    before = photo.read_bytes()
    (tmp_path / "link.png").symlink_to(photo)
    os.link(photo, tmp_path / "hard.png")
    _refused(capsys, [photo, "-o", tmp_path / "link.png"], "is the input")
    _refused(capsys, [photo, "-o", tmp_path / "hard.png"], "is the input")
    _refused(capsys, [tmp_path / "link.png", "-o", photo], "is the input")
    _refused(capsys, [photo, "-o", tmp_path / "sub" / ".." / "photo.png"], "is the input")
    assert photo.read_bytes() == before
    assert files_under(tmp_path) == ["hard.png", "link.png", "photo.png"]


def test_mask_and_report_must_not_be_an_input_or_each_other(photo, tmp_path, capsys):
    mask = tmp_path / "mask.png"
    mask.write_bytes(png_bytes(photo_array()))
    out = tmp_path / "out.png"
    _refused(capsys, [photo, "-o", out, "--report", photo], "--report", "is the input")
    _refused(capsys, [photo, "-o", out, "--mask-out", out], "same file")
    _refused(capsys, [photo, "-o", out, "--report", out], "same file")
    _refused(capsys, [photo, "-o", out, "--mask", mask, "--mask-out", mask], "is the input")
    assert files_under(tmp_path) == ["mask.png", "photo.png"]


def test_folders_and_extensions_are_checked_before_any_work(photo, tmp_path, capsys):
    (tmp_path / "adir").mkdir()
    _refused(capsys, [photo, "-o", tmp_path / "out.xyz"], "unknown extension", ".png")
    _refused(capsys, [photo, "-o", tmp_path / "out"], "unknown extension")
    _refused(capsys, [photo, "-o", tmp_path / "adir"], "is a folder")
    _refused(capsys, [photo, "-o", tmp_path / "o.png", "--report", tmp_path / "adir"],
             "--report", "is a folder")
    _refused(capsys, [photo, "-o", tmp_path / "o.png", "--mask-out", tmp_path / "adir"],
             "--mask-out", "is a folder")
    _refused(capsys, [photo, "-o", tmp_path / "o.png", "--mask-out", tmp_path / "m.txt"],
             "unknown extension")
    _refused(capsys, [photo, "-o", tmp_path / "photo.png" / "o.png"], "is a file, not a folder")
    assert files_under(tmp_path) == ["photo.png"]


def test_an_unwritable_folder_is_refused_up_front(photo, tmp_path, capsys):
    # Tests may run as root, which ignores permission bits: /proc and /sys refuse even root.
    _refused(capsys, [photo, "-o", "/proc/restorer-out.png"], "/proc")
    _refused(capsys, [photo, "-o", tmp_path / "o.png", "--report", "/sys/restorer.json"], "/sys")
    assert files_under(tmp_path) == ["photo.png"]


def test_missing_output_folders_are_created(photo, tmp_path, capsys):
    out = tmp_path / "new" / "deep" / "o.png"
    report = tmp_path / "reports" / "r.json"
    mask = tmp_path / "masks" / "m.png"
    assert main(["restore", str(photo), "-o", str(out), "--report", str(report), "--mask-out",
                 str(mask), *FAST]) == 0
    assert files_under(tmp_path) == ["masks/m.png", "new/deep/o.png", "photo.png",
                                     "reports/r.json"]


def test_folder_run_never_overwrites_an_input_in_the_same_folder(tmp_path, capsys):
    (tmp_path / "a.png").write_bytes(png_bytes(photo_array(seed=1)))
    (tmp_path / "a.jpg").write_bytes(png_bytes(photo_array(seed=2)))  # a PNG named .jpg
    (tmp_path / "b.tif").write_bytes(png_bytes(photo_array(seed=3)))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert main(["restore", str(tmp_path), "-o", str(tmp_path), *FAST]) == 0
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert {k: after[k] for k in before} == before
    assert sorted(set(after) - set(before)) == ["a.jpg.png", "a.png.png", "b.png"]
