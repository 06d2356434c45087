"""The scripting interface: python -m restorer restore ..."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from restorer import synth
from restorer.cli import main
from restorer.imaging import load_image, save_image, save_mask


@pytest.fixture
def cracked_file(photos, tmp_path):
    damaged = synth.damage(photos["coffee"], np.random.default_rng(4))
    return save_image(damaged.image, tmp_path / "cracked.png")


@pytest.mark.slow
def test_restore_auto_writes_image_mask_and_report(cracked_file, tmp_path):
    out, mask, report = tmp_path / "out.png", tmp_path / "mask.png", tmp_path / "r.json"
    code = main(["restore", str(cracked_file), "-o", str(out), "--mask-out", str(mask),
                 "--report", str(report)])
    assert code == 0
    image = load_image(out)
    assert image.shape == load_image(cracked_file).shape
    data = json.loads(report.read_text())
    assert set(data["labels"]) == {"clean", "blurred", "cracked", "blurred+cracked"}
    assert data["plan"] and all(s["seconds"] >= 0 for s in data["stages"])
    mask_pixels = np.asarray(Image.open(mask))
    assert mask_pixels.shape == image.shape[:2]
    assert set(np.unique(mask_pixels)) <= {0, 255}
    assert abs((mask_pixels == 255).mean() - data["defect_fraction"]) < 1e-6


def test_manual_with_user_mask_changes_only_the_mask(photos, tmp_path):
    src = save_image(photos["chelsea"], tmp_path / "in.png")
    mask = np.zeros(photos["chelsea"].shape[:2], bool)
    mask[40:50, 60:160] = True
    mask_path = save_mask(mask, tmp_path / "m.png")
    out = tmp_path / "out.png"
    assert main(["restore", str(src), "-o", str(out), "--mode", "manual",
                 "--stages", "inpaint:ns", "--mask", str(mask_path)]) == 0
    before, after = np.asarray(Image.open(src)), np.asarray(Image.open(out))
    np.testing.assert_array_equal(before[~mask], after[~mask])
    assert (before[mask] != after[mask]).any()


def test_stage_options_are_passed(cracked_file, tmp_path):
    report = tmp_path / "r.json"
    assert main(["restore", str(cracked_file), "-o", str(tmp_path / "o.png"), "--mode",
                 "manual", "--stages", "detect:morph,inpaint:telea",
                 "--set", "detect.morph.sensitivity=0.9", "--report", str(report)]) == 0
    stages = json.loads(report.read_text())["stages"]
    detect = [s for s in stages if s["id"] == "detect.morph" and s["options"]["sensitivity"] == 0.9]
    assert detect


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--mode", "manual", "--stages", "deblur,inpaint"], "must come before"),
        (["--mode", "manual"], "needs --stages"),
        (["--mode", "manual", "--stages", "paint"], "unknown stage kind"),
    ],
)
def test_bad_requests_exit_nonzero_without_output(cracked_file, tmp_path, capsys, extra, message):
    out = tmp_path / "never.png"
    assert main(["restore", str(cracked_file), "-o", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_not_an_image_is_refused(tmp_path, capsys):
    fake = tmp_path / "fake.jpg"
    fake.write_text("<html>hello</html>")
    assert main(["restore", str(fake), "-o", str(tmp_path / "o.png")]) == 2
    assert "an HTML page, not a photo" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.jpg"]


@pytest.mark.slow
def test_batch_folder(photos, tmp_path, capsys):
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    for name in ("coffee", "chelsea"):
        save_image(synth.damage(photos[name], np.random.default_rng(5)).image, inbox / f"{name}.jpg")
    (inbox / "broken.png").write_bytes(b"nope")
    code = main(["restore", str(inbox), "-o", str(outbox), "--report", str(tmp_path / "rep")])
    assert code == 1  # one file failed, the others were restored
    assert sorted(p.name for p in outbox.iterdir()) == ["chelsea.png", "coffee.png"]
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == ["chelsea.json", "coffee.json"]
    assert "broken.png" in capsys.readouterr().err
