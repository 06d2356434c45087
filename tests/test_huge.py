"""Huge scans: a 24 MP photo through Auto within 4 GB, tiled or cropped stages equal to their
whole-image versions on photos small enough for both, and the pixel gate that bounds memory
under load."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from restorer import synth
from restorer.imaging import load_image, save_image
from restorer.service import PixelGate
from restorer.stages.deblur import deblur, deblur_halo
from restorer.stages.inpaint import NavierStokesInpainter, TeleaInpainter, inpaint_regions

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import huge  # noqa: E402  (bench/huge.py)

GB = 10**9


@pytest.mark.parametrize("name, sigma", [("astronaut", 2.0), ("camera", 1.5)])
def test_tiled_deblur_equals_untiled(photos, name, sigma):
    blurred = synth.blur(photos[name], np.random.default_rng(0), strength=sigma)
    whole, used = deblur(blurred, tile=None)
    assert used > 1.0 and np.abs(whole - blurred).max() > 0.05  # it did deblur
    assert deblur_halo(used, 12) > 128  # so the tiles below really depend on their context
    for tile in (128, 200):
        tiled, used_tiled = deblur(blurred, tile=tile)
        assert used_tiled == used
        np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("stage_cls", [TeleaInpainter, NavierStokesInpainter])
def test_inpainting_crops_equal_the_whole_image_fill(photos, stage_cls):
    """Each crop holds its holes and enough context: filling crops is filling the photo.

    (Not biharmonic: scikit-image clips its result to the value range of the pixels it was
    given, so there a crop's overshoot is clipped to the crop's range, not the photo's.)
    """
    image = photos["coffee"]
    mask = np.zeros(image.shape[:2], bool)
    rng = np.random.default_rng(1)
    for top, left in [(40, 40), (40, 400), (250, 120), (300, 480), (150, 300)]:
        alpha = synth.crack_alpha((70, 90), rng, count=1, width=(2.0, 4.0))
        mask[top:top + 70, left:left + 90] |= alpha >= synth.TRUTH_ALPHA
    stage = stage_cls()
    options = stage_cls.spec.defaults
    margin = max(8, stage.context * int(options.get("radius", 0)))
    cropped, regions = inpaint_regions(image, mask, lambda c, m: stage.fill(c, m, options),
                                       margin=margin)
    assert regions >= 4
    whole = image.copy()
    whole[mask] = np.clip(stage.fill(image, mask, options)[mask], 0.0, 1.0)
    np.testing.assert_allclose(cropped, whole, rtol=0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("grey", [False, True], ids=["colour", "grey"])
def test_24_megapixel_scan_with_cracks_and_faces_stays_under_4_gb(tmp_path, grey):
    """File to file in a fresh process, with the real triage network and every Auto stage
    (narrowed face networks: the published ones are not here; bench/huge.py measures full-size
    stand-ins)."""
    scan = save_image(huge.make_scan(24.0, grey=grey), tmp_path / "scan.jpg")
    result = huge.run_scan(scan, weights="small", timeout=900)
    assert result["size"] == [6000, 4000]
    assert result["plan"] == ["detect.segnet", "inpaint.telea", "deblur.rl", "face.gfpgan"]
    assert result["faces"] != "0 of 0"
    assert result["max_rss"] <= 4 * GB, f"peak RSS {result['max_rss'] / GB:.2f} GB"
    out = load_image(result["output"])
    assert out.shape == (4000, 6000, 3)


def test_pixel_gate_bounds_the_pixels_restored_at_once():
    gate = PixelGate(100)
    order: list[str] = []
    first_in, release_first = threading.Event(), threading.Event()

    def hold(name: str, pixels: int, entered: threading.Event | None = None,
             release: threading.Event | None = None) -> None:
        with gate.admit(pixels):
            order.append(f"{name} in ({gate.in_use})")
            if entered:
                entered.set()
            if release:
                assert release.wait(10)
            order.append(f"{name} out")

    a = threading.Thread(target=hold, args=("a", 80, first_in, release_first))
    a.start()
    assert first_in.wait(10)
    b = threading.Thread(target=hold, args=("b", 50))  # 80 + 50 > 100: waits for a
    big = threading.Thread(target=hold, args=("big", 150))  # over the budget: runs alone
    b.start()
    big.start()
    time.sleep(0.3)
    assert order == ["a in (80)"]
    release_first.set()
    for thread in (a, b, big):
        thread.join(10)
    assert order[:2] == ["a in (80)", "a out"]
    assert sorted(order[2:]) == sorted(["b in (50)", "b out", "big in (150)", "big out"])
    # b and big never overlapped: each entered alone.
    assert order[3].endswith("out") and order[5].endswith("out")
    assert gate.in_use == 0
