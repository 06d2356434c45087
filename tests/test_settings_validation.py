"""Stage settings are checked against their declared type and range before any work, in
Manual and in Auto (where ``--set`` applies to the stages Auto picks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cli_support import assert_one_line_error, files_under, photo_array, png_bytes
from restorer.cli import main
from restorer.errors import PlanError
from restorer.imaging import load_image
from restorer.service import ServiceConfig, build_pipeline


@pytest.fixture(scope="module")
def pipeline():
    return build_pipeline(ServiceConfig(offline=True))


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    path.write_bytes(png_bytes(photo_array()))
    return path


@pytest.mark.parametrize("value, words", [
    ("5", "from 0 to 1"), ("-0.2", "from 0 to 1"), ("NaN", "from 0 to 1"),
    ("Infinity", "from 0 to 1"), ("abc", "from 0 to 1"), ("[0.5]", "from 0 to 1"),
])
@pytest.mark.parametrize("mode", ["manual", "auto"])
def test_bad_values_are_refused_before_any_work(value, words, mode, photo, tmp_path, capsys):
    stages = ["--mode", "manual", "--stages", "detect:morph,inpaint"] if mode == "manual" \
        else ["--mode", "auto"]
    option = "detect.morph.sensitivity"
    if mode == "auto":
        option = f"{build_pipeline(ServiceConfig(offline=True)).auto.detect}.sensitivity"
    code = main(["restore", str(photo), "-o", str(tmp_path / "o.png"), *stages, "--set",
                 f"{option}={value}"])
    assert code == 2
    assert_one_line_error(capsys.readouterr().err, option, words)
    assert files_under(tmp_path) == ["photo.png"]


def test_a_stage_auto_never_runs_is_refused(photo, tmp_path, capsys):
    assert main(["restore", str(photo), "-o", str(tmp_path / "o.png"), "--set",
                 "inpaint.exemplar.radius=4"]) == 2
    assert_one_line_error(capsys.readouterr().err, "inpaint.exemplar", "Auto may run")
    assert files_under(tmp_path) == ["photo.png"]


def test_set_reaches_the_stages_auto_runs(pipeline, photo, tmp_path, capsys):
    report = tmp_path / "r.json"
    detect = pipeline.auto.detect
    assert main(["restore", str(photo), "-o", str(tmp_path / "o.png"), "--report", str(report),
                 "--set", f"{detect}.sensitivity=0.8", "--set", "deblur.rl.iterations=3"]) == 0
    data = json.loads(report.read_text())
    ran = {s["id"]: s["options"] for s in data["stages"]}
    for stage_id, name, value in [(detect, "sensitivity", 0.8), ("deblur.rl", "iterations", 3)]:
        if stage_id in ran:
            assert ran[stage_id][name] == value
        else:  # picked by Auto only for some photos: then it is reported as unused
            assert stage_id in data["options_unused"]
    assert detect in ran or detect in data["options_unused"]


def test_pipeline_applies_options_and_reports_unused_ones(pipeline, photos):
    image = load_image(photos["coffee"][:96, :128])
    result = pipeline.run(image, options={"deblur.rl": {"iterations": 2},
                                          pipeline.auto.detect: {"sensitivity": 0.3}})
    records = {r.id: r for r in result.stages}
    assert pipeline.auto.detect in records or pipeline.auto.detect in result.options_unused
    if "deblur.rl" in records:
        assert records["deblur.rl"].options["iterations"] == 2
    else:
        assert "deblur.rl" in result.options_unused
    with pytest.raises(PlanError, match="whole number from 1 to 100"):
        pipeline.run(image, options={"deblur.rl": {"iterations": 0}})
    with pytest.raises(PlanError, match="never runs"):
        pipeline.run(image, options={"inpaint.ns": {"radius": 3}})


def test_memory_sizing_options_have_bounds(pipeline):
    # Values that size memory or time are bounded so a 24 MP photo stays within limits.
    specs = {s.id: s for s in pipeline.registry.specs()}
    bounded = {("inpaint.exemplar", "radius"): 12, ("deblur.rl", "tile"): 16384,
               ("deblur.rl", "iterations"): 100, ("detect.morph", "dilate"): 16}
    for (stage_id, name), high in bounded.items():
        with pytest.raises(PlanError):
            specs[stage_id].resolve_options({name: high + 1})
    assert np.isfinite([o.high for s in specs.values() for o in s.options.values()
                        if o.kind in ("number", "integer")]).all()
