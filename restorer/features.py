"""Texture descriptors of candidate crack pixels (seed paper 000): CLBP, HOG and LCP.

For N pixels, each described over the ``window`` x ``window`` square centred on it, the
descriptor has 469 values (:data:`DESCRIPTOR_LENGTH`), in this order:

- CLBP of R, G and B (108): histograms of the sign component CLBP_S and the magnitude component
  CLBP_M (Guo, Zhang and Zhang 2010), each with P = 16 neighbours on a circle of radius 2 and
  rotation-invariant uniform ("riu2") codes, 18 bins each: 3 x (18 + 18).
- HOG of the luma (36): 2 x 2 cells x 9 unsigned orientations, magnitude-weighted with linear
  orientation interpolation, L2-Hys normalised (Dalal and Triggs).
- LCP of the luma (289): the luma is contrast-normalised over the window (minus the local mean,
  over the local standard deviation); for each of the 17 uniform riu2 patterns, its share of the
  window pixels and the 16 magnitudes of the DFT of the least-squares weights that predict a
  pixel from its 16 neighbours, fitted (ridge 0.01) on the window pixels of that pattern, every
  other pixel in each direction (Guo, Zhao and Pietikainen 2011). The DFT magnitude makes the weights invariant to rotating the neighbours:
  17 x (1 + 16).
- CLBP of the morphological response, ``light - dark`` top-hat (36): 18 + 18.

Everything is vectorised: the codes are computed once for the whole image (16 shifted copies
by ``cv2.warpAffine``), then every window is gathered for all points at once and histogrammed
with ``numpy.bincount``; the LCP least squares are batched matrix products and one batched
Cholesky solve in torch. Histograms are fractions of the window (they sum to 1 per part).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from restorer.ops import luminance

__all__ = ["DESCRIPTOR_LENGTH", "NEIGHBOURS", "RADIUS", "PARTS", "TexturePlanes",
           "texture_planes", "describe", "patches"]

NEIGHBOURS = 16
RADIUS = 2.0
_BINS = NEIGHBOURS + 2  # riu2: 0..P ones (uniform) and one bin for every non-uniform code
_UNIFORM = NEIGHBOURS + 1
_ORIENTATIONS = 9
_HYS_CLIP = 0.2
_LCP_STRIDE = 2  # LCP least squares use every other window pixel in each direction
_LCP_RIDGE = 1e-2
_CONTRAST_FLOOR = 0.02
_CHUNK = 1024

#: Name and length of each part, in descriptor order.
PARTS: tuple[tuple[str, int], ...] = (
    ("clbp_rgb", 3 * 2 * _BINS),
    ("hog", 4 * _ORIENTATIONS),
    ("lcp", _UNIFORM * (1 + NEIGHBOURS)),
    ("clbp_response", 2 * _BINS),
)
DESCRIPTOR_LENGTH = sum(length for _, length in PARTS)  # 108 + 36 + 289 + 36 = 469


@dataclass(frozen=True)
class TexturePlanes:
    """Whole-image maps the descriptor gathers from (all (H, W)).

    ``codes`` uint8 (8, H, W): CLBP_S and CLBP_M riu2 codes of R, G, B and the response;
    ``lcp_codes`` uint8: riu2 sign codes of the normalised luma ``z`` float32;
    ``z_neighbours`` float32 (16, H, W): ``z`` at the 16 circle offsets;
    ``hog_bin`` int64 and ``hog_frac``/``hog_mag`` float32: lower orientation bin, weight of the
    upper bin, gradient magnitude; ``window`` the window side they were built for.
    """

    codes: np.ndarray
    z: np.ndarray
    z_neighbours: np.ndarray
    lcp_codes: np.ndarray
    hog_bin: np.ndarray
    hog_frac: np.ndarray
    hog_mag: np.ndarray
    window: int


def _circle_samples(planes: np.ndarray) -> np.ndarray:
    """Bilinear samples of float32 (H, W, C<=4) ``planes`` at the P circle offsets.

    Returns float32 (P, H, W, C). Neighbour p sits at angle 2 pi p / P, so rotating the image
    by 90 degrees shifts the neighbours cyclically by P / 4.
    """
    height, width = planes.shape[:2]
    channels = planes.shape[2]
    out = np.empty((NEIGHBOURS, height, width, channels), np.float32)
    for p in range(NEIGHBOURS):
        angle = 2.0 * np.pi * p / NEIGHBOURS
        dx = round(RADIUS * np.cos(angle), 6)
        dy = round(-RADIUS * np.sin(angle), 6)
        shift = np.float32([[1, 0, dx], [0, 1, dy]])
        moved = cv2.warpAffine(planes, shift, (width, height),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)
        out[p] = moved.reshape(height, width, channels)
    return out


def _riu2(bits: np.ndarray) -> np.ndarray:
    """Rotation-invariant uniform codes of bool (P, ...) ``bits``: uint8 (...) in [0, P + 1].

    A code with at most two 0/1 transitions around the circle is its number of ones; any
    other code is P + 1.
    """
    ones = bits.sum(axis=0, dtype=np.uint8)
    transitions = (bits != np.roll(bits, 1, axis=0)).sum(axis=0, dtype=np.uint8)
    return np.where(transitions <= 2, ones, np.uint8(NEIGHBOURS + 1)).astype(np.uint8)


def _clbp(samples: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """CLBP_S and CLBP_M riu2 codes: uint8 (2 C, H, W), S of each channel, then M of each.

    ``samples`` float32 (P, H, W, C) are the circle samples of float32 (H, W, C) ``planes``.
    The magnitude threshold of each channel is its mean absolute neighbour difference over
    the whole image (the CLBP definition).
    """
    diff = samples - planes[None]
    sign = _riu2(diff >= 0.0)
    magnitude = np.abs(diff)
    mag = _riu2(magnitude >= magnitude.mean(axis=(0, 1, 2), keepdims=True))
    return np.concatenate([np.moveaxis(sign, -1, 0), np.moveaxis(mag, -1, 0)])


def texture_planes(image: np.ndarray, response: np.ndarray, window: int) -> TexturePlanes:
    """The whole-image maps of float (H, W, 3) [0, 1] ``image`` and float32 (H, W) ``response``.

    ``response`` is the signed morphological response (light top-hat minus dark top-hat);
    ``window`` (odd) sets the local contrast normalisation of the LCP part.
    """
    image = np.ascontiguousarray(image, dtype=np.float32)
    luma = luminance(image)
    box = (window, window)
    mean = cv2.boxFilter(luma, -1, box, borderType=cv2.BORDER_REFLECT)
    square = cv2.boxFilter(luma * luma, -1, box, borderType=cv2.BORDER_REFLECT)
    std = np.sqrt(np.maximum(square - mean * mean, 0.0))
    z = (luma - mean) / (std + _CONTRAST_FLOOR)
    rgbz = np.concatenate([image, z[..., None]], axis=2)
    samples = _circle_samples(rgbz)
    z_neighbours = np.ascontiguousarray(samples[..., 3])
    lcp_codes = _riu2(z_neighbours >= z[None])
    response = np.ascontiguousarray(response, dtype=np.float32)[..., None]
    codes = np.concatenate([_clbp(samples[..., :3], image),
                            _clbp(_circle_samples(response), response)])
    gx = cv2.Sobel(luma, cv2.CV_32F, 1, 0, ksize=1, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Sobel(luma, cv2.CV_32F, 0, 1, ksize=1, borderType=cv2.BORDER_REFLECT)
    hog_mag = np.sqrt(gx * gx + gy * gy)
    position = (np.arctan2(gy, gx) % np.pi) / (np.pi / _ORIENTATIONS) - 0.5
    lower = np.floor(position)
    hog_frac = (position - lower).astype(np.float32)
    hog_bin = lower.astype(np.int64) % _ORIENTATIONS
    return TexturePlanes(codes=codes, z=z, z_neighbours=z_neighbours, lcp_codes=lcp_codes,
                         hog_bin=hog_bin, hog_frac=hog_frac, hog_mag=hog_mag, window=window)


def _window_offsets(window: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(dy, dx) int64 offsets of a centred ``window`` square, every ``stride`` pixels."""
    half = window // 2
    steps = np.arange(-half, half + 1, stride)  # symmetric: 2 * half is even
    dy, dx = np.meshgrid(steps, steps, indexing="ij")
    return dy.ravel(), dx.ravel()


def _gather_index(ys: np.ndarray, xs: np.ndarray, dy: np.ndarray, dx: np.ndarray,
                  shape: tuple[int, int]) -> np.ndarray:
    """Flat indices (N, K) of the window pixels, mirrored at the border (reflect-101)."""
    height, width = shape
    rows = np.abs(ys[:, None] + dy[None])
    cols = np.abs(xs[:, None] + dx[None])
    rows = np.where(rows >= height, 2 * (height - 1) - rows, rows)
    cols = np.where(cols >= width, 2 * (width - 1) - cols, cols)
    return rows * width + cols


def _histograms(codes: np.ndarray, bins: int) -> np.ndarray:
    """Row histograms of int (N, K) ``codes`` in [0, bins): float32 (N, bins), rows sum to 1."""
    count, size = codes.shape
    flat = (np.arange(count)[:, None] * bins + codes).ravel()
    hist = np.bincount(flat, minlength=count * bins).reshape(count, bins)
    return (hist / size).astype(np.float32)


def _hog(planes: TexturePlanes, index: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """HOG of the windows at flat ``index`` (N, K): float32 (N, 36), L2-Hys normalised.

    The centre row and column are shared half and half between the cells they separate.
    """
    count = index.shape[0]
    magnitude = planes.hog_mag.ravel()[index]
    lower = planes.hog_bin.ravel()[index]
    frac = planes.hog_frac.ravel()[index]
    upper = (lower + 1) % _ORIENTATIONS
    row_w = np.stack([(dy < 0) + 0.5 * (dy == 0), (dy > 0) + 0.5 * (dy == 0)])
    col_w = np.stack([(dx < 0) + 0.5 * (dx == 0), (dx > 0) + 0.5 * (dx == 0)])
    base = np.arange(count)[:, None] * _ORIENTATIONS
    cells = []
    for r in range(2):
        for c in range(2):
            weight = magnitude * (row_w[r] * col_w[c])[None]
            cell = np.bincount((base + lower).ravel(), (weight * (1.0 - frac)).ravel(),
                               minlength=count * _ORIENTATIONS)
            cell += np.bincount((base + upper).ravel(), (weight * frac).ravel(),
                                minlength=count * _ORIENTATIONS)
            cells.append(cell.reshape(count, _ORIENTATIONS))
    hog = np.concatenate(cells, axis=1)
    hog /= np.sqrt((hog * hog).sum(axis=1, keepdims=True) + 1e-6)
    np.minimum(hog, _HYS_CLIP, out=hog)
    hog /= np.sqrt((hog * hog).sum(axis=1, keepdims=True) + 1e-6)
    return hog.astype(np.float32)


def _lcp(planes: TexturePlanes, index: np.ndarray) -> np.ndarray:
    """LCP of the windows at flat ``index`` (N, K) (strided window pixels): float32 (N, 289).

    Per uniform pattern k: its share of the K pixels, then |DFT| of the ridge least-squares
    weights a_k minimising sum (z_c - a_k . z_neighbours)^2 over the pixels of pattern k.
    """
    count, size = index.shape
    pattern = planes.lcp_codes.ravel()[index].astype(np.int64)
    centre = torch.from_numpy(planes.z.ravel()[index])
    neighbours = torch.from_numpy(
        planes.z_neighbours.reshape(NEIGHBOURS, -1)[:, index].transpose(1, 2, 0).copy())
    onehot = torch.zeros(count, size, _BINS)
    onehot.scatter_(2, torch.from_numpy(pattern)[..., None], 1.0)
    onehot = onehot[..., :_UNIFORM]  # non-uniform pixels take part in no fit
    weighted = (onehot[..., None] * neighbours[:, :, None, :]).reshape(count, size, -1)
    gram = torch.bmm(weighted.transpose(1, 2), neighbours).reshape(
        count, _UNIFORM, NEIGHBOURS, NEIGHBOURS)
    target = torch.bmm(weighted.transpose(1, 2), centre[..., None]).reshape(
        count, _UNIFORM, NEIGHBOURS, 1)
    eye = torch.eye(NEIGHBOURS)
    factor = torch.linalg.cholesky(gram + _LCP_RIDGE * eye)
    weights = torch.cholesky_solve(target, factor)[..., 0]
    magnitudes = torch.fft.fft(weights, dim=-1).abs()
    share = onehot.mean(dim=1)
    return torch.cat([share[..., None], magnitudes], dim=2).reshape(count, -1).numpy()


def describe(planes: TexturePlanes, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Descriptors of the pixels at int rows ``ys`` and columns ``xs`` (N,): float32 (N, 469)."""
    ys = np.asarray(ys, dtype=np.int64)
    xs = np.asarray(xs, dtype=np.int64)
    shape = planes.z.shape
    dy, dx = _window_offsets(planes.window)
    ldy, ldx = _window_offsets(planes.window, _LCP_STRIDE)
    out = np.empty((len(ys), DESCRIPTOR_LENGTH), np.float32)
    code_maps = planes.codes.reshape(len(planes.codes), -1)
    for start in range(0, len(ys), _CHUNK):
        part = slice(start, start + _CHUNK)
        index = _gather_index(ys[part], xs[part], dy, dx, shape)
        hists = [_histograms(code_map[index], _BINS) for code_map in code_maps]
        lcp_index = _gather_index(ys[part], xs[part], ldy, ldx, shape)
        out[part] = np.concatenate(hists[:6] + [_hog(planes, index, dy, dx),
                                                _lcp(planes, lcp_index)] + hists[6:], axis=1)
    return out


def patches(image: np.ndarray, ys: np.ndarray, xs: np.ndarray, window: int) -> np.ndarray:
    """RGB windows of float (H, W, 3) ``image`` centred on (``ys``, ``xs``) (N,).

    Returns float32 (N, 3, window, window), mirrored at the border like the descriptor.
    """
    dy, dx = _window_offsets(window)
    index = _gather_index(np.asarray(ys, np.int64), np.asarray(xs, np.int64), dy, dx,
                          image.shape[:2])
    flat = np.asarray(image, dtype=np.float32).reshape(-1, 3)[index]
    return np.ascontiguousarray(flat.reshape(len(index), window, window, 3).transpose(0, 3, 1, 2))
