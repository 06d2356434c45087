"""The one boundary between files/arrays from outside and restorer's image convention.

Inside restorer an image is ``float32 (H, W, 3)`` RGB in [0, 1] and a mask is ``bool (H, W)``
with True = defect. Everything that arrives from a file, bytes, PIL or numpy is converted here,
once; everything that leaves as a file is written here, atomically.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence, Union

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from restorer.errors import ImageInputError

__all__ = [
    "ImageLimits",
    "ImageSource",
    "load_image",
    "load_mask",
    "to_uint8",
    "save_image",
    "save_mask",
    "mask_to_image",
    "overlay_mask",
    "outline_boxes",
    "validate_image",
    "validate_mask",
    "check_defect_mask",
]

ImageSource = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]

#: Formats Pillow may decode for us. Anything else (SVG, HTML, PDF...) is refused up front.
_ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "MPO", "TIFF", "BMP", "WEBP", "GIF", "PPM", "TGA",
                              "AVIF"})
#: ISO-BMFF brands of HEIC/HEIF files (as phones save them), which Pillow cannot decode.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs",
                          b"mif1", b"msf1", b"heif"})
_SUPPORTED = "PNG, JPEG, TIFF, WebP, AVIF, BMP, GIF"


@dataclass(frozen=True)
class ImageLimits:
    """Upper bounds on what is accepted, checked before any pixel is decoded.

    ``max_pixels`` counts width x height; ``max_bytes`` is the encoded file size;
    ``min_side`` refuses images too small to restore.
    """

    max_pixels: int = 64_000_000
    max_bytes: int = 100 * 1024 * 1024
    min_side: int = 16
    max_aspect: float = 50.0


DEFAULT_LIMITS = ImageLimits()


def load_image(source: ImageSource, *, limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Load ``source`` into the internal convention.

    Parameters
    ----------
    source : path, bytes, PIL image or ndarray
        A file path or encoded bytes (EXIF orientation is applied), a PIL image, or an array
        (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) of uint8, uint16 or float in [0, 1].
    limits : ImageLimits
        Size limits checked before decoding.

    Returns
    -------
    ndarray, float32 (H, W, 3), RGB in [0, 1]
        Transparent areas are composited over white (photo paper).
    """
    if isinstance(source, np.ndarray):
        image = _array_to_rgb(source)
    elif isinstance(source, Image.Image):
        _check_dimensions(source.size, limits)
        image = _pil_to_rgb(source)
    else:
        pil = _open(source, limits)
        try:
            image = _pil_to_rgb(_decode(pil))
        finally:
            pil.close()
    _check_dimensions((image.shape[1], image.shape[0]), limits)
    return image


def load_mask(
    source: ImageSource, *, shape: tuple[int, int], limits: ImageLimits = DEFAULT_LIMITS
) -> np.ndarray:
    """Load a defect mask (white/opaque = defect) and check it matches ``shape`` (H, W).

    Returns a bool (H, W) array. A mask with an alpha channel uses alpha > 0 where the colour
    channels are uniform (a painted layer); otherwise luminance > 0.5.
    """
    if isinstance(source, np.ndarray) and source.dtype == bool:
        mask = source
        if mask.ndim == 3:
            mask = mask.any(axis=2)
    else:
        # Any size may be read: the comparison with ``shape`` below says what is wrong.
        raw = _raw_array(source, replace(limits, min_side=1, max_aspect=float("inf")))
        if raw.ndim == 3 and raw.shape[2] in (2, 4):
            alpha = raw[..., -1]
            colour = raw[..., :-1]
            if float(alpha.min()) < float(alpha.max()):
                mask = alpha > 0
            else:
                mask = _luminance_of(colour) > 0.5
        else:
            mask = _luminance_of(raw) > 0.5
    if mask.shape != tuple(shape):
        raise ImageInputError(
            f"the mask is {mask.shape[1]}x{mask.shape[0]} pixels but the photo is "
            f"{shape[1]}x{shape[0]}: upload a mask of the same size as the photo"
        )
    mask = np.ascontiguousarray(mask, dtype=bool)
    check_defect_mask(mask)
    return mask


MAX_MASK_FRACTION = 0.9
"""A user's mask may mark at most this share of the photo: inpainting fills from the rest."""


def check_defect_mask(mask: np.ndarray) -> None:
    """Raise ImageInputError if a user's bool (H, W) mask marks nothing or nearly everything."""
    fraction = float(mask.mean()) if mask.size else 0.0
    if fraction == 0.0:
        raise ImageInputError(
            "the mask marks no defect (it is all black or transparent): paint the defects in "
            "white, or leave the mask out and let detection find them"
        )
    if fraction > MAX_MASK_FRACTION:
        raise ImageInputError(
            f"the mask marks {fraction:.0%} of the photo as defect; inpainting fills defects "
            f"from the undamaged rest, so at most {MAX_MASK_FRACTION:.0%} may be marked: "
            "mark only the defects, in white on black"
        )


def validate_image(image: np.ndarray) -> None:
    """Raise ImageInputError unless ``image`` follows the internal convention."""
    if not isinstance(image, np.ndarray) or image.dtype != np.float32:
        raise ImageInputError("internal images must be float32 numpy arrays")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageInputError(f"internal images must be H x W x 3, got shape {image.shape}")
    if not np.isfinite(image).all() or image.min() < 0.0 or image.max() > 1.0:
        raise ImageInputError("internal images must hold finite values in [0, 1]")


def validate_mask(mask: np.ndarray, shape: tuple[int, int]) -> None:
    """Raise ImageInputError unless ``mask`` is bool (H, W) matching ``shape``."""
    if not isinstance(mask, np.ndarray) or mask.dtype != bool or mask.shape != tuple(shape):
        got = getattr(mask, "shape", None)
        raise ImageInputError(f"a mask must be a bool array of shape {tuple(shape)}, got {got}")


#: Values per band in conversions done band by band (4 MB of float32).
_BAND_VALUES = 1 << 20


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float [0, 1] (H, W[, 3]) -> uint8, rounding to nearest.

    Converted in bands of rows, so a 24 MP photo needs no full-size float temporaries.
    """
    out = np.empty(image.shape, np.uint8)
    rows = max(1, _BAND_VALUES // max(1, image[0].size))
    for top in range(0, image.shape[0], rows):
        band = np.clip(image[top:top + rows], 0.0, 1.0)
        band *= 255.0
        band += 0.5
        out[top:top + rows] = band  # truncates, as astype does
    return out


def mask_to_image(mask: np.ndarray) -> np.ndarray:
    """bool (H, W) -> uint8 (H, W), 255 = defect."""
    return mask.astype(np.uint8) * 255


def overlay_mask(
    image: np.ndarray, mask: np.ndarray, *, colour: tuple[float, float, float] = (1.0, 0.1, 0.1)
) -> np.ndarray:
    """Tint defect pixels of ``image`` (float (H, W, 3)) for display; returns float (H, W, 3)."""
    out = image.copy()
    out[mask] = 0.35 * out[mask] + 0.65 * np.asarray(colour, dtype=np.float32)
    return out


def outline_boxes(
    image: np.ndarray,
    boxes: Sequence[Sequence[float]],
    *,
    colour: tuple[float, float, float] = (0.1, 0.9, 0.2),
) -> np.ndarray:
    """Draw ``boxes`` ([x0, y0, x1, y1] in pixels of ``image``) on a copy of float (H, W, 3).

    The line width follows the image size (about 1/300 of the long side, at least 2 px).
    """
    out = np.ascontiguousarray(image, dtype=np.float32).copy()
    thickness = max(2, round(max(out.shape[:2]) / 300))
    for x0, y0, x1, y1 in boxes:
        cv2.rectangle(out, (round(x0), round(y0)), (round(x1), round(y1)), colour, thickness)
    return out


def save_image(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a float (H, W, 3) image as an 8-bit file, atomically (PNG, JPEG, TIFF, WebP).

    The file appears complete or not at all: it is written to a temporary file beside the
    target and renamed.
    """
    return _save_array(to_uint8(image), path)


def save_mask(mask: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a bool (H, W) mask as an 8-bit grayscale file (white = defect), atomically."""
    return _save_array(mask_to_image(mask), path)


# --------------------------------------------------------------------------------------------
# internals


def _save_array(array: np.ndarray, path: str | os.PathLike) -> Path:
    target = Path(path)
    ext = target.suffix.lower()
    formats = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
               ".webp": "WEBP", ".bmp": "BMP"}
    if ext not in formats:
        raise ImageInputError(
            f"cannot write '{target.name}': unknown extension '{ext}', use one of "
            + ", ".join(sorted(formats))
        )
    if not target.parent.is_dir():
        raise ImageInputError(f"cannot write '{target}': folder '{target.parent}' does not exist")
    options = {"quality": 95} if formats[ext] in ("JPEG", "WEBP") else {}
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=ext, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            Image.fromarray(array).save(handle, format=formats[ext], **options)
        os.chmod(tmp_name, 0o644)  # mkstemp makes 0600; a saved photo is an ordinary file
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def _open(source: str | os.PathLike | bytes, limits: ImageLimits) -> Image.Image:
    """Open (not decode) an encoded image, checking file size, format and dimensions."""
    if isinstance(source, (bytes, bytearray)):
        size = len(source)
        name = "the uploaded data"
        stream: io.BytesIO | str = io.BytesIO(bytes(source))
    else:
        path = Path(source)
        name = f"'{path.name}'"
        if not path.is_file():
            raise ImageInputError(f"{name} does not exist or is not a file")
        size = path.stat().st_size
        stream = str(path)
    if size == 0:
        raise ImageInputError(f"{name} is empty (0 bytes)")
    if size > limits.max_bytes:
        raise ImageInputError(
            f"{name} is {size / 2**20:.1f} MB, over the {limits.max_bytes / 2**20:.0f} MB limit"
        )
    try:
        pil = Image.open(stream)
    except UnidentifiedImageError:
        if _is_heif(source):
            raise ImageInputError(f"{name} is a HEIC/HEIF photo, which this app cannot read: "
                                  f"export or convert it to JPEG or PNG first") from None
        raise ImageInputError(
            f"{name} is not an image this app can read (supported: {_SUPPORTED})"
        ) from None
    except Image.DecompressionBombError:
        raise ImageInputError(
            f"{name} declares far more than the {limits.max_pixels / 1e6:.0f} megapixels "
            "this app accepts (a decompression bomb or a huge scan); it was refused before "
            "decoding: downscale it first") from None
    except OSError as exc:
        raise ImageInputError(f"{name} is damaged or truncated, or not an image this app can "
                              f"read ({exc})") from None
    if pil.format not in _ALLOWED_FORMATS:
        pil.close()
        raise ImageInputError(f"{name} is in {pil.format} format, which this app does not "
                              f"accept (supported: {_SUPPORTED})")
    try:
        _check_dimensions(pil.size, limits)
    except ImageInputError:
        pil.close()
        raise
    return pil


def _is_heif(source: str | os.PathLike | bytes) -> bool:
    """True when ``source`` starts like an ISO-BMFF file of a HEIC/HEIF brand."""
    if isinstance(source, (bytes, bytearray)):
        head = bytes(source[:32])
    else:
        with open(source, "rb") as handle:
            head = handle.read(32)
    if head[4:8] != b"ftyp":
        return False
    brands = {head[i:i + 4] for i in range(8, len(head) - 3, 4)}
    return bool(brands & _HEIF_BRANDS) and b"avif" not in brands


def _decode(pil: Image.Image) -> Image.Image:
    """Decode pixels (first frame of animations) and apply EXIF orientation."""
    try:
        if getattr(pil, "n_frames", 1) > 1:
            pil.seek(0)
        pil.load()
        return ImageOps.exif_transpose(pil)
    except Image.DecompressionBombError as exc:
        raise ImageInputError(f"image refused as a decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageInputError(f"the image file is damaged or truncated ({exc})") from None


def _check_dimensions(size: tuple[int, int], limits: ImageLimits) -> None:
    width, height = size
    if width * height > limits.max_pixels:
        raise ImageInputError(
            f"the image is {width}x{height} = {width * height / 1e6:.1f} megapixels, over the "
            f"{limits.max_pixels / 1e6:.0f} MP limit: downscale it first"
        )
    if min(width, height) < limits.min_side:
        raise ImageInputError(
            f"the image is {width}x{height} pixels; at least {limits.min_side} pixels per side "
            "are needed"
        )
    if max(width, height) / min(width, height) > limits.max_aspect:
        raise ImageInputError(
            f"the image is {width}x{height} pixels, an aspect ratio over {limits.max_aspect:.0f}:1"
        )


def _raw_array(source: ImageSource, limits: ImageLimits) -> np.ndarray:
    """Decode to a numpy array without colour conversion (for masks)."""
    if isinstance(source, np.ndarray):
        return _normalise_dtype(source)
    if isinstance(source, Image.Image):
        return _normalise_dtype(np.asarray(_pil_mode_for_array(source)))
    pil = _open(source, limits)
    try:
        return _normalise_dtype(np.asarray(_pil_mode_for_array(_decode(pil))))
    finally:
        pil.close()


def _pil_mode_for_array(pil: Image.Image) -> Image.Image:
    if pil.mode == "P":
        return pil.convert("RGBA" if "transparency" in pil.info else "RGB")
    if pil.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        return pil.convert("L" if pil.mode == "1" else "RGB")
    return pil


def _pil_to_rgb(pil: Image.Image) -> np.ndarray:
    return _array_to_rgb(np.asarray(_pil_mode_for_array(pil)))


def _scaled(array: np.ndarray, top: float) -> np.ndarray:
    """Integer ``array`` as float32 divided by ``top``, without a second full-size copy."""
    out = array.astype(np.float32)
    out /= np.float32(top)
    return out


def _normalise_dtype(array: np.ndarray) -> np.ndarray:
    """uint8, uint16, Pillow's int32 "I" mode or float in [0, 1] -> float32 in [0, 1].

    Floats outside [0, 1] are refused, never rescaled silently.
    """
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "b":
        return array.astype(np.float32)
    if kind == "u" and size == 1:
        return _scaled(array, 255.0)
    if (kind == "u" and size == 2) or (kind == "i" and size == 4 and array.size and
                                       array.min() >= 0 and array.max() <= 65535):
        # 16-bit files; Pillow decodes some 16-bit grayscale as int32 "I" mode.
        return _scaled(array, 65535.0)
    if kind == "f":
        if not np.isfinite(array).all():
            raise ImageInputError("the image array holds NaN or infinite values")
        if array.min() < 0.0 or array.max() > 1.0:
            raise ImageInputError(
                f"float image values must lie in [0, 1], got [{array.min():.3g}, {array.max():.3g}]"
            )
        return array.astype(np.float32)
    raise ImageInputError(
        f"unsupported pixel type {array.dtype}: use uint8, uint16 or float in [0, 1]"
    )


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    data = _normalise_dtype(np.asarray(array))
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        rgb = np.repeat(data[..., None], 3, axis=2)
    elif data.ndim == 3 and data.shape[2] in (2, 4):
        colour = data[..., :-1]
        alpha = data[..., -1:]
        if colour.shape[2] == 1:
            colour = np.repeat(colour, 3, axis=2)
        rgb = colour * alpha + (1.0 - alpha)  # composite over white paper
    elif data.ndim == 3 and data.shape[2] == 3:
        rgb = data
    else:
        raise ImageInputError(f"unsupported image shape {array.shape}: expected H x W (x 1/3/4)")
    return np.ascontiguousarray(rgb, dtype=np.float32)


def _luminance_of(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        return array
    if array.shape[2] == 1:
        return array[..., 0]
    return array[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
