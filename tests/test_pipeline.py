"""The pipeline: results with every intermediate, auto/manual runs, tone, deblur, failures."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio as psnr

from restorer import (PlanError, Pipeline, Registry, StageEntry, StageError, StageKind,
                      StageOutput, StageSpec, TriageResult, default_registry, plan_manual, synth)
from restorer.ops import luminance
from restorer.registry import StageUnavailableError
from restorer.service import ServiceConfig, build_pipeline
from restorer.stages.base import Option
from restorer.stages.deblur import deblur, estimate_blur_sigma, estimate_blur_sigmas
from restorer.stages.detect import MorphologicalDetector
from restorer.stages.inpaint import TeleaInpainter
from restorer.tone import analyse_tone


class FixedTriage:
    """A triage that says what it is told (pipeline logic tested apart from measurement)."""

    spec: ClassVar[StageSpec] = StageSpec(
        id="triage.fixed", kind=StageKind.TRIAGE, method="fixed", title="Fixed", description="",
        produces=frozenset({"triage"}),
        options={"blurred": Option.flag(False), "cracked": Option.flag(False)})

    def run(self, work, options: Mapping[str, Any], progress) -> StageOutput:
        b, c = bool(options["blurred"]), bool(options["cracked"])
        label = {(False, False): "clean", (True, False): "blurred", (False, True): "cracked",
                 (True, True): "blurred+cracked"}[(b, c)]
        conf = {k: (1.0 if k == label else 0.0) for k in ("clean", "blurred", "cracked",
                                                           "blurred+cracked")}
        return StageOutput(triage=TriageResult(conf, b, c, "fixed"))


class Exploding:
    spec: ClassVar[StageSpec] = StageSpec(
        id="deblur.boom", kind=StageKind.DEBLUR, method="boom", title="Boom", description="")
    calls = 0

    def run(self, work, options, progress) -> StageOutput:
        Exploding.calls += 1
        if Exploding.calls == 1:
            raise RuntimeError("kaboom")
        return StageOutput(image=work.image)


def _registry(**triage: bool) -> Registry:
    spec = FixedTriage.spec
    flags = {"blurred": False, "cracked": False, **triage}
    fixed = StageSpec(**{**spec.__dict__,
                         "options": {name: Option.flag(value) for name, value in flags.items()}})
    cls = type("T", (FixedTriage,), {"spec": fixed})
    return Registry([StageEntry(fixed, cls),
                     StageEntry(MorphologicalDetector.spec, MorphologicalDetector),
                     StageEntry(TeleaInpainter.spec, TeleaInpainter),
                     StageEntry(Exploding.spec, Exploding)])


@pytest.fixture
def cracked(photos):
    return synth.damage(photos["chelsea"], np.random.default_rng(1))


def test_auto_run_returns_every_intermediate(cracked):
    result = Pipeline(default_registry()).run(cracked.image)
    assert result.triage is not None and result.triage.cracked
    assert result.plan.ids == ("detect.morph", "inpaint.telea")
    assert [r.id for r in result.stages] == ["detect.morph", "triage.heuristic", "inpaint.telea"]
    assert result.mask is not None and result.mask.shape == cracked.image.shape[:2]
    assert result.inpainted and set(result.timings) == {r.id for r in result.stages}
    assert all(r.seconds >= 0 for r in result.stages)
    assert result.stages[-1].image is result.image
    report = result.report()
    assert report["label"] == result.triage.label and report["plan"] == list(result.plan.ids)
    assert psnr(cracked.clean, result.image, data_range=1) > psnr(cracked.clean, cracked.image,
                                                                  data_range=1)


_THIN_STRUCTURES_XFAIL = pytest.mark.xfail(
    strict=True, reason="known defect of the fallback without weights: the morphological "
    "detector also flags real thin structures (flag stripes, suit seams, tripod legs), so Auto "
    "inpaints real detail and whole-photo PSNR drops (astronaut 26.8 -> 26.3 dB, camera 25.7 -> "
    "25.5); with the bundled weights Auto detects with detect.segnet and improves both "
    "(test_shipped_auto_improves_busy_photos)")


@pytest.mark.parametrize("name", ["coffee", "chelsea",
                                  pytest.param("astronaut", marks=_THIN_STRUCTURES_XFAIL),
                                  pytest.param("camera", marks=_THIN_STRUCTURES_XFAIL)])
def test_auto_improves_busy_photos(photos, name):
    damaged = synth.damage(photos[name], np.random.default_rng(1))
    result = Pipeline(default_registry()).run(damaged.image)
    assert psnr(damaged.clean, result.image, data_range=1) > psnr(damaged.clean, damaged.image,
                                                                  data_range=1)


@pytest.fixture(scope="module")
def shipped_pipeline() -> Pipeline:
    """The pipeline the app and the CLI build: bundled weights, offline."""
    return build_pipeline(ServiceConfig(offline=True))


@pytest.mark.parametrize("name", ["coffee", "chelsea", "astronaut", "camera"])
def test_shipped_auto_improves_busy_photos(photos, shipped_pipeline, name):
    """With the bundled weights Auto detects with detect.print (the SegNet followed along
    cracks), which leaves the thin real structures alone that fail the morphological Auto."""
    assert shipped_pipeline.auto.detect == "detect.print"
    damaged = synth.damage(photos[name], np.random.default_rng(1))
    result = shipped_pipeline.run(damaged.image)
    assert result.plan.ids[:2] == ("detect.print", "inpaint.telea"), result.plan.ids
    assert psnr(damaged.clean, result.image, data_range=1) > psnr(damaged.clean, damaged.image,
                                                                  data_range=1) + 1.0


def test_clean_photo_is_returned_untouched(photos):
    image = photos["chelsea"]
    result = Pipeline(_registry(), triage_id="triage.fixed").run(image)
    assert result.image is image and result.plan.stages == () and "clean" in result.message


def test_user_mask_replaces_detection(photos):
    image = photos["coffee"]
    mask = np.zeros(image.shape[:2], bool)
    mask[50:60, 50:200] = True
    registry = default_registry()
    plan = plan_manual(["inpaint.ns"], {s.id: s for s in registry.specs()}, has_mask=True)
    result = Pipeline(registry).run(image, plan, mask=mask)
    assert "detect.morph" not in result.timings
    np.testing.assert_array_equal(result.mask, mask)
    np.testing.assert_array_equal(result.image[~mask], image[~mask])


def test_stage_failure_names_stage_and_next_run_works(photos):
    pipeline = Pipeline(_registry(blurred=True), triage_id="triage.fixed")
    from restorer.planner import AutoMethods
    pipeline.auto = AutoMethods(deblur="deblur.boom")
    Exploding.calls = 0
    with pytest.raises(StageError, match="deblur.boom.*kaboom"):
        pipeline.run(photos["coffee"])
    assert pipeline.run(photos["coffee"]).plan.ids == ("deblur.boom",)


def test_mask_of_wrong_shape_refused(photos):
    with pytest.raises(Exception, match="mask"):
        Pipeline(default_registry()).run(photos["coffee"], mask=np.zeros((3, 3), bool))


def test_stage_needing_missing_weights_is_unavailable():
    spec = StageSpec(id="face.x", kind=StageKind.FACE, method="x", title="X", description="",
                     weights=("gfpgan_v1_4",))
    registry = Registry([StageEntry(spec, object)], weight_check=lambda wid: False)
    assert not registry.is_available("face.x")
    with pytest.raises(StageUnavailableError, match="weights pull gfpgan_v1_4"):
        registry.build("face.x")


def test_duplicate_stage_ids_refused():
    entry = StageEntry(TeleaInpainter.spec, TeleaInpainter)
    with pytest.raises(ValueError, match="twice"):
        Registry([entry, entry])


def test_unknown_stage_lists_known_ones():
    with pytest.raises(PlanError, match="known stages: .*inpaint.telea"):
        default_registry().spec("inpaint.nope")


def test_grayscale_stays_grayscale_through_deblur(photos):
    gray = np.repeat(photos["camera"][..., :1], 3, axis=2)
    blurred = cv2.GaussianBlur(gray, (0, 0), 2.0)
    registry = default_registry()
    plan = plan_manual(["deblur.rl"], {s.id: s for s in registry.specs()})
    result = Pipeline(registry).run(blurred, plan)
    assert result.tone.kind == "grayscale"
    assert np.array_equal(result.image[..., 0], result.image[..., 1])
    assert np.array_equal(result.image[..., 1], result.image[..., 2])


def test_sepia_stays_sepia(photos):
    luma = luminance(photos["astronaut"])[..., None]
    sepia = np.clip(luma * np.array([1.07, 0.95, 0.75], np.float32), 0, 1).astype(np.float32)
    assert analyse_tone(sepia).kind == "toned"
    damaged = synth.damage(sepia, np.random.default_rng(2), blurred=True)
    result = Pipeline(default_registry()).run(damaged.image,
                                              plan_manual(["detect.morph", "inpaint.ns",
                                                           "deblur.rl"],
                                                          {s.id: s for s in
                                                           default_registry().specs()}))
    lab_in = cv2.cvtColor(sepia, cv2.COLOR_RGB2Lab)
    lab_out = cv2.cvtColor(result.image, cv2.COLOR_RGB2Lab)
    # Chroma keeps the sepia tint: mean a*/b* within 1.5 units of the original.
    assert abs(lab_out[..., 2].mean() - lab_in[..., 2].mean()) < 1.5
    assert abs(lab_out[..., 1].mean() - lab_in[..., 1].mean()) < 1.5


@pytest.mark.parametrize("sigma", [1.5, 2.5])
def test_deblur_estimates_sigma_and_improves(photos, sigma):
    clean = photos["astronaut"]
    blurred = cv2.GaussianBlur(clean, (0, 0), sigma)
    estimate = estimate_blur_sigma(luminance(blurred))
    # Measured: 1.5 -> 1.33, 2.5 -> 1.95 (edges in the photo are not ideal steps).
    assert 0.6 * sigma < estimate < 1.2 * sigma
    out, used = deblur(blurred)
    assert psnr(clean, out, data_range=1) > psnr(clean, blurred, data_range=1) + 0.3
    assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize("name", ["camera", "chelsea"])
def test_widest_orientation_sees_motion_blur_the_median_underrates(photos, name):
    """An 8 px motion blur widens only the edges across it: the widest orientation's sigma
    stands well above the median over all edges (measured 1.5 to 2.4 x); a sharp or Gaussian
    blurred photo widens all orientations alike (measured at most 1.14 x)."""
    image = photos[name]
    for angle in (0, 45, 90, 135):
        kernel = np.zeros((11, 11), np.float32)
        dx, dy = 4 * np.cos(np.radians(angle)), 4 * np.sin(np.radians(angle))
        cv2.line(kernel, (round(5 - dx), round(5 - dy)), (round(5 + dx), round(5 + dy)), 1.0, 1,
                 cv2.LINE_AA)
        moved = cv2.filter2D(image, -1, kernel / kernel.sum())
        median, widest = estimate_blur_sigmas(luminance(moved))
        assert widest > 1.4 * median and widest > 1.4, (angle, median, widest)
    for alike in (image, cv2.GaussianBlur(image, (0, 0), 2.0)):
        median, widest = estimate_blur_sigmas(luminance(alike))
        assert median <= widest < 1.2 * median
        assert median == estimate_blur_sigma(luminance(alike))


def test_blur_measure_leaves_out_the_edges_it_is_told_to(photos):
    """Sharp dark scratches over a blurred photo pull its edge-width sigma down (their edges
    are sharp); left out by ``exclude``, the sigma is the blurred photo's again."""
    blurred = cv2.GaussianBlur(photos["camera"], (0, 0), 2.5)
    rng = np.random.default_rng(0)
    marks = np.zeros(blurred.shape[:2], np.uint8)
    for _ in range(40):
        x0, y0, x1, y1 = rng.integers(0, min(marks.shape), 4)
        cv2.line(marks, (int(x0), int(y0)), (int(x1), int(y1)), 1, 2)
    scratched = blurred.copy()
    scratched[marks > 0] = 0.05
    luma = luminance(scratched)
    alone = estimate_blur_sigmas(luminance(blurred))
    fooled = estimate_blur_sigmas(luma)
    grown = cv2.dilate(marks, np.ones((3, 3), np.uint8)) > 0
    kept = estimate_blur_sigmas(luma, exclude=grown)
    assert fooled[0] < 0.8 * alone[0]
    assert kept[0] == pytest.approx(alone[0], rel=0.1)
    assert kept[1] == pytest.approx(alone[1], rel=0.1)
    assert estimate_blur_sigmas(luma, exclude=np.zeros_like(grown)) == fooled


def test_deblur_leaves_sharp_photo_alone(photos):
    image = photos["astronaut"]
    out, sigma = deblur(image)
    assert sigma < 1.0
    assert psnr(image, out, data_range=1) > 35.0


class StandInLama:
    """A stage under inpaint.lama's id and weights (pipeline logic apart from the model)."""

    spec: ClassVar[StageSpec] = StageSpec(
        id="inpaint.lama", kind=StageKind.INPAINT, method="lama", title="LaMa stand-in",
        description="", requires=frozenset({"mask"}), weights=("big_lama",),
        options={"time_budget": Option.number(0.0, 0.0, 3600.0)})

    def run(self, work, options, progress) -> StageOutput:
        return TeleaInpainter().run(work, {"radius": 3}, progress)


def test_auto_uses_a_learned_stage_once_its_file_arrives_and_keeps_to_the_budget(cracked):
    """Presence is asked on every Auto run (a background pull may finish between two), the
    report says what was used instead and why, and a budget too small skips it for time."""
    from restorer.planner import AutoMethods

    present = {"big_lama": False}
    entries = list(_registry(cracked=True)._entries.values()) + [
        StageEntry(StandInLama.spec, StandInLama)]
    registry = Registry(entries, weight_check=lambda w: present[w])
    auto = AutoMethods(detect="detect.morph", learned={"inpaint.telea": "inpaint.lama"})
    pipeline = Pipeline(registry, triage_id="triage.fixed", auto=auto, device=lambda: "cpu")
    image = cracked.image

    missing = pipeline.run(image)
    assert missing.plan.ids == ("detect.morph", "inpaint.telea")
    assert "inpaint.telea used instead of inpaint.lama" in missing.auto_notes[0]
    report = missing.report()
    assert report["time_budget_s"] == 20.0
    assert report["device"] is None  # no learned stage could run: torch was not even asked
    assert report["auto_notes"] and "weights pull" in report["auto_notes"][0]

    present["big_lama"] = True                      # the file has arrived
    pulled = pipeline.run(image)
    assert pulled.plan.ids == ("detect.morph", "inpaint.lama")
    assert pulled.stages[-1].options["time_budget"] == pytest.approx(20.0)
    assert not pulled.skipped_for_time and pulled.report()["device"] == "cpu"

    hurried = pipeline.run(image, time_budget=0.5)  # one 512 px pass takes seconds on a CPU
    assert hurried.plan.ids == ("detect.morph", "inpaint.telea")
    assert hurried.skipped_for_time == ("inpaint.lama",)
    assert "to stay within the 0.5 s budget" in hurried.report()["auto_notes"][0]
    assert pipeline.run(image, time_budget=float("inf")).report()["time_budget_s"] is None
    # Manual plans are not weighed (the user chose), and say no budget.
    manual = pipeline.run(image, plan_manual(["detect.morph", "inpaint.lama"], registry_specs(registry)))
    assert manual.plan.ids == ("detect.morph", "inpaint.lama") and manual.time_budget is None


def registry_specs(registry: Registry) -> dict[str, StageSpec]:
    return {s.id: s for s in registry.specs()}


def test_shipped_auto_fills_a_missing_corner_and_says_large_holes_need_lama(photos,
                                                                            shipped_pipeline):
    """A torn-off corner: triage calls the photo torn, detect.print finds the hole, and the
    inpainter fills it; without Big-LaMa's file the note says the classical one stood in.
    Measured on chelsea (2026-12-08): every hole pixel changed, 0.13 % of the pixels 12 px or
    more from it, the error in the hole 0.45 -> 0.16."""
    from restorer.masks import grow

    photo = cv2.resize(photos["chelsea"], (225, 150), interpolation=cv2.INTER_AREA)
    truth = np.zeros(photo.shape[:2], np.uint8)
    cv2.fillPoly(truth, [np.array([[0, 0], [90, 0], [63, 27], [36, 45], [18, 72], [0, 90]],
                                  np.int32)], 1)
    truth = truth > 0
    damaged = photo.copy()
    damaged[truth] = np.array([0.95, 0.93, 0.86], np.float32)
    result = shipped_pipeline.run(damaged)
    assert result.triage.labels["torn"] >= 0.5 and "torn" in result.triage.found
    assert "tears or missing parts" in result.plan.reason
    assert "large-hole inpainter inpaint.lama" in result.plan.reason
    moved = np.abs(result.image - damaged).max(axis=2) > 1 / 255
    assert moved[truth].mean() > 0.95
    assert moved[~grow(truth, 12)].mean() < 0.01
    assert (np.abs(result.image - photo)[truth].mean()
            < 0.5 * np.abs(damaged - photo)[truth].mean())
    if "inpaint.lama" not in result.plan.ids:
        assert any("inpaint.lama" in note for note in result.auto_notes), result.auto_notes
    from restorer.page import result_note

    note = result_note(result)  # the page: the label's confidence, the legend, the inpainter
    assert "torn" in note and "magenta" in note and "large-hole inpainter" in note, note
    assert not shipped_pipeline.run(photo).plan.stages  # the clean photo is left alone
