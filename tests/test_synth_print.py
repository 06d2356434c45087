"""Seeded old-print damage (restorer.synth_print): deterministic, truth consistent with drawing."""

from __future__ import annotations

import numpy as np
import pytest

from restorer import synth_print
from restorer.synth_print import KINDS, VISIBLE, old_print_damage, print_damage


def _photo(size: tuple[int, int] = (96, 128)) -> np.ndarray:
    """A textured float32 (H, W, 3) test photo in [0.2, 0.8]."""
    ys, xs = np.mgrid[0:size[0], 0:size[1]].astype(np.float32)
    base = 0.5 + 0.3 * np.sin(xs / 7.0)[..., None] * np.cos(ys / 11.0)[..., None]
    return np.clip(base * np.array([1.0, 0.9, 0.8], np.float32), 0.0, 1.0).astype(np.float32)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_seeded_and_deterministic(kind: str) -> None:
    first = print_damage(_photo(), np.random.default_rng(3), kinds=[kind])
    again = print_damage(_photo(), np.random.default_rng(3), kinds=[kind])
    other = print_damage(_photo(), np.random.default_rng(4), kinds=[kind])
    assert np.array_equal(first.image, again.image)
    assert all(np.array_equal(first.masks[k], again.masks[k]) for k in KINDS)
    assert not np.array_equal(first.image, other.image)


@pytest.mark.parametrize("kind", KINDS)
def test_truth_is_where_the_photo_changed(kind: str) -> None:
    clean = _photo()
    sample = print_damage(clean, np.random.default_rng(11), kinds=[kind])
    assert sample.image.dtype == np.float32 and sample.image.shape == clean.shape
    assert 0.0 <= sample.image.min() and sample.image.max() <= 1.0
    assert sample.kinds == {kind}
    changed = np.abs(sample.image - clean).max(axis=2)
    # Everything outside the truth is untouched (below the visibility bound) ...
    assert changed[~sample.mask].max() < VISIBLE
    # ... and the truth of a single layer is exactly where it changed the photo visibly.
    single = print_damage(clean, np.random.default_rng(11), kinds=[kind], counts={kind: (1, 1)})
    assert np.array_equal(single.mask, np.abs(single.image - clean).max(axis=2) >= VISIBLE)
    for other in set(KINDS) - {kind}:
        assert not sample.masks[other].any()


def test_masks_do_not_overlap_and_union_is_mask() -> None:
    sample = print_damage(_photo((160, 200)), np.random.default_rng(5), kinds=KINDS)
    stack = np.stack([sample.masks[k] for k in KINDS])
    assert stack.dtype == bool and stack.shape[1:] == (160, 200)
    assert stack.sum(axis=0).max() <= 1
    assert np.array_equal(stack.any(axis=0), sample.mask)
    assert sample.kinds == set(KINDS)


def test_holes_are_large_and_touch_the_border() -> None:
    for seed in range(5):
        mask = print_damage(_photo((200, 240)), np.random.default_rng(seed),
                            kinds=["hole"]).masks["hole"]
        border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
        assert border.any(), seed
        assert mask.sum() >= 30, seed


def test_crack_widths_follow_photo_scale() -> None:
    """Cracks reach several px wide: some seeds' truth has pixels 3 px from any clean pixel."""
    import cv2
    widest = 0.0
    for seed in range(12):
        mask = print_damage(_photo((256, 256)), np.random.default_rng(seed),
                            kinds=["crack"]).masks["crack"]
        inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
        widest = max(widest, float(inside.max()))
    assert widest >= 3.0


def test_old_print_damage_is_deterministic_and_keeps_truth() -> None:
    first = old_print_damage(_photo(), np.random.default_rng(9))
    again = old_print_damage(_photo(), np.random.default_rng(9))
    assert np.array_equal(first.image, again.image)
    assert first.kinds and first.kinds <= set(KINDS)
    assert first.clean.shape == first.image.shape


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown damage kind"):
        print_damage(_photo(), np.random.default_rng(0), kinds=["mould"])


def test_layers_take_any_photo_size() -> None:
    for shape in ((40, 300), (300, 40), (64, 64)):
        for layer in (synth_print.crack_layer, synth_print.crease_layer,
                      synth_print.spot_layer, synth_print.hole_layer):
            out = layer(_photo(shape), np.random.default_rng(1))
            assert out.shape == (*shape, 3) and out.dtype == np.float32
