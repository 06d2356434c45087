"""A corpus of bad and odd uploads through the CLI: each is refused with a message that names
the problem (exit 2, nothing written) or, where it is a valid photo, restored.

The files are generated here; nothing comes from outside the test.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restorer.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _photo(mode: str = "RGB", size: tuple[int, int] = (64, 48)) -> Image.Image:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(array).convert(mode)


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` (the data is a stub)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data  # noqa: E731
                                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _animated(fmt: str) -> bytes:
    frames = [_photo(), _photo().rotate(90, expand=False)]
    return _save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


REFUSED = {
    # name: (file name, bytes, words the message must contain)
    "empty": ("empty.jpg", b"", "empty"),
    "text renamed jpg": ("notes.jpg", b"hello, this is text\n" * 20, "not an image"),
    "html renamed jpg": ("page.jpg", b"<!doctype html><html><body>hi</body></html>", "an html page"),
    "svg": ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>',
            "an svg drawing"),
    "pdf": ("scan.pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "a pdf document"),
    "truncated png": ("cut.png", _save(_photo(), "PNG")[:200], "damaged or truncated"),
    "truncated jpeg": ("cut.jpg", _save(_photo(size=(256, 256)), "JPEG")[:600],
                       "damaged or truncated"),
    "1x1": ("dot.png", _save(_photo(size=(1, 1)), "PNG"), "at least"),
    "1x20000": ("line.png", _save(Image.new("RGB", (20000, 1)), "PNG"), "at least"),
    "30000x30000 declared": ("bomb.png", _png_declaring(30000, 30000), "megapixels"),
    "decompression bomb": ("bomb2.png", _save(Image.new("L", (12000, 12000)), "PNG",
                                              optimize=True), "megapixels"),
    "zip renamed png": ("archive.png", b"PK\x03\x04" + b"\x00" * 100, "not an image"),
    "extreme aspect": ("strip.png", _save(Image.new("RGB", (4000, 20)), "PNG"), "aspect"),
    "heic": ("IMG_0001.HEIC", struct.pack(">I", 24) + b"ftypheic" + struct.pack(">I", 0)
             + b"mif1heic" + b"\x00" * 200, "heic"),
    "psd renamed jpg": ("layers.jpg", b"8BPS\x00\x01" + b"\x00" * 200, "not an image"),
}

ACCEPTED = {
    # name: (file name, bytes, expected (width, height) of the result)
    "grayscale png": ("grey.png", _save(_photo("L"), "PNG"), (64, 48)),
    "16-bit png": ("deep.png", _save(_photo("L").convert("I;16"), "PNG"), (64, 48)),
    "16-bit tiff": ("deep.tif", _save(_photo("L").convert("I;16"), "TIFF"), (64, 48)),
    "cmyk jpeg": ("print.jpg", _save(_photo("CMYK"), "JPEG"), (64, 48)),
    "palette png with transparency": ("pal.png", _save(_photo("P"), "PNG", transparency=0),
                                      (64, 48)),
    "LA png": ("la.png", _save(_photo("LA"), "PNG"), (64, 48)),
    "rgba with transparent holes": ("holes.png", _save(_photo("RGBA"), "PNG"), (64, 48)),
    "animated gif (first frame)": ("anim.gif", _animated("GIF"), (64, 48)),
    "animated webp (first frame)": ("anim.webp", _animated("WEBP"), (64, 48)),
    "bmp": ("old.bmp", _save(_photo(), "BMP"), (64, 48)),
    "avif": ("photo.avif", _save(_photo(), "AVIF"), (64, 48)),
    "webp": ("photo.webp", _save(_photo(), "WEBP", lossless=True), (64, 48)),
    "jpeg with upper-case extension": ("PHOTO.JPG", _save(_photo(), "JPEG"), (64, 48)),
    "no extension": ("photo", _save(_photo(), "PNG"), (64, 48)),
}


def _run(tmp_path: Path, name: str, data: bytes, capsys) -> tuple[int, str, Path]:
    source = tmp_path / name
    source.write_bytes(data)
    out = tmp_path / "out" / "restored.png"
    out.parent.mkdir()
    code = main(["restore", str(source), "-o", str(out), "--mode", "manual", "--stages",
                 "detect:morph,inpaint:telea"])
    captured = capsys.readouterr()
    return code, captured.err + captured.out, out


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_bad_upload_is_refused_with_a_message(kind, tmp_path, capsys):
    name, data, words = REFUSED[kind]
    code, message, out = _run(tmp_path, name, data, capsys)
    assert code == 2, message
    assert words in message.lower(), message
    assert "Traceback" not in message
    assert list(out.parent.iterdir()) == []  # nothing written, not even a partial file


@pytest.mark.parametrize("kind", sorted(ACCEPTED))
def test_odd_but_valid_upload_is_restored(kind, tmp_path, capsys):
    name, data, size = ACCEPTED[kind]
    code, message, out = _run(tmp_path, name, data, capsys)
    assert code == 0, message
    with Image.open(out) as result:
        assert result.size == size


def test_exif_rotated_photo_comes_back_upright(tmp_path, capsys):
    photo = _photo(size=(80, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    code, message, out = _run(tmp_path, "rotated.jpg", _save(photo, "JPEG", exif=exif), capsys)
    assert code == 0, message
    with Image.open(out) as result:
        assert result.size == (40, 80)


@pytest.mark.parametrize("mask_kind, words", [
    ("wrong size", "size"),
    ("not an image", "not an image"),
])
def test_bad_mask_is_refused(mask_kind, words, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    photo.write_bytes(_save(_photo(), "PNG"))
    mask = tmp_path / "mask.png"
    mask.write_bytes(_save(Image.new("L", (10, 10), 255), "PNG") if mask_kind == "wrong size"
                     else b"garbage")
    out = tmp_path / "out" / "o.png"
    out.parent.mkdir()
    code = main(["restore", str(photo), "-o", str(out), "--mode", "manual", "--stages",
                 "inpaint:telea", "--mask", str(mask)])
    message = capsys.readouterr().err
    assert code == 2 and words in message.lower(), message
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("fill, words", [(0, "marks no defect"), (255, "marks 100% of the photo")])
def test_empty_and_full_masks_are_refused_with_what_is_wrong(fill, words, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    photo.write_bytes(_save(_photo(), "PNG"))
    mask = tmp_path / "mask.png"
    mask.write_bytes(_save(Image.new("L", (64, 48), fill), "PNG"))
    out = tmp_path / "out" / "o.png"
    out.parent.mkdir()
    code = main(["restore", str(photo), "-o", str(out), "--mode", "manual", "--stages",
                 "inpaint:telea", "--mask", str(mask)])
    message = capsys.readouterr().err
    assert code == 2 and words in message, message
    assert list(out.parent.iterdir()) == []


def test_mask_marking_most_of_the_photo_is_refused_but_a_large_hole_is_not(tmp_path, capsys):
    photo = tmp_path / "photo.png"
    photo.write_bytes(_save(_photo(), "PNG"))
    out = tmp_path / "out" / "o.png"
    out.parent.mkdir()
    codes = {}
    for share in (0.5, 0.95):
        mask = np.zeros((48, 64), np.uint8)
        mask[: round(48 * share)] = 255
        path = tmp_path / f"mask{share}.png"
        Image.fromarray(mask).save(path)
        codes[share] = main(["restore", str(photo), "-o", str(out), "--mode", "manual",
                             "--stages", "inpaint:telea", "--mask", str(path)])
        codes[share, "err"] = capsys.readouterr().err
    assert codes[0.5] == 0 and out.is_file(), codes[0.5, "err"]
    assert codes[0.95] == 2 and "at most 90%" in codes[0.95, "err"], codes[0.95, "err"]
