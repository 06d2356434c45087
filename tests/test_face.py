"""The GFP-GAN face stage: contract, fidelity, tone, determinism, concurrency, no downloads.

No real weights are reachable here. ``write_standin_weights`` saves random-weight networks of
the real architectures (GFPGANv1Clean and ParseNet narrowed so a forward takes a fraction of a
second on two CPU cores; RetinaFace-ResNet50 at full size) under the manifest's file names; a
temporary manifest with their computed sha256 and a WeightStore verify and resolve them like
the published files. These tests therefore check plumbing and contracts, not restoration
quality: random weights restore nothing.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from restorer import (Pipeline, PlannedStage, Registry, StageEntry, default_registry,
                      plan_manual)
from restorer.errors import PlanError, RestorerError, StageUnavailableError, WeightsError
from restorer.service import ServiceConfig, build_pipeline
from restorer.stages.base import Work
from restorer.stages import face_blend, face_detect
from restorer.stages.deblur import RichardsonLucyDeblur
from restorer.stages.detect import MorphologicalDetector
from restorer.stages.face import (GFPGAN_V14_ARCH, PARSENET_ARCH, WEIGHT_IDS, FaceArchitectures,
                                  GfpganFace, third_party, write_standin_weights)
from restorer.stages.triage import HeuristicTriage
from restorer.tone import analyse_tone
from restorer.weights import WeightStore
from threads_support import at_once

REPO = Path(__file__).resolve().parents[1]
SMALL = FaceArchitectures(
    gfpgan={**GFPGAN_V14_ARCH, "narrow": 0.0625},
    parsenet={**PARSENET_ARCH, "base_ch": 8, "res_depth": 1, "ch_range": [8, 32]},
)
DEFAULTS = GfpganFace.spec.defaults
PULL = "python -m restorer weights pull gfpgan_v1_4 retinaface_resnet50 parsenet"


def quiet(fraction: float, text: str) -> None:
    """Progress callback that ignores progress."""


def run(stage: GfpganFace, image: np.ndarray, **options: Any):
    return stage.run(Work(image=image), {**DEFAULTS, **options}, quiet)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """One intra-op thread: on two cores shared with other work, OpenMP threads spinning against
    each other made these small networks 5 to 20 times slower."""
    torch = third_party().torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> tuple[Path, WeightStore]:
    """Stand-in weight files, their manifest saved beside them, and an offline store."""
    folder = tmp_path_factory.mktemp("face-weights")
    manifest = write_standin_weights(folder, archs=SMALL, seed=0)
    manifest.save(folder / "manifest.json")
    store = WeightStore(manifest, bundled_dir=folder, cache_dir=folder / "hub", offline=True)
    return folder, store


def build(store: WeightStore, **kwargs: Any) -> GfpganFace:
    return GfpganFace(lambda wid: store.resolve(wid, download=False), device="cpu", archs=SMALL,
                      **kwargs)


@pytest.fixture(scope="module")
def stage(standin) -> GfpganFace:
    return build(standin[1])


@pytest.fixture(scope="module")
def face512() -> np.ndarray:
    """A 512 px stand-in for an aligned face: smooth colour blobs (seeded)."""
    rng = np.random.default_rng(1)
    small = rng.random((16, 16, 3), dtype=np.float32)
    return np.clip(cv2.resize(small, (512, 512), interpolation=cv2.INTER_CUBIC), 0, 1)


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    """A 384 x 320 photo; the stand-in detector places 256 px template faces on it."""
    rng = np.random.default_rng(2)
    return rng.random((320, 384, 3), dtype=np.float32)


# ------------------------------------------------------------------------------ contract
def test_aligned_face_in_same_size_out_in_range(stage, face512):
    out = run(stage, face512, aligned=True)
    assert out.image.shape == face512.shape and out.image.dtype == np.float32
    assert 0.0 <= out.image.min() and out.image.max() <= 1.0
    assert np.abs(out.image - face512).mean() > 0.01  # the network did change it
    assert out.info["faces_restored"] == 1 and out.info["precision"] == "fp32"


def test_fidelity_zero_is_input_one_is_restoration_between_is_blend(stage, face512):
    full = run(stage, face512, aligned=True, fidelity=1.0).image
    assert np.array_equal(run(stage, face512, aligned=True, fidelity=0.0).image, face512)
    half = run(stage, face512, aligned=True, fidelity=0.5).image
    np.testing.assert_allclose(half, (face512 + full) / 2, atol=1e-5)


def test_fidelity_zero_through_detection_and_paste_back_is_input(stage, portrait):
    out = run(stage, portrait, faces="centre", fidelity=0.0)
    assert out.info["faces_restored"] == 1
    assert np.array_equal(out.image, portrait)


def test_paste_back_keeps_size_and_touches_only_the_face(stage, portrait):
    out = run(stage, portrait, faces="centre")
    assert out.image.shape == portrait.shape
    (x0, y0, x1, y1), = out.info["boxes"]
    changed = np.abs(out.image - portrait).max(axis=2) > 0
    assert changed.any()
    ys, xs = np.nonzero(changed)
    assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1
    assert 0.0 <= out.image.min() and out.image.max() <= 1.0


@pytest.mark.parametrize("upscale", [1, 2, 4])
def test_paste_back_lands_on_the_right_pixels(photos, upscale):
    """Warping an aligned crop back unchanged reproduces the (upscaled) photo under the face."""
    photo = photos["astronaut"]
    landmarks = face_detect.FFHQ_TEMPLATE * 0.5 + np.array([100, 60], np.float32)  # a 256 px face
    affine = face_detect.alignment(landmarks)
    crop = cv2.warpAffine(photo, affine, (512, 512), flags=cv2.INTER_LINEAR)
    weight = np.zeros((512, 512), np.float32)
    weight[64:448, 64:448] = 1.0
    base = face_blend.upscaled(photo, upscale)
    out = base.copy()
    face_blend.paste(out, crop, weight, face_blend.inverse_map(affine, upscale))
    assert np.abs(out - base).mean() < 1.2e-3  # resampling only; half a pixel off gives 1.8e-3 at 2x


@pytest.mark.slow
def test_upscale_doubles_size_and_box(stage, portrait):
    one = run(stage, portrait, faces="centre")
    two = run(stage, portrait, faces="centre", upscale=2)
    assert two.image.shape == (640, 768, 3) and two.info["upscale"] == 2
    assert np.allclose(np.array(two.info["boxes"]), 2 * np.array(one.info["boxes"]), atol=1)


def test_upscale_is_reduced_to_the_pixel_budget_with_a_message(stage, face512, monkeypatch):
    monkeypatch.setattr(stage, "pixel_budget", 1_100_000)
    out = run(stage, face512, aligned=True, upscale=4)
    assert out.image.shape == (1024, 1024, 3) and out.info["upscale"] == 2
    assert any("budget" in m for m in out.info["messages"])


@pytest.mark.slow
def test_which_faces(stage, portrait):
    portrait = np.ascontiguousarray(portrait[:160, :192])  # fewer stand-in faces: faster
    every = run(stage, portrait, faces="all", fidelity=0.0)
    assert every.info["faces_found"] > 1
    assert every.info["faces_restored"] == every.info["faces_found"]
    centre = run(stage, portrait, faces="centre", fidelity=0.0)
    assert centre.info["faces_restored"] == 1
    assert len(centre.info["skipped"]) == centre.info["faces_found"] - 1
    large = run(stage, portrait, faces="large", min_size=300, fidelity=0.0)  # stand-in faces: 256 px
    assert large.info["faces_restored"] == 0
    assert all("smaller than 300 px" in s["why"] for s in large.info["skipped"])


@pytest.mark.slow
def test_max_faces_keeps_the_largest_and_says_so(standin, portrait):
    stage = build(standin[1], max_faces=2)
    out = run(stage, portrait, fidelity=0.0)
    assert out.info["faces_restored"] == 2
    assert any("only the 2 largest" in m for m in out.info["messages"])


def test_info_is_json_ready(stage, portrait):
    info = run(stage, portrait, faces="centre").info
    assert json.loads(json.dumps(info)) == info
    assert set(info["ms"]) == {"detect", "align", "restore", "parse", "paste"}


@pytest.mark.parametrize("options, fragment", [
    ({"fidelity": 1.5}, "fidelity"), ({"fidelity": True}, "fidelity"), ({"faces": "left"}, "faces"),
    ({"upscale": 3}, "upscale"), ({"min_size": -1}, "min_size"), ({"aligned": "yes"}, "aligned"),
])
def test_bad_options_are_refused(stage, face512, options, fragment):
    with pytest.raises(PlanError, match=fragment):
        run(stage, face512, **options)


def test_aligned_needs_a_square_crop(stage, portrait):
    with pytest.raises(PlanError, match="square"):
        run(stage, portrait, aligned=True)


# ------------------------------------------------------------------------------ tone, determinism
def test_grayscale_stays_grayscale(stage, portrait, face512):
    gray = np.repeat(portrait.mean(axis=2, keepdims=True), 3, axis=2)
    for out in (run(stage, gray, faces="centre").image,
                run(stage, np.repeat(face512[..., :1], 3, axis=2), aligned=True, fidelity=0.7).image):
        assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    assert not np.array_equal(run(stage, gray, faces="centre").image, gray)


def test_sepia_stays_sepia(stage, face512):
    luma = face512.mean(axis=2, keepdims=True)
    sepia = np.clip(luma * np.array([1.07, 0.95, 0.74], np.float32), 0, 1).astype(np.float32)
    assert analyse_tone(sepia).kind == "toned"
    assert analyse_tone(run(stage, sepia, aligned=True).image).kind == "toned"


@pytest.mark.slow
def test_deterministic_across_runs_instances_and_global_seed(standin, stage, portrait):
    import torch

    torch.manual_seed(1)
    first = run(stage, portrait, faces="centre").image
    torch.manual_seed(2)
    second = run(stage, portrait, faces="centre").image
    fresh = run(build(standin[1]), portrait, faces="centre").image
    assert np.array_equal(first, second) and np.array_equal(first, fresh)


@pytest.mark.slow
def test_two_threads_at_once_give_the_same_result_as_one(stage, portrait):
    """Different sizes, so RetinaFace's per-call scale would differ if calls interleaved."""
    images = [portrait, np.ascontiguousarray(portrait[:288, :352][::-1])]
    alone = [run(stage, image, faces="centre").image for image in images]
    for _ in range(2):
        results = at_once([lambda image=image: run(stage, image, faces="centre").image
                           for image in images])
        for got, want in zip(results, alone):
            assert isinstance(got, np.ndarray), got
            assert np.array_equal(got, want)


# ------------------------------------------------------------------------------ detection path
def test_detection_path_with_real_retinaface_architecture(stage, portrait):
    """Plumbing only.

    The detector is the real RetinaFace-ResNet50 architecture with a random backbone; its
    heads are fixed (write_standin_weights) so every 256 px anchor of the coarsest level
    reports a face with template landmarks. What this shows: the image reaches the detector in
    its convention (BGR, 0-255) and at any size, the detector's boxes and landmarks come back in
    photo pixels (a box of exactly 256 px on a 32 px anchor grid), landmarks give an alignment,
    and restore, parse and paste-back run for that face at the reported place. What it does not
    show: that real faces are found, how well, or how good the restoration looks (random
    weights).
    """
    out = run(stage, portrait, faces="centre")
    (x0, y0, x1, y1), = out.info["boxes"]
    assert (x1 - x0, y1 - y0) == (256, 256)
    assert (x0 + x1) // 2 % 32 == 16 and (y0 + y1) // 2 % 32 == 16  # an anchor centre
    assert out.info["faces_found"] >= 4


def test_detection_on_a_large_photo_is_done_downscaled(stage, portrait, monkeypatch):
    photo = np.tile(portrait, (2, 2, 1))  # 768 x 640
    monkeypatch.setattr(face_detect, "DETECT_SIDE", 384)  # as 1600 for a 3200 px photo
    out = run(stage, photo, faces="centre")
    assert out.image.shape == photo.shape and out.info["faces_found"] > 0
    (x0, y0, x1, y1), = out.info["boxes"]
    assert (x1 - x0, y1 - y0) == (512, 512)  # found as 256 px at half size, reported in photo pixels
    changed = np.abs(out.image - photo).max(axis=2) > 0
    ys, xs = np.nonzero(changed)
    assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1


# ------------------------------------------------------------------------------ weights, downloads
def test_no_download_is_ever_attempted(standin, portrait, monkeypatch):
    import facexlib.detection
    import facexlib.parsing
    import facexlib.utils.misc
    import torch.hub

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"download attempted: {args} {kwargs}")

    for module in (facexlib.utils.misc, facexlib.detection, facexlib.parsing):
        monkeypatch.setattr(module, "load_file_from_url", refuse)
    monkeypatch.setattr(facexlib.utils.misc, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    out = run(build(standin[1]), portrait, faces="centre")
    assert out.info["faces_restored"] == 1


def test_unavailable_with_the_pull_hint_when_weights_are_absent(tmp_path):
    config = ServiceConfig(weights_dir=tmp_path / "none", cache_dir=tmp_path / "hub", offline=True,
                           device="cpu")
    pipeline = build_pipeline(config)
    assert not pipeline.registry.is_available("face.gfpgan")
    assert pipeline.auto.face is None
    with pytest.raises(StageUnavailableError) as info:
        pipeline.registry.build("face.gfpgan")
    assert PULL in str(info.value)


def test_service_enables_faces_in_auto_mode_and_refuses_a_mismatched_file(standin):
    """The stand-in files verify (so Auto mode plans faces), but hold the narrowed networks."""
    folder, _ = standin
    config = ServiceConfig(manifest=folder / "manifest.json", weights_dir=folder,
                           cache_dir=folder / "hub", offline=True, device="cpu")
    pipeline = build_pipeline(config)
    assert pipeline.registry.is_available("face.gfpgan")
    assert pipeline.auto.face == "face.gfpgan"
    with pytest.raises(StageUnavailableError,
                       match=r"failed to build \(WeightsError: GFPGANv1.4.pth \[gfpgan_v1_4\] does not fit"):
        pipeline.registry.build("face.gfpgan")
    assert not pipeline.registry.is_available("face.gfpgan")  # Auto now skips faces


def test_a_corrupted_weight_file_is_refused_before_loading(standin, tmp_path):
    folder, store = standin
    bad = tmp_path / "bad"
    bad.mkdir()
    for entry in store.manifest:
        (bad / entry.local_name).symlink_to(folder / entry.local_name)
    (bad / "parsing_parsenet.pth").unlink()
    (bad / "parsing_parsenet.pth").write_bytes((folder / "parsing_parsenet.pth").read_bytes()[:-1] + b"x")
    broken = WeightStore(store.manifest, bundled_dir=bad, cache_dir=tmp_path / "hub", offline=True)
    with pytest.raises(WeightsError, match="does not match the manifest"):
        build(broken)


def test_device_choices(standin):
    with pytest.raises(RestorerError, match="unknown device 'gpu'"):
        ServiceConfig(device="gpu")
    from restorer.settings import build_settings

    assert build_settings({}, {"RESTORER_DEVICE": "cpu"}).device == "cpu"
    assert build_settings({"device": "auto"}, {"RESTORER_DEVICE": "cpu"}).device == "auto"
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(StageUnavailableError, match="CUDA"):
            GfpganFace(lambda wid: standin[1].resolve(wid), device="cuda", archs=SMALL)
        with pytest.raises(RestorerError, match="fp16 needs a CUDA"):
            GfpganFace(lambda wid: standin[1].resolve(wid), device="cpu", precision="fp16", archs=SMALL)


def test_cli_face_kind_and_device_option(tmp_path, photos, capsys):
    from restorer.cli import main, parse_stages
    from restorer.imaging import save_image

    pipeline = build_pipeline(ServiceConfig(weights_dir=tmp_path, cache_dir=tmp_path, offline=True))
    assert [s.id for s in parse_stages("deblur,face", pipeline, {})] == ["deblur.rl", "face.gfpgan"]
    photo = save_image(photos["camera"], tmp_path / "in.png")
    code = main(["restore", str(photo), "-o", str(tmp_path / "out.png"), "--device", "gpu"])
    assert code == 2 and "unknown device 'gpu'" in capsys.readouterr().err


def test_cuda_out_of_memory_falls_back_to_the_cpu_with_a_message(stage, face512, monkeypatch):
    import torch

    from restorer.runtime import ModelRuntime

    class OutOfMemory(torch.nn.Module):
        def forward(self, *args: Any, **kwargs: Any) -> None:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    want = run(stage, face512, aligned=True).image
    real = stage.nets.gfpgan
    builds = iter([OutOfMemory(), real.model])  # the "GPU" copy, then the CPU copy

    def with_fallback(fallback: str | None) -> ModelRuntime:
        return ModelRuntime(lambda device: next(builds), real.traits, device="cpu",
                            forward=real._forward, fallback_device=fallback)

    monkeypatch.setattr(stage, "nets", dataclasses.replace(stage.nets, gfpgan=with_fallback(None)))
    with pytest.raises(MemoryError):  # CPU main device: nothing to fall back to
        run(stage, face512, aligned=True)
    builds = iter([OutOfMemory(), real.model])
    monkeypatch.setattr(stage, "nets", dataclasses.replace(stage.nets, gfpgan=with_fallback("cpu")))
    out = run(stage, face512, aligned=True)  # as on a CUDA host
    assert np.array_equal(out.image, want)
    assert any("GFP-GAN: out of memory" in m and "instead" in m for m in out.info["messages"])
    assert any("out of memory" in n for n in out.info["runtime"]["notes"])


# ------------------------------------------------------------------------------ pipeline
def _face_pipeline(standin, stage: GfpganFace) -> Pipeline:
    registry = Registry([
        StageEntry(HeuristicTriage.spec, HeuristicTriage),
        StageEntry(MorphologicalDetector.spec, MorphologicalDetector),
        StageEntry(RichardsonLucyDeblur.spec, RichardsonLucyDeblur),
        StageEntry(GfpganFace.spec, lambda: stage),
    ], weight_check=standin[1].is_available)
    return Pipeline(registry)


def _deblur_then_faces(pipeline: Pipeline, **options: Any):
    specs = {s.id: s for s in pipeline.registry.specs()}
    return plan_manual(["deblur.rl", PlannedStage("face.gfpgan", options)], specs)


def test_pipeline_deblur_then_faces_upscaled(standin, stage, portrait):
    pipeline = _face_pipeline(standin, stage)
    result = pipeline.run(portrait, _deblur_then_faces(pipeline, faces="centre", upscale=2))
    assert result.image.shape == (640, 768, 3)
    report = json.loads(json.dumps(result.report()))
    assert report["stages"][-1]["info"]["faces_restored"] == 1


def test_pipeline_upscaled_grayscale_photo(standin, stage, portrait):
    pipeline = _face_pipeline(standin, stage)
    gray = np.repeat(portrait.mean(axis=2, keepdims=True), 3, axis=2)
    result = pipeline.run(gray, _deblur_then_faces(pipeline, faces="centre", upscale=2))
    assert np.array_equal(result.image[..., 0], result.image[..., 2])


# ------------------------------------------------------------------------------ imports
def _imports(path: Path) -> list[tuple[str, bool]]:
    """(top-level package, inside a function) of every absolute import in ``path``."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend((alias.name.split(".")[0], in_function) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module.split(".")[0], in_function))
        inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


def test_third_party_face_code_and_frameworks_are_imported_in_one_place_each():
    """gfpgan/facexlib/basicsr only in face_nets.py; torchvision, tensorflow and keras (which loads
    TensorFlow) only in backends.py (the import-order guard), keras never at module level, so
    that importing restorer cannot load TensorFlow before torchvision."""
    owners = {"gfpgan": "stages/face_nets.py", "facexlib": "stages/face_nets.py",
              "basicsr": "stages/face_nets.py",
              "torchvision": "backends.py", "tensorflow": "backends.py", "keras": "backends.py"}
    for path in sorted((REPO / "restorer").rglob("*.py")):
        relative = path.relative_to(REPO / "restorer").as_posix()
        for name, in_function in _imports(path):
            if name in owners:
                assert relative == owners[name], f"restorer/{relative} imports {name}"
            if name == "keras":
                assert in_function, f"restorer/{relative} imports keras at module level"


def test_importing_restorer_loads_no_framework():
    code = ("import sys, restorer, restorer.service; "
            "print(sorted(m for m in ('gfpgan', 'facexlib', 'basicsr', 'tensorflow', 'keras', "
            "'gradio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         timeout=120, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_tensorflow_before_torchvision_is_refused_not_a_crash():
    """Measured: TensorFlow then torchvision segfaults (exit 139); the guard refuses instead."""
    refused = subprocess.run(
        [sys.executable, "-c", "import tensorflow\nfrom restorer.backends import torch_stack\n"
                               "torch_stack()"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert refused.returncode == 1, refused.stderr[-2000:]
    assert "StageUnavailableError" in refused.stderr and "segmentation fault" in refused.stderr
    guarded = subprocess.run(
        [sys.executable, "-c", "from restorer.backends import tensorflow\ntensorflow()\n"
                               "import torchvision\nprint('ok')"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert guarded.returncode == 0 and guarded.stdout.strip() == "ok", guarded.stderr[-2000:]


def test_third_party_is_imported_once_and_matches_the_spec():
    first, second = third_party(), third_party()
    assert first is second
    assert {"GFPGANv1Clean", "RetinaFace", "ParseNet"} <= {f.name for f in dataclasses.fields(first)}
    assert set(WEIGHT_IDS) == set(default_registry().spec("face.gfpgan").weights)
