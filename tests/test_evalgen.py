"""The evaluation-only damage generator (bench/evalgen.py): seeded, truth where it drew."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import evalgen  # noqa: E402


def _photo() -> np.ndarray:
    ys, xs = np.mgrid[0:120, 0:160].astype(np.float32)
    grey = 0.45 + 0.25 * np.sin(xs / 9.0) * np.cos(ys / 13.0)
    return np.repeat(grey[..., None], 3, axis=2).astype(np.float32)


@pytest.mark.parametrize("kind", evalgen.KINDS)
def test_seeded_deterministic_and_truthful(kind: str) -> None:
    clean = _photo()
    first = evalgen.damage(clean, np.random.default_rng(2), (kind,))
    again = evalgen.damage(clean, np.random.default_rng(2), (kind,))
    assert np.array_equal(first.image, again.image)
    assert first.image.dtype == np.float32 and first.image.shape == clean.shape
    moved = np.abs(first.image - clean).mean(axis=2)
    assert np.array_equal(first.masks[kind], moved > evalgen.TRUTH)
    assert first.masks[kind].any()
    assert not any(first.masks[k].any() for k in evalgen.KINDS if k != kind)


def test_all_kinds_masks_disjoint() -> None:
    sample = evalgen.damage(_photo(), np.random.default_rng(4), evalgen.KINDS)
    stack = np.stack([sample.masks[k] for k in evalgen.KINDS])
    assert stack.sum(axis=0).max() <= 1 and np.array_equal(stack.any(axis=0), sample.mask)


def test_training_code_never_imports_it() -> None:
    root = Path(__file__).resolve().parents[1] / "restorer"
    assert not [p for p in root.rglob("*.py") if "evalgen" in p.read_text()]
