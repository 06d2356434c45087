"""The one boundary between files/arrays from outside and restorer's image convention.

Inside restorer an image is ``float32 (H, W, 3)`` RGB in [0, 1] and a mask is ``bool (H, W)``
with True = defect. Everything that arrives from a file, bytes, PIL or numpy is converted here,
once; everything that leaves as a file is written here, atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence, Union

import cv2
import numpy as np
from PIL import Image

from restorer import files
from restorer.codec import (DEFAULT_LIMITS, HIGH_DEPTH, WRITABLE, ImageLimits, check_dimensions,
                            decode, encode)
from restorer.errors import ImageInputError, OutputPathError

__all__ = [
    "ImageLimits",
    "ImageSource",
    "Photo",
    "load_photo",
    "load_image",
    "load_mask",
    "to_uint8",
    "save_image",
    "save_mask",
    "encode_image",
    "encode_mask",
    "check_output_extension",
    "mask_to_image",
    "overlay_mask",
    "outline_boxes",
    "validate_image",
    "validate_mask",
    "check_defect_mask",
]

ImageSource = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]

@dataclass(frozen=True)
class Photo:
    """A loaded photo: ``image`` float32 (H, W, 3) RGB in [0, 1]; ``bits`` (8 or 16) and
    ``grey`` describe the file, so that the result can be written the same way; ``profile``
    names the ICC profile converted to sRGB on load (None when untagged or sRGB)."""

    image: np.ndarray
    bits: int = 8
    grey: bool = False
    profile: str | None = None


def load_photo(source: ImageSource, *, limits: ImageLimits = DEFAULT_LIMITS) -> Photo:
    """Load ``source`` like :func:`load_image`, keeping what the file was (bits, grey, profile)."""
    if isinstance(source, (np.ndarray, Image.Image)):
        return Photo(load_image(source, limits=limits))
    decoded = decode(source, limits)
    image = _array_to_rgb(decoded.pixels)
    check_dimensions((image.shape[1], image.shape[0]), limits)
    return Photo(image, decoded.bits, decoded.grey, decoded.profile)


def load_image(source: ImageSource, *, limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Load ``source`` into the internal convention.

    Parameters
    ----------
    source : path, bytes, PIL image or ndarray
        A file path or encoded bytes (EXIF orientation is applied, an ICC profile converted to
        sRGB, 16-bit files read at 16 bits), a PIL image, or an array
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
        check_dimensions(source.size, limits)
        image = _pil_to_rgb(source)
    else:
        image = _array_to_rgb(decode(source, limits).pixels)
    check_dimensions((image.shape[1], image.shape[0]), limits)
    return image


MASK_THRESHOLD = 0.125
"""A mask pixel is a defect when its brightest colour channel (or its alpha, in a mask with
transparency) is above this: any non-black colour counts, JPEG noise in black does not."""


def load_mask(
    source: ImageSource, *, shape: tuple[int, int], limits: ImageLimits = DEFAULT_LIMITS
) -> np.ndarray:
    """Load a defect mask and check it matches ``shape`` (H, W); returns bool (H, W).

    Any non-black pixel is a defect, whatever its colour (the brightest channel over
    MASK_THRESHOLD). A mask with a varying alpha channel (a painted layer) uses the alpha.
    """
    if isinstance(source, np.ndarray) and source.dtype == bool:
        mask = source
        if mask.ndim == 3:
            mask = mask.any(axis=2)
    else:
        # Any size may be read: the comparison with ``shape`` below says what is wrong.
        raw = _raw_array(source, replace(limits, min_side=1, max_aspect=float("inf")))
        if raw.ndim == 3 and raw.shape[2] in (2, 4) and float(raw[..., -1].min()) < \
                float(raw[..., -1].max()):
            mask = raw[..., -1] > MASK_THRESHOLD
        else:
            colour = raw[..., :3 if raw.shape[2] >= 3 else 1] if raw.ndim == 3 else raw
            mask = (colour.max(axis=2) if colour.ndim == 3 else colour) > MASK_THRESHOLD
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


def check_output_extension(path: str | os.PathLike) -> str:
    """The lower-case extension of ``path`` if a photo can be written there, else
    OutputPathError naming the ones that can."""
    ext = Path(path).suffix.lower()
    if ext not in WRITABLE:
        raise OutputPathError(f"cannot write '{Path(path).name}': unknown extension "
                              f"'{ext or '(none)'}', use one of {', '.join(sorted(WRITABLE))}")
    return ext


def encode_image(image: np.ndarray, ext: str, *, bits: int = 8, grey: bool = False) -> bytes:
    """Float (H, W, 3) [0, 1] ``image`` as the bytes of a ``ext`` file (".png", ".jpg"...).

    ``bits`` 16 is kept where the format allows it (PNG, TIFF), else 8 is written; ``grey``
    writes one channel when the image is neutral grey (a grey scan stays a grey file).
    """
    ext = check_output_extension(f"x{ext}")
    if grey and float(np.ptp(image, axis=2).max()) <= 1.0 / 512.0:
        image = image[..., :1]
    if bits == 16 and ext in HIGH_DEPTH:
        pixels = np.round(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16)
    else:
        pixels = to_uint8(image)
    return encode(pixels[..., 0] if pixels.shape[-1] == 1 else pixels, ext)


def encode_mask(mask: np.ndarray, ext: str = ".png") -> bytes:
    """Bool (H, W) ``mask`` as the bytes of an 8-bit grey ``ext`` file (white = defect)."""
    return encode(mask_to_image(mask), check_output_extension(f"x{ext}"))


def save_image(image: np.ndarray, path: str | os.PathLike, *, bits: int = 8,
               grey: bool = False) -> Path:
    """Write a float (H, W, 3) image atomically (PNG, JPEG, TIFF, WebP, BMP); see
    :func:`encode_image` for ``bits`` and ``grey``.

    The file appears complete or not at all: it is written to a temporary file beside the
    target and renamed.
    """
    target = Path(path)
    data = encode_image(image, check_output_extension(target), bits=bits, grey=grey)
    return files.write_bytes(target, data)


def save_mask(mask: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a bool (H, W) mask as an 8-bit grayscale file (white = defect), atomically."""
    target = Path(path)
    return files.write_bytes(target, encode_mask(mask, check_output_extension(target)))


# --------------------------------------------------------------------------------------------
# internals


def _raw_array(source: ImageSource, limits: ImageLimits) -> np.ndarray:
    """Decode to a numpy array without colour conversion (for masks)."""
    if isinstance(source, np.ndarray):
        return _normalise_dtype(source)
    if isinstance(source, Image.Image):
        return _normalise_dtype(np.asarray(_pil_mode_for_array(source)))
    return _normalise_dtype(decode(source, limits).pixels)


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
