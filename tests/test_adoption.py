"""The project's own learned stages compute what they did before they ran through the runtime.

The fingerprints in ``adoption_fingerprints.json`` were recorded by ``python
tests/adoption_support.py`` with the code of main at f896903 on ``PYTHONPATH``, before
detect.segnet, detect.print, detect.learned, triage.net, inpaint.gan and face.gfpgan were moved
onto restorer.runtime.ModelRuntime (CPU, one torch thread, seeded generated photos; face with
seeded stand-in weights); detect.print's with the code of issue 26's flip-averaged cracks
(eff4426's spot ring test, and its cracks averaged over the photo's flips: a change of
behaviour, measured in docs/damage.md). triage.net's then ran on TensorFlow; it now runs in torch (the same fingerprint). Arrays
are compared block by block to 2e-4 (adoption_support explains why not a hash). A changed
fingerprint means a stage's output changed: find out why before re-recording it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import adoption_support as support

RECORDED = json.loads((Path(__file__).parent / "adoption_fingerprints.json").read_text())


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    from restorer.backends import torch_stack

    before = support.one_torch_thread()
    yield
    torch_stack()[0].set_num_threads(before)


@pytest.mark.parametrize("stage_id", sorted(support.FINGERPRINTS))
def test_output_is_unchanged_by_the_runtime(stage_id):
    assert support.matches(support.FINGERPRINTS[stage_id](), RECORDED[stage_id]) == []


def test_a_changed_output_is_caught():
    """The comparison is not blind: a block's mean moved by 1e-3, a flipped mask pixel of a
    small mask and a changed label all show."""
    image = np.random.default_rng(0).random((40, 48, 3), dtype=np.float32)
    mask = np.zeros((40, 48), bool)
    mask[3, 4] = True
    recorded = support.fingerprint([image, mask, {"label": "cracked"}])
    assert support.matches(support.fingerprint([image, mask, {"label": "cracked"}]), recorded) == []
    brighter = image.copy()
    brighter[:10, :12] += 1e-3
    moved = mask.copy()
    moved[3, 4], moved[30, 40] = False, True
    for changed in ([brighter, mask, {"label": "cracked"}], [image, moved, {"label": "cracked"}],
                    [image, mask, {"label": "clean"}]):
        assert support.matches(support.fingerprint(changed), recorded) != []


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
