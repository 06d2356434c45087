"""The imaging boundary: every input kind round-trips; bad inputs raise ImageInputError."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from restorer.errors import ImageInputError, OutputPathError
from restorer.imaging import (ImageLimits, load_image, load_mask, save_image, save_mask,
                              to_uint8)


@pytest.fixture
def rgb8(photos) -> np.ndarray:
    return to_uint8(photos["coffee"][:64, :96])


def _png(array: np.ndarray, **kw) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, **kw).save(buffer, format="PNG")
    return buffer.getvalue()


def _check(image: np.ndarray, shape: tuple[int, int]) -> None:
    assert image.dtype == np.float32 and image.shape == shape + (3,)
    assert 0.0 <= image.min() and image.max() <= 1.0


def test_uint8_path_bytes_pil_numpy_agree(rgb8, tmp_path):
    path = tmp_path / "p.png"
    Image.fromarray(rgb8).save(path)
    from_path = load_image(path)
    _check(from_path, rgb8.shape[:2])
    for source in (str(path), path.read_bytes(), Image.fromarray(rgb8), rgb8):
        np.testing.assert_array_equal(load_image(source), from_path)
    np.testing.assert_array_equal(to_uint8(from_path), rgb8)


def test_grayscale_comes_back_gray(rgb8):
    gray = rgb8.mean(axis=2).astype(np.uint8)
    image = load_image(_png(gray))
    _check(image, gray.shape)
    assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2])


def test_sixteen_bit_keeps_precision():
    ramp = np.linspace(0, 65535, 64 * 64, dtype=np.uint16).reshape(64, 64)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, format="PNG")
    image = load_image(buffer.getvalue())
    _check(image, (64, 64))
    np.testing.assert_allclose(image[..., 0], ramp / 65535.0, atol=1e-6)


def test_rgba_composites_over_white(rgb8):
    rgba = np.dstack([rgb8, np.full(rgb8.shape[:2], 255, np.uint8)])
    rgba[:10, :10, 3] = 0
    image = load_image(_png(rgba))
    np.testing.assert_allclose(image[:10, :10], 1.0)
    np.testing.assert_allclose(image[20:, 20:], rgb8[20:, 20:] / 255.0, atol=1e-6)


def test_palette_with_transparency(rgb8):
    pil = Image.fromarray(rgb8).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pil.info["transparency"] = 0
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG", transparency=0)
    _check(load_image(buffer.getvalue()), rgb8.shape[:2])


def test_exif_orientation_applied(rgb8):
    pil = Image.fromarray(rgb8)
    exif = pil.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    buffer = io.BytesIO()
    pil.save(buffer, format="JPEG", exif=exif, quality=95)
    image = load_image(buffer.getvalue())
    assert image.shape[:2] == (rgb8.shape[1], rgb8.shape[0])


def test_float_array_out_of_range_is_refused():
    with pytest.raises(ImageInputError, match=r"\[0, 1\]"):
        load_image(np.full((32, 32, 3), 2.0, np.float32))


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"", "empty"),
        (b"<html><body>not an image</body></html>", "an HTML page, not a photo"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "an SVG drawing, not a raster photo"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "an SVG drawing"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "a PDF document, not a raster photo"),
        (b"GIF89a\x01", "not an image this app can read"),
    ],
)
def test_bad_bytes(payload, message):
    with pytest.raises(ImageInputError, match=message):
        load_image(payload)


def test_truncated_png_is_refused(rgb8):
    data = _png(rgb8)
    with pytest.raises(ImageInputError, match="damaged or truncated"):
        load_image(data[: len(data) // 2])


def test_missing_file(tmp_path):
    with pytest.raises(ImageInputError, match="does not exist"):
        load_image(tmp_path / "nope.png")


def test_pixel_limit_checked_before_decoding():
    big = Image.new("L", (3000, 3000))
    buffer = io.BytesIO()
    big.save(buffer, format="PNG")
    with pytest.raises(ImageInputError, match="megapixels"):
        load_image(buffer.getvalue(), limits=ImageLimits(max_pixels=1_000_000))


def test_file_size_limit(rgb8):
    with pytest.raises(ImageInputError, match="MB limit"):
        load_image(_png(rgb8), limits=ImageLimits(max_bytes=100))


def test_tiny_image_refused():
    with pytest.raises(ImageInputError, match="at least"):
        load_image(np.zeros((4, 4, 3), np.uint8))


def test_mask_round_trip_and_size_check(tmp_path):
    mask = np.zeros((40, 50), bool)
    mask[10:20, 5:45] = True
    path = save_mask(mask, tmp_path / "m.png")
    np.testing.assert_array_equal(load_mask(path, shape=(40, 50)), mask)
    with pytest.raises(ImageInputError, match="same size"):
        load_mask(path, shape=(50, 40))


def test_painted_rgba_mask_uses_alpha():
    layer = np.zeros((30, 30, 4), np.uint8)
    layer[5:10, 5:10] = (255, 0, 0, 255)
    mask = load_mask(layer, shape=(30, 30))
    assert mask.sum() == 25 and mask[5:10, 5:10].all()


def test_save_is_atomic_and_leaves_nothing_on_error(photos, tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    save_image(photos["coffee"], target)
    assert target.exists() and [p.name for p in tmp_path.iterdir()] == ["out.png"]
    with pytest.raises(OutputPathError, match="extension"):
        save_image(photos["coffee"], tmp_path / "out.xyz")

    def broken_save(self, *args, **kwargs):
        args[0].write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_image(photos["coffee"], tmp_path / "bad.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_outline_boxes_draws_only_the_outline_on_a_copy():
    from restorer.imaging import outline_boxes

    image = np.zeros((300, 400, 3), np.float32)
    out = outline_boxes(image, [[100, 50, 200, 150]], colour=(0.0, 1.0, 0.0))
    assert image.max() == 0.0  # the input is not drawn on
    assert out[50, 150, 1] == 1.0 and out[150, 150, 1] == 1.0 and out[100, 100, 1] == 1.0
    assert out[100, 150].max() == 0.0  # the inside stays as it was
