"""The model runtime: device and precision choice, padding, tiling, out-of-memory fallback."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

from restorer.errors import RestorerError, StageUnavailableError
from restorer.runtime import (ModelRuntime, ModelTraits, pick_device, pick_precision,
                              resolve_device, tile_starts, tile_weights)


def _conv_net(seed: int = 0, layers: int = 3) -> nn.Module:
    """A random 3 -> 3 channel stack of 3x3 convolutions: it sees ``layers`` px around a pixel."""
    torch.manual_seed(seed)
    blocks: list[nn.Module] = []
    for index in range(layers):
        blocks.append(nn.Conv2d(3, 3, 3, padding=1))
        if index < layers - 1:
            blocks.append(nn.Tanh())
    return nn.Sequential(*blocks).eval()


def test_auto_device_prefers_cuda_then_mps_then_cpu():
    assert pick_device("auto", cuda_count=2, mps=True) == "cuda"
    assert pick_device("auto", cuda_count=0, mps=True) == "mps"
    assert pick_device("auto", cuda_count=0, mps=False) == "cpu"
    assert pick_device(" CUDA:1 ", cuda_count=2, mps=False) == "cuda:1"


@pytest.mark.parametrize("choice,cuda,mps", [("cuda", 0, False), ("cuda:2", 2, False),
                                             ("mps", 1, False)])
def test_a_device_that_is_not_present_is_refused_with_what_is(choice, cuda, mps):
    with pytest.raises(StageUnavailableError, match="use 'auto' or 'cpu'"):
        pick_device(choice, cuda_count=cuda, mps=mps)


def test_an_unknown_device_name_is_refused():
    with pytest.raises(RestorerError, match="unknown device"):
        pick_device("gpu", cuda_count=1, mps=False)


def test_resolve_device_asks_torch_what_is_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type in ("cpu", "mps")


def test_precision_follows_what_the_model_declares_safe():
    lama = ModelTraits("LaMa", fp16=False, bf16=True)
    nafnet = ModelTraits("NAFNet", fp16=True, bf16=True)
    assert pick_precision("auto", "cuda", nafnet) == "fp16"
    assert pick_precision("auto", "cuda", lama) == "bf16"
    assert pick_precision("auto", "cuda", lama, bf16_supported=False) == "fp32"
    assert pick_precision("auto", "cpu", nafnet) == "fp32"
    with pytest.raises(RestorerError, match="does not run correctly in fp16"):
        pick_precision("fp16", "cuda", lama)
    with pytest.raises(RestorerError, match="needs a CUDA GPU"):
        pick_precision("bf16", "cpu", lama)


def test_padding_to_the_size_multiple_is_cropped_back():
    seen = []

    def forward(model, image):
        seen.append(tuple(image.shape[-2:]))
        return image * 2.0

    traits = ModelTraits("x2", size_multiple=8, min_size=16, pad=("reflect",))
    runtime = ModelRuntime(lambda device: None, traits, device="cpu", forward=forward)
    image = np.random.default_rng(0).random((37, 53, 3), dtype=np.float32)
    out, info = runtime.run(image)
    assert seen == [(40, 56)]
    assert out.shape == image.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, image * 2.0, atol=1e-6)
    assert info.as_dict() == {"device": "cpu", "precision": "fp32", "tiles": 1, "tile": None,
                              "notes": []}


def test_masks_are_padded_with_zeros_and_images_by_reflection():
    def forward(model, image, mask):
        return torch.cat([image, mask], dim=1)

    traits = ModelTraits("two", input_channels=4, output_channels=4, size_multiple=8,
                         pad=("reflect", "zeros"))
    runtime = ModelRuntime(lambda device: None, traits, device="cpu", forward=forward)
    image = np.random.default_rng(1).random((10, 10, 3), dtype=np.float32)
    mask = np.ones((10, 10, 1), np.float32)
    out, _ = runtime.run(image, mask)
    assert out.shape == (10, 10, 4)
    np.testing.assert_array_equal(out[..., 3], 1.0)


def test_tile_starts_cover_the_length_with_the_overlap():
    for length, tile, overlap in [(1000, 256, 64), (257, 256, 64), (256, 256, 64), (100, 256, 8)]:
        starts = tile_starts(length, min(tile, length), overlap)
        assert starts[0] == 0 and starts[-1] + min(tile, length) == length
        assert all(b - a <= min(tile, length) - overlap for a, b in zip(starts, starts[1:]))


def test_tile_weights_of_neighbours_sum_to_one():
    length, tile, overlap = 400, 160, 64
    total = np.zeros(length, np.float32)
    starts = [0, 96, 192, 240]
    for start in starts:
        total[start:start + tile] += tile_weights(start, tile, length, overlap)
    assert total.min() > 0.99


@pytest.mark.parametrize("size", [(200, 300), (129, 517)])
def test_tiled_equals_untiled_within_1_of_255(size):
    net = _conv_net()
    traits = ModelTraits("convs", reach=3, min_overlap=16, min_tile=32)
    runtime = ModelRuntime(lambda device: net.to(device), traits, device="cpu")
    image = np.random.default_rng(2).random((*size, 3), dtype=np.float32)
    whole, whole_info = runtime.run(image)
    tiled, tiled_info = runtime.run(image, tile=64)
    assert whole_info.tiles == 1 and tiled_info.tiles > 4 and tiled_info.tile == 64
    assert np.abs(whole - tiled).max() < 1.0 / 255.0
    assert np.abs(whole - tiled).max() < 1e-5  # the reach is within a quarter of the overlap


def test_a_scaling_network_is_tiled_at_its_scale():
    traits = ModelTraits("x2", scale=2, reach=1, min_overlap=8, min_tile=16)
    up = nn.Upsample(scale_factor=2, mode="nearest")
    runtime = ModelRuntime(lambda device: up, traits, device="cpu")
    image = np.random.default_rng(3).random((50, 70, 3), dtype=np.float32)
    whole, _ = runtime.run(image)
    tiled, info = runtime.run(image, tile=24)
    assert whole.shape == (100, 140, 3) and info.tiles > 1
    np.testing.assert_allclose(whole, tiled, atol=1e-6)


class _Allocator:
    """A fake allocator: inputs above ``limit`` pixels raise the out-of-memory error."""

    def __init__(self, limit: int, error: type[BaseException] = torch.cuda.OutOfMemoryError):
        self.limit, self.error, self.sizes = limit, error, []

    def forward(self, model, image):
        pixels = image.shape[-2] * image.shape[-1]
        self.sizes.append(pixels)
        if pixels > self.limit:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return model(image)


def test_out_of_memory_retries_with_smaller_tiles():
    net = _conv_net()
    allocator = _Allocator(limit=70 * 70)
    traits = ModelTraits("convs", reach=3, min_overlap=16, min_tile=32)
    runtime = ModelRuntime(lambda device: net, traits, device="cpu", forward=allocator.forward)
    image = np.random.default_rng(4).random((256, 256, 3), dtype=np.float32)
    out, info = runtime.run(image)
    expected, _ = ModelRuntime(lambda device: net, traits, device="cpu").run(image)
    assert info.tile == 64 and info.tiles > 1 and info.device == "cpu"
    assert [n for n in info.notes if "retried with 128 px" in n]
    assert [n for n in info.notes if "retried with 64 px" in n]
    assert np.abs(out - expected).max() < 1e-5


def test_out_of_memory_at_the_smallest_tile_moves_to_the_fallback_device(caplog):
    net = _conv_net()
    builds = []

    def build(device):
        builds.append(str(device))
        return net

    gpu = _Allocator(limit=0)  # the "GPU" never has memory; the fallback copy always does

    def forward(model, image):
        return gpu.forward(model, image) if len(builds) == 1 else model(image)

    traits = ModelTraits("convs", reach=3, min_overlap=16, min_tile=64)
    runtime = ModelRuntime(build, traits, device="cpu", forward=forward, fallback_device="cpu")
    image = np.random.default_rng(5).random((100, 100, 3), dtype=np.float32)
    with caplog.at_level("WARNING"):
        out, info = runtime.run(image)
    assert builds == ["cpu", "cpu"]  # the fallback copy is built once, on first need
    assert any("ran on cpu instead" in n for n in info.notes)
    assert "ran on cpu instead" in caplog.text
    assert out.shape == image.shape and np.isfinite(out).all()
    runtime.run(image)
    assert builds == ["cpu", "cpu"]


def test_out_of_memory_without_a_fallback_is_a_memory_error():
    allocator = _Allocator(limit=0, error=MemoryError)
    runtime = ModelRuntime(lambda device: _conv_net(), ModelTraits("convs", min_tile=64),
                           device="cpu", forward=allocator.forward)
    with pytest.raises(MemoryError, match="ran out of memory"):
        runtime.run(np.zeros((64, 64, 3), np.float32))


def test_other_errors_are_not_swallowed():
    def forward(model, image):
        raise ValueError("a bug")

    runtime = ModelRuntime(lambda device: None, ModelTraits("bug"), device="cpu", forward=forward)
    with pytest.raises(ValueError, match="a bug"):
        runtime.run(np.zeros((8, 8, 3), np.float32))


def test_forwards_of_one_model_are_serialised_unless_it_is_safe_to_share():
    active, peak, guard = [0], [0], threading.Lock()

    def forward(model, image):
        with guard:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        threading.Event().wait(0.05)
        with guard:
            active[0] -= 1
        return image

    for thread_safe, expected in ((False, 1), (True, 2)):
        active[0] = peak[0] = 0
        runtime = ModelRuntime(lambda device: None, ModelTraits("t", thread_safe=thread_safe),
                               device="cpu", forward=forward)
        threads = [threading.Thread(target=runtime.run, args=(np.zeros((8, 8, 3), np.float32),))
                   for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert peak[0] == expected


def test_apply_runs_a_step_under_the_lock_and_moves_to_the_fallback_on_out_of_memory():
    builds: list[str] = []

    def build(device):
        builds.append(str(device))
        return len(builds)  # 1: the main copy, 2: the fallback copy

    def step(model, device):
        if model == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return f"ran on copy {model}"

    runtime = ModelRuntime(build, ModelTraits("detector"), device="cpu", fallback_device="cpu")
    result, info = runtime.apply(step)
    assert result == "ran on copy 2" and builds == ["cpu", "cpu"]
    assert info.tiles == 1 and any("ran on cpu instead" in n for n in info.notes)
    alone = ModelRuntime(build, ModelTraits("detector"), device="cpu")  # CPU: no fallback
    with pytest.raises(MemoryError, match="detector ran out of memory"):
        alone.apply(lambda model, device: step(1, device))


def test_runs_of_one_stage_merge_into_one_record():
    from restorer.runtime import RunInfo, merge_runs

    runs = [RunInfo("cpu", "fp32", 1, None, ("a",)), RunInfo("cpu", "fp32", 4, 256, ("a", "b"))]
    assert merge_runs(runs) == RunInfo("cpu", "fp32", 5, 256, ("a", "b"))
    assert merge_runs([]) is None
    runtime = ModelRuntime(lambda device: None, ModelTraits("idle"), device="cpu")
    assert runtime.record([]) == {"device": "cpu", "precision": "fp32", "tiles": 0, "tile": None,
                                  "notes": []}


def test_half_precision_on_the_cpu_is_refused_at_the_command_line(tmp_path, capsys):
    from restorer.cli import main
    from restorer.imaging import save_image
    from restorer.runtime import check_precision

    assert check_precision("fp16", "cuda") == "fp16"
    with pytest.raises(RestorerError, match="bf16 needs a CUDA GPU"):
        check_precision("bf16", "cpu")
    photo = save_image(np.full((32, 32, 3), 0.5, np.float32), tmp_path / "in.png")
    for device in ("cpu",) + (() if torch.cuda.is_available() else ("auto",)):
        code = main(["restore", str(photo), "-o", str(tmp_path / "out.png"), "--device", device,
                     "--precision", "fp16"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "fp16 needs a CUDA GPU" in err
    assert not (tmp_path / "out.png").exists()
