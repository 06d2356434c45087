"""Decoder bombs and decoder failures of any kind: one line naming the file, exit 2, nothing
written; in a folder run the bad photo is recorded and the rest are restored (exit 1).

Every file is built here in code: PNGs whose zTXt, iTXt or iCCP chunk inflates past Pillow's
limits, truncated and garbage data, and decoders made to raise each exception type a decoder
may raise.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cli_support import (assert_one_line_error, files_under, photo_array, png_bytes, png_chunk,
                         run_cli, with_chunk)
from restorer.errors import ImageInputError
from restorer.imaging import load_image

#: Inflates to 64 MB, far past Pillow's 1 MB text and profile limits; 64 kB compressed.
_BOMB = zlib.compress(b"A" * (64 << 20), 9)


def _ztxt_bomb() -> bytes:
    return with_chunk(png_bytes(photo_array()), png_chunk(b"zTXt", b"Comment\x00\x00" + _BOMB))


def _itxt_bomb() -> bytes:
    return with_chunk(png_bytes(photo_array()),
                      png_chunk(b"iTXt", b"Comment\x00\x01\x00en\x00Comment\x00" + _BOMB))


def _iccp_bomb() -> bytes:
    return with_chunk(png_bytes(photo_array()), png_chunk(b"iCCP", b"profile\x00\x00" + _BOMB))


def _broken_iccp() -> bytes:
    garbage = zlib.compress(b"this is no colour profile" * 10)
    return with_chunk(png_bytes(photo_array()), png_chunk(b"iCCP", b"profile\x00\x00" + garbage))


BAD = {
    "ztxt bomb": _ztxt_bomb,
    "itxt bomb": _itxt_bomb,
    "iccp bomb": _iccp_bomb,
    "broken icc profile": _broken_iccp,
    "truncated idat": lambda: png_bytes(photo_array((200, 200)))[:300],
    "garbage after png signature": lambda: b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
    "bad ihdr crc": lambda: png_bytes(photo_array())[:29] + b"\x00\x00\x00\x00"
                            + png_bytes(photo_array())[33:],
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_file_is_one_input_error_naming_it(kind, tmp_path):
    path = tmp_path / f"{kind.replace(' ', '-')}.png"
    path.write_bytes(BAD[kind]())
    with pytest.raises(ImageInputError) as caught:
        load_image(path)
    assert path.name in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("error", [ValueError("bad"), OSError("broken data stream"),
                                   SyntaxError("not a TIFF"), struct.error("unpack requires"),
                                   zlib.error("invalid distance"), EOFError(),
                                   IndexError("tuple index out of range"), TypeError("bad"),
                                   KeyError("tag"), Image.DecompressionBombError("huge"),
                                   RuntimeError("decoder"), MemoryError()])
def test_any_decoder_exception_becomes_an_input_error(error, tmp_path, monkeypatch):
    path = tmp_path / "photo.png"
    path.write_bytes(png_bytes(photo_array()))

    def failing_load(self):
        raise error

    monkeypatch.setattr(Image.Image, "load", failing_load)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", failing_load)
    with pytest.raises(ImageInputError, match="photo.png"):
        load_image(path)


@pytest.mark.slow
def test_single_bomb_through_the_cli(tmp_path):
    source = tmp_path / "bomb.png"
    source.write_bytes(_ztxt_bomb())
    before = source.read_bytes()
    result = run_cli(["restore", source, "-o", tmp_path / "out.png", "--report",
                      tmp_path / "r.json"])
    assert result.returncode == 2, result.stderr
    assert_one_line_error(result.stderr, "bomb.png")
    assert files_under(tmp_path) == ["bomb.png"]
    assert source.read_bytes() == before


@pytest.mark.slow
def test_a_folder_with_bombs_restores_the_rest(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name, make in [("a-ztxt.png", _ztxt_bomb), ("b-itxt.png", _itxt_bomb),
                       ("c-iccp.png", _iccp_bomb)]:
        (src / name).write_bytes(make())
    for index in range(2):
        (src / f"good-{index}.png").write_bytes(png_bytes(photo_array(seed=index)))
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    result = run_cli(["restore", src, "-o", out, "--mode", "manual", "--stages", "deblur:rl"])
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()
             and not line.startswith("restoring") and "photo/s" not in line and "|" not in line]
    assert len(lines) == 3 and "Traceback" not in result.stderr, result.stderr
    for name in ("a-ztxt.png", "b-itxt.png", "c-iccp.png"):
        assert any(line.startswith(f"{name}:") for line in lines), result.stderr
    assert files_under(out) == ["good-0.png", "good-1.png"]
    assert "2 of 5 photos restored" in result.stdout
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
    with Image.open(out / "good-0.png") as restored:
        assert restored.size == (64, 48)
    assert np.asarray(Image.open(out / "good-1.png")).shape == (48, 64, 3)
