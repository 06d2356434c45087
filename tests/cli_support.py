"""Helpers of the tests that run the command line in a subprocess and check what it leaves.

A subprocess is what tests the contract of a bad input: exactly one line on stderr, the
documented exit status, no traceback, no file left behind, the input's bytes unchanged.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def run_cli(args: Sequence[str], *, prelude: str = "", timeout: float = 300
            ) -> subprocess.CompletedProcess:
    """``python -m restorer ARGS`` in a fresh process; ``prelude`` is Python run first (to
    patch a function, e.g. to send a signal in the middle of a save)."""
    code = (f"import sys\n{prelude}\nfrom restorer.cli import main\n"
            f"sys.exit(main({list(map(str, args))!r}))\n")
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def assert_one_line_error(stderr: str, *words: str) -> None:
    """``stderr`` is exactly one line, no traceback, and contains each of ``words``."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]


def files_under(folder: Path) -> list[str]:
    """Every file below ``folder`` (hidden ones too), relative, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def photo_array(size: tuple[int, int] = (64, 48), seed: int = 0) -> np.ndarray:
    """A smooth uint8 (H, W, 3) test photo of ``size`` (width, height)."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(seed)
    base = np.stack([x / width, y / height, (x + y) / (width + height)], axis=2)
    noisy = base * 200 + 30 + rng.normal(0, 3, base.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def png_bytes(array: np.ndarray, **kwargs) -> bytes:
    """``array`` as PNG bytes (Pillow's encoder; kwargs as for Image.save)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with its length and CRC."""
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def with_chunk(png: bytes, chunk: bytes) -> bytes:
    """``png`` with ``chunk`` inserted right after its IHDR chunk."""
    ihdr_end = 8 + 4 + 4 + 13 + 4
    return png[:ihdr_end] + chunk + png[ihdr_end:]
