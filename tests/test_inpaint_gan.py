"""The learned inpainter (inpaint.gan), its networks, and the exemplar-based baseline."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio as psnr

from restorer import synth
from restorer.errors import StageUnavailableError, WeightsError
from restorer.imaging import load_image
from restorer.nets.inpaint_gan import (GLOBAL_CRITIC_LAYERS, LOCAL_CRITIC_LAYERS, Critic,
                                       Reconstructor, load_reconstructor, save_reconstructor)
from restorer.registry import default_registry
from restorer.stages.base import Work
from restorer.stages.inpaint import NavierStokesInpainter
from restorer.stages.inpaint_exemplar import ExemplarInpainter
from restorer.stages.inpaint_gan import WEIGHT_ID, LearnedInpainter, tile_boxes
from restorer.weights import WeightStore, default_manifest_path, load_manifest, load_safetensors

WEIGHTS_DIR = default_manifest_path().parent


def _noop(fraction: float, text: str) -> None:
    pass


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """The shipped weights, resolved offline and sha256-checked like the app does."""
    state = tmp_path_factory.mktemp("state")
    store = WeightStore(load_manifest(default_manifest_path()), bundled_dir=WEIGHTS_DIR,
                        cache_dir=state, offline=True)
    return store.resolve(WEIGHT_ID)


@pytest.fixture(scope="module")
def stage(weights) -> LearnedInpainter:
    return LearnedInpainter(weights, device="cpu")


def _hole_psnr(clean: np.ndarray, out: np.ndarray, mask: np.ndarray) -> float:
    return psnr(clean[mask], out[mask], data_range=1.0)


# ------------------------------------------------------------------------------ networks
def test_architecture_matches_the_paper():
    full = Reconstructor(64)
    convs = [m for m in full.body if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 64, 128, 128, 128, 256, 256, 256, 256,
                                               256, 128, 128, 128, 64, 64, 64, 3]
    assert [c.dilation[0] for c in convs][7:10] == [2, 4, 8]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(p.numel() for p in full.parameters()) == 3_840_323
    assert sum(p.numel() for p in Reconstructor(32).parameters()) == 961_699
    out = Reconstructor(16)(torch.rand(2, 3, 48, 64), torch.zeros(2, 1, 48, 64))
    assert out.shape == (2, 3, 48, 64) and 0 < float(out.min()) and float(out.max()) < 1
    with pytest.raises(ValueError, match="multiple of 8"):
        Reconstructor(16)(torch.rand(1, 3, 30, 32), torch.zeros(1, 1, 30, 32))


def test_critics_shapes():
    global_critic = Critic(GLOBAL_CRITIC_LAYERS, 128, 64)
    local_critic = Critic(LOCAL_CRITIC_LAYERS, 64, 64)
    kernels = [m.kernel_size[0] for m in global_critic.features if isinstance(m, torch.nn.Conv2d)]
    assert kernels == [5, 5, 5, 3]
    assert global_critic(torch.rand(3, 3, 128, 128)).shape == (3,)
    assert local_critic(torch.rand(3, 3, 64, 64)).shape == (3,)
    with pytest.raises(ValueError, match="critic expects 64x64"):
        local_critic(torch.rand(1, 3, 32, 32))


def test_save_load_round_trip_is_fp16(tmp_path):
    torch.manual_seed(0)
    network = Reconstructor(8)
    path = tmp_path / "net.safetensors"
    save_reconstructor(network, path, {"variant": "test"})
    tensors = load_safetensors(path)
    assert all(t.dtype == torch.float16 for t in tensors.values())
    loaded = load_reconstructor(tensors)
    x, m = torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)
    # fp16 storage: outputs agree to fp16 precision.
    assert float((loaded(x, m) - network(x, m)).abs().max()) < 2e-3
    with pytest.raises(ValueError, match="reconstruction network"):
        load_reconstructor({"x": torch.zeros(1)})


# ------------------------------------------------------------------------------ the stage
def test_shipped_weights_load(stage):
    assert stage.width == 32 and str(stage.device) == "cpu"


def test_shipped_weights_against_the_ns_prefill(weights):
    """Training-style 64 px crops of scikit-image photos (never trained on), all hole families.

    Measured with the shipped weights over these 4 x 4 seeded batches of 8 crops: the hole
    MSE is 0.15 dB lower than the Navier-Stokes pre-fill's (mean of per-crop dB; per seed
    +0.08 to +0.34 dB, better on 50-69 % of the crops), and the network moves the fill by
    0.0046 on average. A small, real gain, far below the issue's goal: the CPU-trained network
    does not reliably beat Navier-Stokes on whole photos (bench/inpainting.py; reasons in
    weights/inpaint_gan.md). This pins it: a gain of at least 0.05 dB, and not the identity.
    """
    from restorer.train.inpaint import CONFIGS, Sampler

    network = load_reconstructor(load_safetensors(weights))
    pool = {"faces": [load_image(data.astronaut())],
            "natural": [load_image(getattr(data, n)()) for n in ("coffee", "chelsea", "camera")]}
    square = np.zeros((512, 512), bool)
    square[100:400, 150:300] = True  # stands in for the irregular masks (not shipped)
    gains, changes = [], []
    for seed in range(4):
        sampler = Sampler(pool, [square], CONFIGS["cpu"], np.random.default_rng(seed))
        for _ in range(4):
            prefill, mask, clean, _ = sampler.batch()
            with torch.inference_mode():
                out = network(prefill, mask)
            for o, p, m, c in zip(out, prefill, mask, clean):
                hole = m[0] > 0.5
                gains.append(10 * np.log10(float(((p - c)[:, hole] ** 2).mean())
                                           / float(((o - c)[:, hole] ** 2).mean())))
                changes.append(float((o - p)[:, hole].abs().mean()))
    assert np.mean(gains) > 0.05, np.mean(gains)
    assert np.mean(changes) > 0.002, np.mean(changes)


def test_prefill_is_used(weights, tmp_path):
    """With the last layer zeroed the network returns its input: the Navier-Stokes fill."""
    tensors = load_safetensors(weights)
    network = load_reconstructor(tensors)
    last = network.body[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    path = tmp_path / "zeroed.safetensors"
    save_reconstructor(network, path, {})
    zeroed = LearnedInpainter(path, device="cpu")
    image = synth.damage(np.full((96, 128, 3), 0.5, np.float32) + np.linspace(0, 0.4, 128)[None, :, None].astype(np.float32),
                         np.random.default_rng(1)).image
    mask = np.zeros(image.shape[:2], bool)
    mask[30:60, 40:90] = True
    out = zeroed.run(Work(image, mask), zeroed.spec.defaults, _noop).image
    ns = NavierStokesInpainter().run(Work(image, mask), {"radius": 3}, _noop).image
    np.testing.assert_allclose(out[mask], np.clip(ns[mask], 1e-3, 1 - 1e-3), atol=1e-5)


def test_only_masked_pixels_change(stage, photos):
    image = photos["coffee"]  # 400 x 600: several 256 px tiles
    mask = np.zeros(image.shape[:2], bool)
    mask[240:275, 200:320] = True  # crosses a tile border
    mask[100:103, 20:580] = True
    out = stage.run(Work(image, mask), stage.spec.defaults, _noop)
    assert out.image.dtype == np.float32 and out.image.shape == image.shape
    np.testing.assert_array_equal(out.image[~mask], image[~mask])
    assert np.abs(out.image[mask] - image[mask]).max() > 0.05
    assert out.info["tiles"] == len(tile_boxes(mask, stage.tile, stage.context))


def test_tile_boxes_cover_only_cells_with_holes():
    mask = np.zeros((300, 520), bool)
    mask[10, 10] = mask[290, 515] = True
    boxes = tile_boxes(mask, 256, 32)
    assert [core for core, _ in boxes] == [(0, 256, 0, 256), (256, 300, 512, 520)]
    assert [window for _, window in boxes] == [(0, 288, 0, 288), (224, 300, 480, 520)]


def test_empty_mask_returns_input(stage, photos):
    image = photos["chelsea"]
    out = stage.run(Work(image, np.zeros(image.shape[:2], bool)), stage.spec.defaults, _noop)
    assert out.image is image


def test_deterministic_across_threads(stage, photos):
    image = photos["astronaut"][:200, :200]
    damaged = synth.damage(image, np.random.default_rng(3))
    work = Work(damaged.image, damaged.mask)
    first = stage.run(work, stage.spec.defaults, _noop).image
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(
        stage.run(work, stage.spec.defaults, _noop).image)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2
    for result in results:
        np.testing.assert_array_equal(result, first)


def test_unavailable_with_pull_hint_when_weights_missing(tmp_path):
    empty = tmp_path / "weights"
    empty.mkdir()
    store = WeightStore(load_manifest(default_manifest_path()), bundled_dir=empty,
                        cache_dir=tmp_path / "cache", offline=True)
    registry = default_registry(weight_check=store.is_available, weight_path=store.resolve,
                                device="cpu")
    assert not registry.is_available("inpaint.gan")
    assert registry.is_available("inpaint.exemplar")
    with pytest.raises(StageUnavailableError, match="weights pull inpaint_gan"):
        registry.build("inpaint.gan")


def test_corrupt_weights_are_refused(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="weights pull inpaint_gan"):
        LearnedInpainter(path, device="cpu")


# ------------------------------------------------------------------------------ exemplar
def test_exemplar_copies_texture_where_diffusion_blurs():
    """Stripes with a square hole: patches continue them exactly; Navier-Stokes cannot."""
    x = np.arange(160, dtype=np.float32)
    stripes = (0.5 + 0.4 * np.sign(np.sin(2 * np.pi * x / 12)))[None, :].repeat(120, axis=0)
    image = np.repeat(stripes[..., None], 3, axis=2).astype(np.float32)
    mask = np.zeros(image.shape[:2], bool)
    mask[40:70, 60:95] = True
    stage = ExemplarInpainter()
    out = stage.run(Work(image, mask), stage.spec.defaults, _noop).image
    ns = NavierStokesInpainter().run(Work(image, mask), {"radius": 3}, _noop).image
    np.testing.assert_array_equal(out[~mask], image[~mask])
    assert _hole_psnr(image, out, mask) > 40.0
    assert _hole_psnr(image, ns, mask) < 15.0
