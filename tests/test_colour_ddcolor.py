"""colour.ddcolor with stand-in weights: a random-initialised DDColor of the tiny configuration
(ConvNeXt-T encoder, 100 colour queries, spectral norm, 2 outputs: what ddcolor_paper_tiny.pth
holds), saved as {"params": state_dict} by a fixture (about 220 MB, never committed) and loaded
through the real path (manifest entry, sha256 check, spandrel-extra-arches). Random weights
predict random colours: these tests check the plumbing (sizes, lightness kept, refusals, off by
default), not the quality of the colours, which needs the published file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from restorer.errors import WeightsError, WeightsIntegrityError
from restorer.pipeline import Pipeline
from restorer.planner import AutoMethods, PlannedStage, plan_auto, plan_manual
from restorer.registry import default_registry
from restorer.stages.base import TriageResult, Work
from restorer.stages.colour_ddcolor import WEIGHT_ID, DDColorColour, join_lightness, lightness
from restorer.weights import Manifest, WeightStore, default_manifest_path, load_manifest
pytestmark = pytest.mark.usefixtures("two_torch_threads")


def quiet(fraction: float, text: str) -> None:
    """A progress callback that ignores its reports."""


@pytest.fixture(scope="session")
def ddcolor_file(standin_files) -> Path:
    """A random-initialised DDColor-T saved as the published checkpoints are ({"params": ...})."""
    return standin_files.path("ddcolor_paper_tiny")


@pytest.fixture(scope="session")
def stage(ddcolor_file: Path) -> DDColorColour:
    return DDColorColour(ddcolor_file, device="cpu")


def grey_print(height: int = 150, width: int = 220) -> np.ndarray:
    """A grey photo with structure: gradients, a disc and fine stripes (float32 RGB [0, 1])."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    value = 0.2 + 0.5 * x / width + 0.1 * np.sin(y / 3.0)
    value[(y - height / 2) ** 2 + (x - width / 3) ** 2 < (height / 4) ** 2] = 0.85
    return np.repeat(np.clip(value, 0, 1)[..., None], 3, axis=2).astype(np.float32)


def sepia(image: np.ndarray) -> np.ndarray:
    """``image``'s lightness in a warm brown tint (a toned print)."""
    lum = lightness(image)
    ab = np.stack([np.full_like(lum, 8.0), np.full_like(lum, 22.0)], axis=-1)
    return join_lightness(lum, ab)


def chroma(image: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2Lab)
    return np.hypot(lab[..., 1], lab[..., 2])


# --------------------------------------------------------------------------------------- stage
@pytest.mark.slow
def test_colourises_at_working_size_and_keeps_full_resolution_lightness(stage: DDColorColour) -> None:
    image = grey_print()
    options = DDColorColour.spec.resolve_options({"working_size": 256})
    out = stage.run(Work(image=image), options, quiet)
    assert out.image.shape == image.shape and out.image.dtype == np.float32
    assert 0.0 <= out.image.min() and out.image.max() <= 1.0
    assert chroma(out.image).mean() > 5.0                      # it did colour the print
    error = np.abs(lightness(out.image) - lightness(image))
    assert error.mean() < 0.5 and error.max() < 2.0            # L* kept at full resolution
    # The 3 px stripes are the input's own: a working-size L* would have blurred them away.
    rows = lightness(out.image)[:, 5]
    assert np.ptp(rows[40:60]) > 0.8 * np.ptp(lightness(image)[40:60, 5])
    info = out.info
    assert (info["model"], info["architecture"], info["working_size"], info["tiles"]) == (
        WEIGHT_ID, "DDColor", 256, 1)
    grey = stage.run(Work(image=image), {**options, "strength": 0.0}, quiet).image
    assert chroma(grey).max() < 1.0                            # strength 0: still grey


@pytest.mark.slow
def test_a_sepia_print_is_turned_grey_before_colourising(stage: DDColorColour) -> None:
    image = grey_print(96, 128)
    options = DDColorColour.spec.resolve_options({"working_size": 256})
    from_grey = stage.run(Work(image=image), options, quiet).image
    from_sepia = stage.run(Work(image=sepia(image)), options, quiet).image
    # The network sees L* only, so the tint plays no part; L* of the two inputs differs by up to
    # 0.2 (the tinted copy went through RGB and back), which the random stand-in amplifies at a
    # few pixels.
    difference = np.abs(from_sepia - from_grey)
    assert np.median(difference) < 0.005 and (difference > 0.05).mean() < 0.15


def test_join_lightness_shrinks_chroma_out_of_gamut_instead_of_moving_lightness() -> None:
    lum = np.linspace(2, 98, 64, dtype=np.float32).reshape(8, 8)
    ab = np.full((8, 8, 2), 100.0, np.float32)                  # far outside sRGB everywhere
    rgb = join_lightness(lum, ab)
    assert np.abs(lightness(rgb) - lum).max() < 1.0
    assert chroma(rgb).min() > 0.0 and chroma(rgb).max() < 100.0


def test_refuses_another_architecture(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from spandrel.architectures.NAFNet import NAFNet
    path = tmp_path / "ddcolor_paper_tiny.pth"
    torch.save({"params": NAFNet(img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1, 1],
                                 dec_blk_nums=[1, 1]).state_dict()}, path)
    with pytest.raises(WeightsError, match="holds a NAFNet restoration model.*not the declared DDColor"):
        DDColorColour(path, device="cpu")
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot be read as DDColor|no model spandrel recognises"):
        DDColorColour(path, device="cpu")


# --------------------------------------------------------------------------------------- weights
def _standin_manifest(tmp_path: Path, ddcolor_file: Path, sha256: str) -> tuple[Path, Path]:
    """A copy of the real manifest whose ddcolor entry is bundled, hashed as ``sha256``, with the
    stand-in linked into a weights folder beside the bundled files."""
    real = load_manifest(default_manifest_path())
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    for entry in real:
        if entry.bundled:
            shutil.copy(default_manifest_path().parent / entry.local_name, weights_dir / entry.local_name)
    standin = dataclasses.replace(real.get(WEIGHT_ID), sha256=sha256, size=ddcolor_file.stat().st_size,
                                  bundled=True)
    manifest = tmp_path / "manifest.json"
    Manifest(tuple(standin if e.id == WEIGHT_ID else e for e in real)).save(manifest)
    (weights_dir / standin.local_name).symlink_to(ddcolor_file)
    return manifest, weights_dir


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def test_real_entry_is_unhashed_until_locked_and_never_used() -> None:
    entry = load_manifest(default_manifest_path()).get(WEIGHT_ID)
    assert (entry.repo_id, entry.filename, entry.architecture, entry.stage) == (
        "piddnad/DDColor-models", "ddcolor_paper_tiny.pth", "DDColor", "colour.ddcolor")
    assert entry.licence == "Apache-2.0" and entry.licence_url.startswith("https://github.com/piddnad/")
    assert entry.sha256 is None and entry.size is None and not entry.bundled


@pytest.mark.slow
def test_builds_from_the_manifest_with_its_sha256_and_refuses_a_wrong_one(
    tmp_path: Path, ddcolor_file: Path
) -> None:
    from restorer.service import ServiceConfig, build_pipeline

    manifest, weights_dir = _standin_manifest(tmp_path, ddcolor_file, _sha256(ddcolor_file))
    config = ServiceConfig(manifest=manifest, weights_dir=weights_dir, cache_dir=tmp_path / "cache",
                           offline=True, device="cpu")
    pipeline = build_pipeline(config)
    assert pipeline.auto.colour == "colour.ddcolor"
    assert "colour.ddcolor" not in pipeline.auto_stage_ids()      # never warmed up or run unasked
    built = pipeline.registry.build("colour.ddcolor")
    assert built.entry is not None and built.entry.sha256 == _sha256(ddcolor_file)

    wrong = tmp_path / "wrong"
    wrong.mkdir()
    manifest, weights_dir = _standin_manifest(wrong, ddcolor_file, "0" * 64)
    store = WeightStore(load_manifest(manifest), bundled_dir=weights_dir, cache_dir=wrong / "cache",
                        offline=True)
    with pytest.raises(WeightsIntegrityError):
        store.resolve(WEIGHT_ID)
    config = dataclasses.replace(config, manifest=manifest, weights_dir=weights_dir)
    assert build_pipeline(config).auto.colour is None           # a file that fails its hash is unused


# --------------------------------------------------------------------------------------- off by default
def _clean() -> TriageResult:
    return TriageResult(confidences={"clean": 1.0, "blurred": 0.0, "cracked": 0.0, "blurred+cracked": 0.0},
                        blurred=False, cracked=False, method="test")


def test_auto_colourises_only_when_asked_and_says_when_it_cannot() -> None:
    methods = AutoMethods(colour="colour.ddcolor")
    assert plan_auto(_clean(), methods).ids == ()
    asked = plan_auto(_clean(), methods, colourise=True)
    assert asked.ids == ("colour.ddcolor",) and "colourised as asked" in asked.reason
    cracked = dataclasses.replace(_clean(), cracked=True)
    assert plan_auto(cracked, methods, colourise=True).ids[-1] == "colour.ddcolor"
    absent = plan_auto(_clean(), AutoMethods(), colourise=True)
    assert absent.ids == () and "weights pull ddcolor_paper_tiny" in absent.reason


def test_manual_plans_put_colour_last() -> None:
    registry = default_registry()
    specs = {s.id: s for s in registry.specs()}
    assert plan_manual(["deblur.rl", "colour.ddcolor"], specs).ids == ("deblur.rl", "colour.ddcolor")
    with pytest.raises(Exception, match="cannot run after 'colour.ddcolor'"):
        plan_manual([PlannedStage("colour.ddcolor"), PlannedStage("deblur.rl")], specs)


@pytest.mark.slow
def test_pipeline_keeps_grey_grey_and_sepia_sepia_unless_colourisation_is_asked(ddcolor_file: Path) -> None:
    registry = default_registry(weight_check=lambda w: w == WEIGHT_ID, weight_path=lambda w: ddcolor_file,
                                device="cpu")
    pipeline = Pipeline(registry, triage_id="triage.heuristic",
                        auto=AutoMethods(deblur=None, colour="colour.ddcolor"))
    options = {"colour.ddcolor": {"working_size": 256}}
    grey = grey_print(96, 128)
    toned = sepia(grey)
    for image in (grey, toned):
        result = pipeline.run(image, options=options)
        assert "colour.ddcolor" not in result.plan.ids and not result.colourised
        assert np.abs(result.image - image).max() < 1e-6      # untouched: grey stays grey, sepia sepia
        assert result.colour_before_after is None
    result = pipeline.run(grey, options=options, colourise=True)
    assert result.plan.ids[-1] == "colour.ddcolor" and result.colourised
    assert chroma(result.image).mean() > 5.0                   # the pipeline did not re-tone it grey
    assert np.abs(lightness(result.image) - lightness(grey)).mean() < 0.5
    before, after = result.colour_before_after                 # the colour stage's own pair
    assert before is grey and after is result.image            # nothing to repair: given the input


class SmallColour(Pipeline):
    """A pipeline whose colour stage works at 256 px (the page sends no stage options)."""

    def run(self, image, plan=None, **kwargs):
        return super().run(image, plan, options={"colour.ddcolor": {"working_size": 256}}, **kwargs)


def page_pipeline(ddcolor_file: Path) -> SmallColour:
    """A pipeline with the stand-in DDColor verified, as the page's would be (also used by
    test_browser.py)."""
    registry = default_registry(weight_check=lambda w: w == WEIGHT_ID, weight_path=lambda w: ddcolor_file,
                                device="cpu")
    return SmallColour(registry, triage_id="triage.heuristic",
                       auto=AutoMethods(deblur=None, colour="colour.ddcolor"))


@pytest.mark.slow
def test_the_page_shows_the_colour_stages_before_after_in_auto_and_after_repairs(
    tmp_path: Path, ddcolor_file: Path
) -> None:
    """The page's Auto colourise checkbox runs the colour stage last; its own before/after
    (the repaired grey print, then colour) goes to the page besides the whole run's, also when
    Manual runs colour after a repair; off, a grey print stays grey and there is none."""
    import app
    from restorer.imaging import save_image

    actions = app.PageActions(page_pipeline(ddcolor_file), app.AppSettings())
    photo = save_image(grey_print(96, 128), tmp_path / "grey.png")
    quiet_page = lambda *args, **kwargs: None  # noqa: E731
    manual = ("detect.morph", 0.5, "inpaint.telea", "deblur.rl", None, "face.gfpgan", 0.7, "all", 64, 1)

    def restore(mode: str, kinds: list[str], colourise: bool) -> tuple:
        return actions.restore(str(photo), mode, kinds, *manual, None, colourise, False,
                               progress=quiet_page)

    off = restore("Auto", [], False)
    assert off[-1] is None and chroma(off[5].astype(np.float32) / 255).max() < 1.0
    on = restore("Auto", [], True)
    report, (before, after), (whole_before, whole_after) = on[7], on[-1], on[2]
    assert report["plan"][-1] == "colour.ddcolor"
    assert chroma(before.astype(np.float32) / 255).max() < 1.0          # the grey print
    assert chroma(after.astype(np.float32) / 255).mean() > 5.0          # in colour
    assert np.array_equal(after, on[5]) and np.array_equal(whole_after, on[5])
    assert np.array_equal(whole_before, before)                          # nothing was repaired
    assert "Colourised" in on[0]

    save_image(cv2.GaussianBlur(grey_print(96, 128), (0, 0), 1.5), photo)   # now deblur acts
    repaired = restore("Manual", ["deblur", "colour"], False)
    stages = [s["id"] for s in repaired[7]["stages"]]
    assert stages[-2:] == ["deblur.rl", "colour.ddcolor"]
    before = repaired[-1][0]
    assert np.abs(before.astype(int) - repaired[2][0]).max() > 10        # the deblurred print,
    assert chroma(before.astype(np.float32) / 255).max() < 1.0           # still grey, not the input
    assert chroma(repaired[-1][1].astype(np.float32) / 255).mean() > 5.0


@pytest.mark.slow
def test_a_grey_file_is_written_in_colour_only_when_colourised(tmp_path: Path, ddcolor_file: Path) -> None:
    from PIL import Image

    from restorer.jobs import JobSettings, Outputs, restore_file

    registry = default_registry(weight_check=lambda w: w == WEIGHT_ID, weight_path=lambda w: ddcolor_file,
                                device="cpu")
    pipeline = Pipeline(registry, triage_id="triage.heuristic",
                        auto=AutoMethods(deblur=None, colour="colour.ddcolor"))
    source = tmp_path / "grey.png"
    Image.fromarray((grey_print(64, 96)[..., 0] * 255).round().astype(np.uint8), "L").save(source)
    options = {"colour.ddcolor": {"working_size": 256}}
    restore_file(pipeline, source, Outputs(image=tmp_path / "same.png"), JobSettings(options=options))
    assert Image.open(tmp_path / "same.png").mode == "L"
    restore_file(pipeline, source, Outputs(image=tmp_path / "colour.png"),
                 JobSettings(options=options, colourise=True))
    written = np.asarray(Image.open(tmp_path / "colour.png"))
    assert written.ndim == 3 and chroma(written.astype(np.float32) / 255).mean() > 5.0


def test_cli_refuses_colourise_in_manual_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from restorer.cli import main

    source = tmp_path / "in.png"
    Image.fromarray(np.full((32, 32), 128, np.uint8), "L").save(source)
    code = main(["restore", str(source), "-o", str(tmp_path / "out.png"), "--mode", "manual",
                 "--stages", "inpaint", "--colourise"])
    assert code != 0 and "--colourise is for --mode auto" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()
