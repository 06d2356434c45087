"""Colour is kept: ICC-tagged photos are converted to sRGB on load (the output is sRGB, as a
viewer assumes of an untagged file), and 16-bit PNG and TIFF scans come back 16-bit; 8-bit
stays 8-bit and grey stays grey."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from cli_support import photo_array, png_bytes
from icc_support import ADOBE_RGB, DISPLAY_P3, PROPHOTO, matrix_profile, to_srgb
from restorer.cli import main
from restorer.imaging import load_photo

SPACES = {"Adobe RGB (1998)": (ADOBE_RGB, 563 / 256), "Display P3 gamma": (DISPLAY_P3, 2.2),
          "ProPhoto RGB": (PROPHOTO, 1.8)}
SIZE = (64, 48)


def _mask_file(folder: Path) -> tuple[Path, np.ndarray]:
    mask = np.zeros(SIZE[::-1], bool)
    mask[20:24, 10:40] = True
    path = folder / "mask.png"
    path.write_bytes(png_bytes(mask.astype(np.uint8) * 255))
    return path, mask


def _restore(folder: Path, photo: Path, out_name: str, *extra: str) -> tuple[Path, dict]:
    mask, _ = _mask_file(folder)
    out, report = folder / out_name, folder / "r.json"
    assert main(["restore", str(photo), "-o", str(out), "--mode", "manual", "--stages",
                 "inpaint:ns", "--mask", str(mask), "--report", str(report), *extra]) == 0
    return out, json.loads(report.read_text())


@pytest.mark.parametrize("space", sorted(SPACES))
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF"])
def test_tagged_photo_is_converted_to_srgb(space, fmt, tmp_path):
    primaries, gamma = SPACES[space]
    pixels = photo_array(SIZE)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, quality=100,
                                 icc_profile=matrix_profile(space, primaries, gamma))
    source = tmp_path / f"in.{fmt.lower()}"
    source.write_bytes(buffer.getvalue())
    with Image.open(source) as stored:
        stored_pixels = np.asarray(stored.convert("RGB"))
    out, report = _restore(tmp_path, source, "out.png")
    expected = to_srgb(stored_pixels / 255.0, primaries, gamma) * 255.0
    _, mask = _mask_file(tmp_path)
    with Image.open(out) as result:
        assert "icc_profile" not in result.info  # untagged = sRGB for every viewer
        got = np.asarray(result).astype(np.float64)
    assert np.abs(got[~mask] - expected[~mask]).max() <= 2.0
    assert np.abs(stored_pixels[~mask] - expected[~mask]).max() > 8  # the profile mattered
    assert report["colour_profile_converted"] == space


def test_srgb_tagged_photo_is_left_as_it_is(tmp_path):
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    pixels = photo_array(SIZE)
    source = tmp_path / "in.png"
    source.write_bytes(png_bytes(pixels, icc_profile=srgb))
    photo = load_photo(source)
    assert photo.profile is None
    np.testing.assert_array_equal(np.round(photo.image * 255).astype(np.uint8), pixels)


def _sixteen_bit(channels: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    shape = SIZE[::-1] + ((channels,) if channels > 1 else ())
    return rng.integers(0, 65536, shape, dtype=np.uint16)


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("channels", [3, 1])
def test_sixteen_bit_scans_come_back_sixteen_bit(ext, channels, tmp_path):
    pixels = _sixteen_bit(channels)
    source = tmp_path / f"scan{ext}"
    cv2.imwrite(str(source), pixels[..., ::-1] if channels == 3 else pixels)
    out, report = _restore(tmp_path, source, f"out{ext}")
    _, mask = _mask_file(tmp_path)
    got = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert got.dtype == np.uint16 and got.ndim == (3 if channels == 3 else 2)
    got = got[..., ::-1] if channels == 3 else got
    np.testing.assert_array_equal(got[~mask], pixels[~mask])
    assert report["bits"] == 16


def test_sixteen_bits_become_eight_where_the_format_has_no_more(tmp_path):
    source = tmp_path / "scan.png"
    cv2.imwrite(str(source), _sixteen_bit(3))
    out, _ = _restore(tmp_path, source, "out.jpg")
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).dtype == np.uint8
    out, report = _restore(tmp_path, source, "eight.png", "--bits", "8")
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).dtype == np.uint8 and report["bits"] == 8


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_eight_bit_stays_eight_bit_and_grey_stays_grey(mode, tmp_path):
    source = tmp_path / "in.png"
    Image.fromarray(photo_array(SIZE)).convert(mode).save(source)
    out, report = _restore(tmp_path, source, "out.png")
    with Image.open(out) as result:
        assert result.mode == mode
    assert report["bits"] == 8


def test_cmyk_jpeg_is_read_as_rgb(tmp_path):
    source = tmp_path / "print.jpg"
    Image.fromarray(photo_array(SIZE)).convert("CMYK").save(source, quality=95)
    photo = load_photo(source)
    assert photo.image.shape == SIZE[::-1] + (3,) and not photo.grey
