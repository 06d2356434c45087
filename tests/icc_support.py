"""Matrix/TRC ICC v2 display profiles built in code (no binary blobs in the repository).

``matrix_profile`` writes the bytes of an RGB profile from its D50-adapted primaries and a
gamma; ADOBE_RGB, DISPLAY_P3_GAMMA and PROPHOTO describe the usual working spaces closely
enough for colour-management tests (Display P3 with a 2.2 gamma instead of its sRGB curve).
"""

from __future__ import annotations

import struct

import numpy as np

#: Columns are the D50-adapted XYZ of the red, green and blue primaries.
ADOBE_RGB = np.array([[0.60974, 0.20528, 0.14919],
                      [0.31111, 0.62567, 0.06322],
                      [0.01947, 0.06087, 0.74457]])
DISPLAY_P3 = np.array([[0.51512, 0.29198, 0.15710],
                       [0.24120, 0.69225, 0.06657],
                       [-0.00105, 0.04189, 0.78407]])
PROPHOTO = np.array([[0.79767, 0.13519, 0.03135],
                     [0.28804, 0.71188, 0.00009],
                     [0.00000, 0.00000, 0.82521]])
SRGB_D50 = np.array([[0.43607, 0.38515, 0.14307],
                     [0.22249, 0.71687, 0.06061],
                     [0.01392, 0.09708, 0.71410]])
D50 = (0.9642, 1.0, 0.8249)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(values) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in values)


def _desc(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    return (b"desc\0\0\0\0" + struct.pack(">I", len(ascii_)) + ascii_
            + struct.pack(">II", 0, 0) + struct.pack(">HB", 0, 0) + b"\0" * 67)


def matrix_profile(name: str, primaries: np.ndarray, gamma: float) -> bytes:
    """The bytes of an ICC v2 RGB display profile named ``name``."""
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    tags = [(b"desc", _desc(name)), (b"wtpt", _xyz(D50)),
            (b"rXYZ", _xyz(primaries[:, 0])), (b"gXYZ", _xyz(primaries[:, 1])),
            (b"bXYZ", _xyz(primaries[:, 2])), (b"rTRC", curve), (b"gTRC", curve),
            (b"bTRC", curve), (b"cprt", b"text\0\0\0\0No copyright, test data\0")]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntr"
              + b"RGB XYZ " + b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
              + b"".join(_s15(v) for v in D50) + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def to_srgb(rgb: np.ndarray, primaries: np.ndarray, gamma: float) -> np.ndarray:
    """Reference conversion of float [0, 1] ``rgb`` in a matrix/gamma space to sRGB [0, 1]."""
    linear = np.clip(rgb, 0, 1) ** gamma
    srgb_linear = np.clip(linear @ (np.linalg.inv(SRGB_D50) @ primaries).T, 0, 1)
    return np.where(srgb_linear <= 0.0031308, srgb_linear * 12.92,
                    1.055 * srgb_linear ** (1 / 2.4) - 0.055)
