"""The project's own learned stages compute what they did before they ran through the runtime.

The digests below were recorded by ``tests/adoption_support.py`` from main at f896903, before
detect.segnet, detect.print, detect.learned, triage.net, inpaint.gan and face.gfpgan were moved
onto restorer.runtime.ModelRuntime (CPU, one torch thread, seeded generated photos; face with
seeded stand-in weights). Masks are hashed exactly, images and probabilities rounded to 1e-4.
A changed digest means a stage's output changed: find out why before re-recording it.
"""

from __future__ import annotations

import pytest

import adoption_support as support

#: Digests from main at f896903 (python tests/adoption_support.py); detect.print's from main at
#: eff4426, whose spot detector has the ring test (the same digest before and after adoption);
#: triage.net's with its labels rounded to 1e-4, from main at eff4426 (TensorFlow) and equal
#: on the merged code (Keras' torch backend).
RECORDED = {
    "detect.segnet": "0260f805e37fa59f",
    "detect.print": "f639086878db91b3",
    "detect.learned": "8a78dad8008dc4ff",
    "triage.net": "3377185cd1949ef3",
    "inpaint.gan": "8bf18e08330742f0",
    "face.gfpgan": "30def701cb3aa42f",
}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    from restorer.backends import torch_stack

    before = support.one_torch_thread()
    yield
    torch_stack()[0].set_num_threads(before)


@pytest.mark.parametrize("stage_id", sorted(RECORDED))
def test_output_is_unchanged_by_the_runtime(stage_id):
    assert support.DIGESTS[stage_id]() == RECORDED[stage_id]


def test_learned_stages_report_how_they_ran():
    """Each adopted stage's info records device, precision and tiling (the report's runtime)."""
    from restorer.stages.detect_learned import DescriptorDetector, SegmentationDetector
    from restorer.stages.inpaint_gan import LearnedInpainter

    image, mask = support.damaged_photo()
    for stage, damage in ((SegmentationDetector(support.weight_path("detect_segnet")), None),
                          (DescriptorDetector(support.weight_path("detect_mlp")), None),
                          (LearnedInpainter(support.weight_path("inpaint_gan"), device="cpu"),
                           mask)):
        runtime = support._run(stage, image, damage).info["runtime"]
        assert runtime["device"] == "cpu" and runtime["precision"] == "fp32"
        assert runtime["tiles"] >= 1 and runtime["notes"] == []


def test_the_report_gathers_how_each_learned_stage_ran(tmp_path):
    """RestoreResult.report()'s "runtime" has one record per learned stage that ran."""
    from restorer import Pipeline, Registry, StageEntry
    from restorer.planner import AutoMethods
    from restorer.stages.detect_learned import SegmentationDetector
    from restorer.stages.inpaint import TeleaInpainter
    from restorer.stages.triage import HeuristicTriage

    registry = Registry([
        StageEntry(HeuristicTriage.spec, HeuristicTriage),
        StageEntry(SegmentationDetector.spec,
                   lambda: SegmentationDetector(support.weight_path("detect_segnet"), device="cpu")),
        StageEntry(TeleaInpainter.spec, TeleaInpainter)], weight_check=lambda weight_id: True)
    pipeline = Pipeline(registry, auto=AutoMethods(detect="detect.segnet", deblur=None))
    report = pipeline.run(support.damaged_photo()[0]).report()
    assert report["runtime"]["detect.segnet"]["device"] == "cpu"
    assert set(report["runtime"]) == {"detect.segnet"}
