"""The published-model stages with stand-in weights: random-initialised networks of the same
architectures, saved in the real files' formats by fixtures (never committed).

inpaint.lama (TorchScript, like big-lama.pt, about 195 MB: made once per session and served by
the local Hub of tests/hub_server.py through the real download and sha256 path),
deblur.nafnet (a narrow NAFNet state dict under "params", as NAFNet-GoPro-width64.pth holds)
and detect.scratch (a narrow BOPBTL U-Net under "model_state", as FT_Epoch_latest.pt holds).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch

from restorer.errors import WeightsError
from restorer.stages.base import Work
from restorer.stages.deblur_nafnet import NafnetDeblur
from restorer.stages.detect_scratch import ScratchDetector, load_scratch_unet
from restorer.stages.inpaint_lama import LamaInpainter, region_widths, windows
from restorer.weights import Manifest, WeightEntry, WeightStore

try:
    from tests.hub_server import FakeHub
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from hub_server import FakeHub

SEGNET = Path(__file__).resolve().parents[1] / "weights" / "detector_segnet.safetensors"
pytestmark = pytest.mark.usefixtures("two_torch_threads")


def quiet(fraction: float, text: str) -> None:
    """A progress callback that ignores its reports."""


@pytest.fixture(scope="session")
def lama_file(standin_files) -> Path:
    """A TorchScript trace of a random-initialised spandrel LaMa(in_nc=4), as big-lama.pt is."""
    return standin_files.path("big_lama")


@pytest.fixture(scope="session")
def nafnet_file(standin_files) -> Path:
    return standin_files.path("nafnet_gopro_w64")


@pytest.fixture(scope="session")
def scratch_file(standin_files) -> Path:
    return standin_files.path("bopbtl_scratch")


def photo(height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width, y / height, 0.5 + 0.3 * np.sin(x / 9)], axis=-1)
    return np.clip(base + rng.normal(0, 0.02, base.shape), 0, 1).astype(np.float32)


# --------------------------------------------------------------------------------------- LaMa
@pytest.mark.slow
def test_lama_builds_through_the_hub_and_sha256_and_fills_only_masked_pixels(
    tmp_path: Path, lama_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    data = lama_file.read_bytes()
    with FakeHub() as hub:
        commit = hub.commit("org/big-lama", {"big-lama.pt": data})
        entry = WeightEntry(id="big_lama", repo_id="org/big-lama", filename="big-lama.pt", local_name="big-lama.pt",
                            revision=commit, sha256=hashlib.sha256(data).hexdigest(), size=len(data), format="pt",
                            licence="Apache-2.0", stage="inpaint.lama", input_contract=None, bundled=False,
                            description="stand-in", architecture="LaMa",
                            licence_url="https://github.com/advimman/lama/blob/main/LICENSE")
        store = WeightStore(Manifest((entry,)), endpoint=hub.endpoint, cache_dir=tmp_path / "cache",
                            bundled_dir=tmp_path / "bundled")
        stage = LamaInpainter(store.resolve("big_lama"), entry=entry, device="cpu")
    image = photo(96, 128)
    mask = np.zeros(image.shape[:2], bool)
    mask[30:60, 40:80] = True   # a wide hole: LaMa
    mask[10, 5:120] = True      # a 1 px crack: Telea
    options = LamaInpainter.spec.resolve_options({"working_side": 64, "margin": 16})
    out = stage.run(Work(image=image, mask=mask), options, quiet)
    assert out.image.shape == image.shape and out.image.dtype == np.float32
    assert 0.0 <= out.image.min() and out.image.max() <= 1.0
    assert np.array_equal(out.image[~mask], image[~mask])       # only masked pixels change
    assert not np.allclose(out.image[mask], image[mask])
    info = out.info
    assert (info["lama_regions"], info["classical_regions"]) == (1, 1)
    # The crack's pixels inside LaMa's crop are LaMa's holes too (no damaged pixel stays as its
    # context); the rest of the crack goes to Telea.
    assert info["lama_crops"] == 1 and 0 < info["telea_pixels"] < int(mask[10].sum())
    assert (info["model"], info["revision"], info["sha256"], info["device"]) == ("big_lama", commit, entry.sha256, "cpu")


def test_lama_refuses_a_file_of_another_architecture(nafnet_file: Path, scratch_file: Path) -> None:
    with pytest.raises(WeightsError, match="holds a NAFNet restoration model.*not the declared LaMa"):
        LamaInpainter(nafnet_file, device="cpu")
    with pytest.raises(WeightsError, match=r"FT_Epoch_latest\.pt \[big_lama\]"):
        LamaInpainter(scratch_file, device="cpu")


@pytest.mark.slow
def test_lama_large_masks_go_in_overlapping_windows_and_time_budget_sends_the_rest_to_telea(
    lama_file: Path,
) -> None:
    stage = LamaInpainter(lama_file, device="cpu")
    image = photo(160, 200, seed=1)
    mask = np.zeros(image.shape[:2], bool)
    mask[20:140, 30:170] = True  # spans most of the photo: larger than working_side * max_downscale
    options = LamaInpainter.spec.resolve_options({"working_side": 64, "margin": 16, "max_downscale": 1.0})
    out = stage.run(Work(image=image, mask=mask), options, quiet)
    assert out.info["crops_planned"] > 1 and out.info["lama_crops"] == out.info["crops_planned"]
    assert out.info["telea_pixels"] == 0 and np.array_equal(out.image[~mask], image[~mask])
    budget = stage.run(Work(image=image, mask=mask), {**options, "time_budget": 0.0}, quiet)
    assert budget.info["lama_crops"] == 0 and budget.info["telea_pixels"] == int(mask.sum())
    assert "to stay within the 0 s budget" in budget.info["messages"][0]
    assert np.array_equal(budget.image[~mask], image[~mask])


def test_region_widths_and_windows() -> None:
    mask = np.zeros((40, 60), bool)
    mask[5, 2:50] = True           # 1 px
    mask[20:31, 10:40] = True      # 11 px
    labels, widths = region_widths(mask)
    assert sorted(widths[1:].round().tolist()) == [1.0, 11.0]
    assert windows((0, 30, 0, 40), (40, 60), side=64, margin=8) == [((0, 30, 0, 40), (0, 30, 0, 40))]
    pairs = windows((0, 40, 0, 60), (40, 60), side=32, margin=8)
    cells = np.zeros((40, 60), int)
    for (y0, y1, x0, x1), (wy0, wy1, wx0, wx1) in pairs:
        cells[y0:y1, x0:x1] += 1
        assert wy0 <= y0 and wx0 <= x0 and wy1 >= y1 and wx1 >= x1 and max(wy1 - wy0, wx1 - wx0) <= 32
    assert (cells == 1).all()  # the cells tile the box exactly once


# --------------------------------------------------------------------------------------- NAFNet
@pytest.mark.slow
def test_nafnet_deblurs_whole_photo_tiled_and_refuses_lama(nafnet_file: Path, lama_file: Path) -> None:
    stage = NafnetDeblur(nafnet_file, device="cpu")
    image = photo(80, 100)
    options = NafnetDeblur.spec.resolve_options({})
    out = stage.run(Work(image=image), options, quiet)
    assert out.image.shape == image.shape and out.image.dtype == np.float32
    assert 0.0 <= out.image.min() and out.image.max() <= 1.0
    tiled = stage.run(Work(image=image), {**options, "tile": 64}, quiet)
    assert tiled.info["tiles"] > 1 if "tiles" in tiled.info else True
    assert tiled.image.shape == image.shape
    half = stage.run(Work(image=image), {**options, "strength": 0.5}, quiet)
    np.testing.assert_allclose(half.image, image + 0.5 * (out.image - image), atol=1e-5)
    assert stage.run(Work(image=image), {**options, "strength": 0.0}, quiet).image is image
    with pytest.raises(WeightsError, match="holds a LaMa inpainting model"):
        NafnetDeblur(lama_file, device="cpu")


# --------------------------------------------------------------------------------------- scratch
def test_scratch_detector_loads_weights_only_and_unites_with_segnet(scratch_file: Path) -> None:
    stage = ScratchDetector(scratch_file, SEGNET, device="cpu")
    image = photo(96, 128)
    options = ScratchDetector.spec.resolve_options({})
    union = stage.run(Work(image=image), options, quiet)
    alone = stage.run(Work(image=image), {**options, "fusion": "scratch"}, quiet)
    assert union.mask.shape == image.shape[:2] and union.mask.dtype == bool
    assert (union.mask | alone.mask == union.mask).all()  # the union holds the scratch network's mask
    assert union.info["defect_fraction"] >= max(union.info["scratch_fraction"], union.info["segnet_fraction"])
    small = stage.run(Work(image=image), {**options, "work_mp": 0.05}, quiet)
    assert small.mask.shape == image.shape[:2]


def test_scratch_loader_refuses_other_files(tmp_path: Path, nafnet_file: Path) -> None:
    from restorer.nets.bopbtl_unet import ScratchUNet

    with pytest.raises(WeightsError, match="does not hold the BOPBTL-ScratchUNet"):
        load_scratch_unet(nafnet_file)
    colour = tmp_path / "colour.pt"
    torch.save({"model_state": ScratchUNet(in_channels=3, wf=3, depth=2).state_dict()}, colour)
    with pytest.raises(WeightsError, match="3 input channels, not 1"):
        load_scratch_unet(colour)
    code = tmp_path / "code.pt"
    torch.save({"model_state": {"first.1.weight": torch.zeros(8, 1, 7, 7)}, "obj": Path("x")}, code)
    with pytest.raises(WeightsError, match="cannot be read as a weights-only torch checkpoint"):
        load_scratch_unet(code)


def test_scratch_unet_keys_match_the_published_checkpoint_layout() -> None:
    """Key names of the authors' UNet(depth=4, wf=6, upsample, antialiasing) as loaded by their
    Global/detection.py from checkpoint["model_state"]."""
    from restorer.nets.bopbtl_unet import ScratchUNet

    keys = set(ScratchUNet().state_dict())
    for key in ("first.1.weight", "down_sample.0.1.weight", "down_sample.0.2.running_mean", "down_sample.3.4.filt",
                "down_path.3.block.5.weight", "down_path.3.block.6.num_batches_tracked", "up_path.0.up.2.weight",
                "up_path.3.conv_block.block.1.weight", "last.1.weight"):
        assert key in keys, key
    assert sum(p.numel() for p in ScratchUNet().parameters()) > 30_000_000


# --------------------------------------------------------------------------------------- Auto
@pytest.mark.slow
def test_auto_picks_lama_when_its_file_is_present_and_telea_when_not(tmp_path: Path, lama_file: Path) -> None:
    import dataclasses
    import shutil

    from restorer.service import ServiceConfig, build_pipeline
    from restorer.weights import default_manifest_path, load_manifest

    real = load_manifest(default_manifest_path())
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    for entry in real:
        if entry.bundled:
            shutil.copy(default_manifest_path().parent / entry.local_name, weights_dir / entry.local_name)
    offline = ServiceConfig(manifest=default_manifest_path(), weights_dir=weights_dir,
                            cache_dir=tmp_path / "cache", offline=True, device="cpu")
    image = photo(192, 256)
    mask = np.zeros(image.shape[:2], bool)
    mask[60:120, 80:150] = True                                       # a wide hole: LaMa's
    without = build_pipeline(offline).run(image, mask=mask)           # no big-lama.pt here
    assert "inpaint.telea" in without.plan.ids and "inpaint.lama" not in without.plan.ids
    assert any("inpaint.telea used instead of inpaint.lama" in n for n in without.auto_notes)

    data = lama_file.read_bytes()
    standin = dataclasses.replace(real.get("big_lama"), sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                                  bundled=True)
    manifest = tmp_path / "manifest.json"
    Manifest(tuple(standin if e.id == "big_lama" else e for e in real)).save(manifest)
    (weights_dir / "big-lama.pt").symlink_to(lama_file)
    pipeline = build_pipeline(dataclasses.replace(offline, manifest=manifest))
    result = pipeline.run(image, mask=mask)
    assert "inpaint.lama" in result.plan.ids and not result.skipped_for_time
    lama = next(r for r in result.stages if r.id == "inpaint.lama")
    assert lama.info["model"] == "big_lama", (result.plan.ids, dict(lama.info))
    assert not np.array_equal(result.image[mask], image[mask])
    assert np.array_equal(result.image[~mask], image[~mask])
    stage = pipeline.registry.build("inpaint.lama")
    assert stage.entry.sha256 == standin.sha256   # the report records the manifest's revision and hash
