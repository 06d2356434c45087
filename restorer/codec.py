"""Decoding photo files into arrays and encoding arrays into photo files.

This is the file side of the image boundary (``restorer.imaging`` is the array side). Any
failure of a decoder, whatever it raises, becomes one ImageInputError naming the file; ICC
profiles are converted to sRGB; 16-bit PNG and TIFF scans are decoded at 16 bits and can be
written back at 16 bits.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from restorer.errors import ImageInputError
from restorer.settings import DEFAULT_MAX_PIXELS

__all__ = ["ImageLimits", "DEFAULT_LIMITS", "Decoded", "decode", "encode", "WRITABLE",
           "HIGH_DEPTH"]

FileSource = Union[str, os.PathLike, bytes]

#: Formats Pillow may decode for us. Anything else is refused up front.
_ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "MPO", "TIFF", "BMP", "WEBP", "GIF", "PPM", "TGA",
                              "AVIF"})
#: ISO-BMFF brands of HEIC/HEIF files (as phones save them), which Pillow cannot decode.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs",
                          b"mif1", b"msf1", b"heif"})
_SUPPORTED = "PNG, JPEG, TIFF, WebP, AVIF, BMP, GIF"

#: Output extensions and the format each is written in.
WRITABLE = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
            ".webp": "WEBP", ".bmp": "BMP"}
#: Output extensions that keep 16 bits per channel.
HIGH_DEPTH = frozenset({".png", ".tif", ".tiff"})


@dataclass(frozen=True)
class ImageLimits:
    """Upper bounds on what is accepted, checked before any pixel is decoded.

    ``max_pixels`` counts width x height; ``max_bytes`` is the encoded file size;
    ``min_side`` refuses images too small to restore.
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = 100 * 1024 * 1024
    min_side: int = 16
    max_aspect: float = 50.0


DEFAULT_LIMITS = ImageLimits()


@dataclass(frozen=True)
class Decoded:
    """A decoded file: ``pixels`` uint8 or uint16 (H, W[, C]) as stored, after EXIF orientation
    and conversion to sRGB; ``bits`` 8 or 16; ``grey`` when the file had one colour channel;
    ``profile`` the description of the ICC profile converted from (None when untagged)."""

    pixels: np.ndarray
    bits: int
    grey: bool
    profile: str | None


def decode(source: FileSource, limits: ImageLimits = DEFAULT_LIMITS) -> Decoded:
    """Decode a file path or encoded bytes. Raises ImageInputError naming the file."""
    name = "the uploaded data" if isinstance(source, (bytes, bytearray)) else \
        f"'{Path(source).name}'"
    data = _read(source, name, limits)
    try:
        pil = _open(data, name, limits)
        try:
            return _decode(pil, data, name)
        finally:
            pil.close()
    except ImageInputError:
        raise
    except MemoryError:
        raise ImageInputError(f"{name} needs more memory to decode than is free: "
                              "downscale it first") from None
    except Exception as exc:  # a decoder can raise nearly anything on hostile data
        raise ImageInputError(f"{name} is damaged or truncated, or not an image this app can read "
                              f"({_describe(exc)})") from None


def _describe(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


def _read(source: FileSource, name: str, limits: ImageLimits) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageInputError(f"{name} does not exist or is not a file")
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise ImageInputError(f"{name} is {size / 2**20:.1f} MB, over the "
                                  f"{limits.max_bytes / 2**20:.0f} MB limit")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageInputError(f"cannot read {name}: {exc.strerror or exc}") from None
    if not data:
        raise ImageInputError(f"{name} is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ImageInputError(f"{name} is {len(data) / 2**20:.1f} MB, over the "
                              f"{limits.max_bytes / 2**20:.0f} MB limit")
    return data


def _open(data: bytes, name: str, limits: ImageLimits) -> Image.Image:
    """Open (not decode) ``data``, checking its format and dimensions."""
    try:
        with warnings.catch_warnings():  # the size check below says it in our words
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            pil = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageInputError(f"{name} is {_what_it_is(data)}") from None
    except Image.DecompressionBombError:
        raise ImageInputError(
            f"{name} declares far more than the {limits.max_pixels / 1e6:.0f} megapixels "
            "this app accepts (a decompression bomb or a huge scan); it was refused before "
            "decoding: downscale it first") from None
    if pil.format not in _ALLOWED_FORMATS:
        pil.close()
        raise ImageInputError(f"{name} is in {pil.format} format, which this app does not "
                              f"accept (supported: {_SUPPORTED})")
    try:
        check_dimensions(pil.size, limits, name)
    except ImageInputError:
        pil.close()
        raise
    return pil


def _what_it_is(data: bytes) -> str:
    """A phrase naming what a file that is no raster image is."""
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"%pdf"):
        return "a PDF document, not a raster photo: export the page as PNG or JPEG first"
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "an SVG drawing, not a raster photo: export it as PNG first"
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head[:256]:
        return "an HTML page, not a photo: save the photo itself (right-click, save image)"
    if head[4:8] == b"ftyp":
        brands = {data[i:i + 4] for i in range(8, min(len(data), 32) - 3, 4)}
        if brands & _HEIF_BRANDS and b"avif" not in brands:
            return ("a HEIC/HEIF photo, which this app cannot read: export or convert it to "
                    "JPEG or PNG first")
    return f"not an image this app can read (supported: {_SUPPORTED})"


def check_dimensions(size: tuple[int, int], limits: ImageLimits, name: str = "the image") -> None:
    """Raise ImageInputError when ``size`` (width, height) is outside ``limits``."""
    width, height = size
    if width * height > limits.max_pixels:
        raise ImageInputError(
            f"{name} is {width}x{height} = {width * height / 1e6:.1f} megapixels, over the "
            f"{limits.max_pixels / 1e6:.0f} MP limit: downscale it first")
    if min(width, height) < limits.min_side:
        raise ImageInputError(f"{name} is {width}x{height} pixels; at least "
                              f"{limits.min_side} pixels per side are needed")
    if max(width, height) / min(width, height) > limits.max_aspect:
        raise ImageInputError(f"{name} is {width}x{height} pixels, an aspect ratio over "
                              f"{limits.max_aspect:.0f}:1")


def _decode(pil: Image.Image, data: bytes, name: str) -> Decoded:
    """Pixels of the first frame; colour data tagged with a non-sRGB profile is converted.

    Grey data keeps its values (a grey profile only names its tone curve). 16-bit colour
    data tagged with a non-sRGB profile is converted at 8 bits (Pillow's colour engine works
    at 8 bits), so it comes back 8-bit; the report says which profile was converted.
    """
    if getattr(pil, "n_frames", 1) > 1:
        pil.seek(0)
    grey = pil.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F") or (
        pil.mode == "P" and _palette_is_grey(pil))
    profile_bytes = None if grey else pil.info.get("icc_profile")
    profile = _profile(profile_bytes, name) if profile_bytes else None
    description = _description(profile) if profile is not None else None
    convert = description is not None and not _is_srgb(description)
    if _is_16_bit(pil) and not convert:
        pixels = _decode_16_bit(data, name)
        pixels = _orient(pixels, pil.getexif().get(0x0112, 1))
        return Decoded(pixels, 16, pixels.ndim == 2, None)
    try:
        pil.load()
    except Image.DecompressionBombError as exc:
        raise ImageInputError(f"{name} was refused as a decompression bomb ({exc})") from None
    if convert:
        pil = _to_srgb(pil, profile, name)
    pil = ImageOps.exif_transpose(pil)
    array = np.asarray(_mode_for_array(pil))
    bits = 16 if array.dtype.itemsize > 1 else 8
    return Decoded(array, bits, grey, description if convert else None)


def _profile(data: bytes, name: str) -> ImageCms.ImageCmsProfile:
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(data))
    except Exception as exc:  # a broken profile is as bad as broken pixels
        raise ImageInputError(f"{name} carries a damaged ICC colour profile ({_describe(exc)}): "
                              "re-save it without the profile or with a valid one") from None


def _description(profile: ImageCms.ImageCmsProfile) -> str:
    try:
        return ImageCms.getProfileDescription(profile).strip() or "unnamed profile"
    except Exception:  # a profile without a description tag
        return "unnamed profile"


def _is_srgb(description: str | None) -> bool:
    return description is not None and "srgb" in description.lower().replace(" ", "")


def _to_srgb(pil: Image.Image, profile: ImageCms.ImageCmsProfile, name: str) -> Image.Image:
    """Colour ``pil`` (RGB, RGBA, P or CMYK) converted from ``profile`` to sRGB RGB(A)
    (perceptual intent; alpha kept)."""
    alpha = pil.getchannel("A") if pil.mode == "RGBA" else None
    if pil.mode not in ("RGB", "CMYK"):
        pil = pil.convert("RGB")
    try:
        converted = ImageCms.profileToProfile(pil, profile, ImageCms.createProfile("sRGB"),
                                              outputMode="RGB",
                                              renderingIntent=ImageCms.Intent.PERCEPTUAL)
    except Exception as exc:  # a profile that does not fit the pixels (e.g. RGB for CMYK)
        raise ImageInputError(f"{name}: its ICC colour profile does not fit its pixels "
                              f"({_describe(exc)})") from None
    if alpha is not None:
        converted.putalpha(alpha)
    return converted


def _palette_is_grey(pil: Image.Image) -> bool:
    rgb = np.asarray(pil.convert("RGB"))
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def _is_16_bit(pil: Image.Image) -> bool:
    """True for PNG and TIFF files with 16 bits per channel (Pillow reads RGB ones at 8)."""
    if pil.format not in ("PNG", "TIFF") or not pil.tile:
        return False
    rawmode = pil.tile[0][3]
    rawmode = rawmode[0] if isinstance(rawmode, tuple) else rawmode
    return isinstance(rawmode, str) and ";16" in rawmode


def _decode_16_bit(data: bytes, name: str) -> np.ndarray:
    """uint16 (H, W) or (H, W, 3|4) RGB(A) pixels of a 16-bit PNG or TIFF."""
    import cv2

    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.dtype != np.uint16:
        raise ImageInputError(f"{name} is a 16-bit file that cannot be decoded")
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        pixels = pixels[..., ::-1]
    elif pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[..., [2, 1, 0, 3]]
    return np.ascontiguousarray(pixels)


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1 to 8) to (H, W[, C]) pixels."""
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
           7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1], 8: lambda a: np.swapaxes(a, 0, 1)[::-1]}
    op = ops.get(int(orientation) if isinstance(orientation, int) else 1)
    return pixels if op is None else np.ascontiguousarray(op(pixels))


def _mode_for_array(pil: Image.Image) -> Image.Image:
    if pil.mode == "P":
        return pil.convert("RGBA" if "transparency" in pil.info else "RGB")
    if pil.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        return pil.convert("L" if pil.mode == "1" else "RGB")
    return pil


def encode(pixels: np.ndarray, ext: str) -> bytes:
    """uint8 or uint16 (H, W) or (H, W, 3) RGB pixels as a file of type ``ext`` (".png"...).

    uint16 is kept only for PNG and TIFF (callers convert otherwise).
    """
    fmt = WRITABLE[ext]
    if pixels.dtype == np.uint16:
        import cv2

        bgr = pixels[..., ::-1] if pixels.ndim == 3 else pixels
        ok, buffer = cv2.imencode(ext, np.ascontiguousarray(bgr))
        if not ok:
            raise ImageInputError(f"could not encode a 16-bit {fmt} file")
        return buffer.tobytes()
    stream = io.BytesIO()
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    Image.fromarray(pixels).save(stream, format=fmt, **options)
    return stream.getvalue()
