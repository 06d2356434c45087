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


def test_crop_to_print_flag_cuts_photo_and_mask_to_the_print_and_reports_it(photos, tmp_path,
                                                                            capsys):
    from restorer.cli import build_parser
    from restorer.synth_tone import mount

    parse = build_parser().parse_args
    assert parse(["restore", "a.png", "-o", "b.png"]).crop_to_print is False
    assert parse(["restore", "a.png", "-o", "b.png", "--crop-to-print"]).crop_to_print is True
    mounted = mount(synth.damage(photos["astronaut"], np.random.default_rng(2)).image, 1,
                    max_angle=0.0)
    src = save_image(mounted.image, tmp_path / "mounted.png")
    original = src.read_bytes()
    out, mask, report = tmp_path / "out.png", tmp_path / "mask.png", tmp_path / "r.json"
    assert main(["restore", str(src), "-o", str(out), "--mask-out", str(mask), "--report",
                 str(report), "--mode", "manual", "--stages", "detect:morph,inpaint:telea",
                 "--crop-to-print"]) == 0
    crop = json.loads(report.read_text())["crop_to_print"]
    assert crop["cropped"] is True
    assert max(abs(a - b) for a, b in zip(crop["box"], mounted.box)) <= 2
    x0, y0, x1, y1 = crop["box"]
    assert Image.open(out).size == Image.open(mask).size == (x1 - x0, y1 - y0)
    assert (np.asarray(Image.open(mask)) == 255).any()               # the cracks, cut likewise
    assert f"cropped to the print: {x1 - x0} x {y1 - y0} px" in capsys.readouterr().out
    assert src.read_bytes() == original                                # the scan is kept whole

    plain = save_image(photos["coffee"], tmp_path / "coffee.png")
    assert main(["restore", str(plain), "-o", str(out), "--report", str(report), "--mode",
                 "manual", "--stages", "detect:morph", "--crop-to-print"]) == 0
    assert json.loads(report.read_text())["crop_to_print"]["cropped"] is False
    assert Image.open(out).size == Image.open(plain).size
    assert "no mount or scanner bed found round the print: not cropped" in capsys.readouterr().out
