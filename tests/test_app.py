"""The web app through its named API endpoints (/restore, /detect), served for real.

The page is launched once per module on 127.0.0.1 (queued, concurrency 2) and driven with
gradio_client, offline and on CPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _app_server import ROOT, TRIAGE_CLASSES, save_cracked_photo, serve  # noqa: I001
from test_bad_uploads import REFUSED

from gradio_client import Client, handle_file  # noqa: E402  (after _app_server's env setup)
from gradio_client.exceptions import AppError  # noqa: E402

# /restore inputs after the photo and mode: kinds, detect_id, sensitivity, inpaint_id,
# deblur_id, mask_file.
DEFAULTS = dict(detect_id="detect.morph", sensitivity=0.5, inpaint_id="inpaint.telea",
                deblur_id="deblur.rl")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from restorer.model_status import ModelStatus
    from restorer.service import ServiceConfig, build_store

    models = ModelStatus(build_store(ServiceConfig(offline=True)), ["big_lama"])
    with serve(tmp_path_factory.mktemp("gradio-cache"), models=models) as url:
        yield url


@pytest.fixture(scope="module")
def client(server, tmp_path_factory):
    return Client(server, verbose=False, download_files=str(tmp_path_factory.mktemp("dl")))


@pytest.fixture(scope="module")
def cracked(tmp_path_factory):
    """(path of the cracked PNG, synth truth, the PNG's pixels as uint8 (H, W, 3))."""
    path, damaged = save_cracked_photo(tmp_path_factory.mktemp("photo"))
    return path, damaged, np.asarray(Image.open(path).convert("RGB"))


#: face_id, fidelity, which faces, min face size, upscale (the /restore inputs after the mask).
FACE_DEFAULTS = ("face.gfpgan", 0.7, "all", 64, 1)


def restore(client, photo, mode="Auto", kinds=(), mask=None, **options):
    args = {**DEFAULTS, **options}
    return client.predict(handle_file(str(photo)), mode, list(kinds), args["detect_id"],
                          args["sensitivity"], args["inpaint_id"], args["deblur_id"],
                          handle_file(str(mask)) if mask is not None else None,
                          api_name="/restore")


def unpack(result):
    """Name the nine outputs; image outputs are downloaded file paths."""
    note, labels, slider, overlay, mask, restored, timings, report, editor = result
    return dict(note=note, labels=labels, slider=slider, overlay=overlay, mask=mask,
                restored=restored, timings=timings, report=report, editor=editor)


def pixels(path, mode="RGB"):
    with Image.open(path) as image:
        return np.asarray(image.convert(mode))


def check_labels(labels, report):
    """gr.Label's value: the independent damage labels (not the four exclusive classes), each
    its own confidence in [0, 1], the same as the report's damage_labels; Auto's finding
    (cracked) among them at 50 % or more."""
    confidences = {c["label"]: c["confidence"] for c in labels["confidences"]}
    assert set(confidences) == set(report["damage_labels"]) >= {"blurred", "cracked"}
    assert not set(confidences) & (TRIAGE_CLASSES - {"blurred", "cracked"})  # no "clean"
    assert all(0.0 <= v <= 1.0 for v in confidences.values())
    assert confidences == pytest.approx(report["damage_labels"], rel=1e-3)  # shown to 4 digits
    assert confidences["cracked"] >= 0.5 and "cracked" in report["damage_found"]


# ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_named_endpoints_are_the_public_api(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/restore", "/detect", "/models"}
    assert [p["parameter_name"] for p in api["named_endpoints"]["/detect"]["parameters"]] == [
        "photo", "detect_id", "sensitivity"]
    restore_params = [p["parameter_name"] for p in api["named_endpoints"]["/restore"]["parameters"]]
    # New inputs come last, with defaults: older scripts' positional calls keep working.
    assert restore_params[-3:] == ["time_budget", "colourise", "crop_to_print"]
    assert restore_params[:2] == ["photo", "mode"]
    assert api["named_endpoints"]["/models"]["parameters"] == []


@pytest.mark.slow
def test_models_panel_lists_each_file_with_state_licence_and_size(client):
    table = client.predict(api_name="/models")
    rows = {row[0]: row for row in table["data"]}
    assert table["headers"] == ["model", "stage", "status", "licence", "size (MB)"]
    assert rows["detect_segnet"][2] == "present"                     # bundled
    lama = rows["big_lama"]
    assert lama[2].startswith("unavailable: offline mode is on")     # this server is offline
    assert "python -m restorer weights pull big_lama" in lama[2]
    assert lama[3] == "Apache-2.0" and lama[4] == pytest.approx(205.7, abs=0.1)
    assert "weights lock" in rows["bopbtl_scratch"][2]


@pytest.mark.slow
def test_restore_auto_inpaints_only_the_detected_cracks(client, cracked):
    photo, damaged, before = cracked
    out = unpack(restore(client, photo, "Auto"))
    report = out["report"]
    check_labels(out["labels"], report)
    assert "cracked" in report["label"]
    # Only inpainting changes pixels in this plan (no deblur): the check below relies on it.
    assert report["plan"] == ["detect.print", "inpaint.telea"], report["plan"]
    assert report["inpainted"] is True and report["size"] == [before.shape[1], before.shape[0]]

    mask = pixels(out["mask"], "L")
    restored = pixels(out["restored"])
    assert Image.open(out["restored"]).format == "PNG"
    assert mask.shape == before.shape[:2] and restored.shape == before.shape
    assert set(np.unique(mask)) <= {0, 255}
    defects = mask == 255
    assert defects.mean() == pytest.approx(report["defect_fraction"], rel=1e-3)
    assert 0.01 < defects.mean() < 0.5

    changed = np.abs(restored.astype(int) - before.astype(int)).max(axis=2)
    assert changed[~defects].max() <= 1, "pixels outside the mask were modified"
    assert (changed[defects] > 0).mean() > 0.5, "most masked pixels should be repainted"
    # Inpainting brings the cracked pixels back towards the undamaged photo.
    truth = damaged.mask & defects
    clean = (damaged.clean * 255.0 + 0.5).astype(int)
    err_before = np.abs(before.astype(int) - clean)[truth].mean()
    err_after = np.abs(restored.astype(int) - clean)[truth].mean()
    assert err_after < 0.6 * err_before, (err_before, err_after)

    # Secondary outputs are consistent with the run.
    # The plot comes as an update (its value plus the run order as the bar order).
    plot = out["timings"]
    assert plot["sort"] == [s["id"] for s in report["stages"]]
    assert [row[0] for row in plot["value"]["data"]] == [s["id"] for s in report["stages"]]
    assert "(triage found cracks)" in out["note"] and "inpainted" in out["note"]
    overlay = pixels(out["overlay"])
    assert overlay.shape == before.shape
    assert (overlay[~defects] == before[~defects]).all()
    assert (overlay[defects][:, 0].astype(int) > before[defects][:, 0]).mean() > 0.5  # red tint
    assert len(out["slider"]) == 2 and all(Image.open(p).size == (512, 512)
                                           for p in out["slider"])


@pytest.mark.slow
def test_auto_colourise_without_the_model_is_refused_in_one_line_with_the_reason(client, cracked):
    """DDColor's manifest entry has no sha256 here: ticking Colourise gives the registry's
    reason as the page's message, not a crash and not a silently grey result."""
    with pytest.raises(AppError) as caught:
        client.predict(handle_file(str(cracked[0])), "Auto", [], *DEFAULTS.values(), None,
                       *FACE_DEFAULTS, 20.0, True, api_name="/restore")
    message = str(caught.value)
    assert message.startswith("Colourisation is unavailable: weights not usable here")
    assert "weights lock" in message and "\n" not in message and "Traceback" not in message


@pytest.mark.slow
def test_crop_to_print_cuts_the_result_and_the_slider_to_the_print(client, tmp_path):
    """The crop checkbox through the API (a keyword after the older inputs): the restored
    photo and the whole run's before/after are the print; the mask stays the scan's."""
    from skimage import data

    from restorer.imaging import save_image
    from restorer.synth_tone import mount

    mounted = mount(data.astronaut().astype(np.float32) / 255.0, 0, max_angle=0.0)
    photo = save_image(mounted.image, tmp_path / "mounted.png")
    out = unpack(client.predict(handle_file(str(photo)), "Auto", [], *DEFAULTS.values(), None,
                                crop_to_print=True, api_name="/restore"))
    crop = out["report"]["crop_to_print"]
    x0, y0, x1, y1 = crop["box"]
    assert crop["cropped"] and max(abs(a - b) for a, b in zip(crop["box"], mounted.box)) <= 2
    assert Image.open(out["restored"]).size == (x1 - x0, y1 - y0)
    assert [Image.open(p).size for p in out["slider"]] == [(x1 - x0, y1 - y0)] * 2
    assert Image.open(out["mask"]).size == (mounted.image.shape[1], mounted.image.shape[0])
    assert "Cropped to the print" in out["note"]


@pytest.mark.slow
def test_face_stage_without_weights_says_how_to_get_them(client, cracked):
    """No face weights here: the page lists the stage as unavailable and a run says why."""
    info = client.view_api(print_info=False, return_format="dict")
    face_choices = [p for p in info["named_endpoints"]["/restore"]["parameters"]
                    if p["parameter_name"] == "face_id"]
    assert face_choices, "the /restore endpoint has no face_id parameter"
    with pytest.raises(Exception, match="weights pull"):
        client.predict(handle_file(str(cracked[0])), "Manual", ["face"], *DEFAULTS.values(), None,
                       *FACE_DEFAULTS, api_name="/restore")


@pytest.mark.slow
def test_manual_inpaint_without_mask_is_refused(client, cracked):
    with pytest.raises(AppError) as caught:
        restore(client, cracked[0], "Manual", kinds=["inpaint"])
    message = str(caught.value)
    assert "needs a defect mask" in message and "Traceback" not in message


@pytest.mark.slow
def test_manual_inpaint_with_uploaded_mask_changes_only_that_square(client, cracked, tmp_path):
    photo, _, before = cracked
    square = np.zeros(before.shape[:2], np.uint8)
    square[200:260, 150:230] = 255
    mask_path = tmp_path / "square.png"
    Image.fromarray(square).save(mask_path)

    out = unpack(restore(client, photo, "Manual", kinds=["inpaint"], mask=mask_path))
    report = out["report"]
    assert report["plan"] == ["inpaint.telea"] and report["inpainted"] is True
    assert "detect.morph" not in [s["id"] for s in report["stages"]]  # the user's mask is used
    assert (pixels(out["mask"], "L") == square).all()
    inside = square == 255
    assert report["defect_fraction"] == pytest.approx(inside.mean(), rel=1e-3)

    restored = pixels(out["restored"])
    assert restored.shape == before.shape
    changed = np.abs(restored.astype(int) - before.astype(int)).max(axis=2)
    assert changed[~inside].max() == 0, "pixels outside the uploaded mask were modified"
    assert (changed[inside] > 0).mean() > 0.5


@pytest.mark.slow
def test_mask_of_another_size_is_refused(client, cracked, tmp_path):
    mask_path = tmp_path / "small.png"
    Image.new("L", (100, 80), 255).save(mask_path)
    with pytest.raises(AppError, match="same size as the photo") as caught:
        restore(client, cracked[0], "Manual", kinds=["inpaint"], mask=mask_path)
    assert "100x80" in str(caught.value) and "512x512" in str(caught.value)


@pytest.mark.slow
@pytest.mark.parametrize("fill, words", [(0, "marks no defect"), (255, "marks 100% of the photo")])
def test_empty_and_all_white_masks_are_refused_in_the_page(client, cracked, tmp_path, fill,
                                                           words):
    mask_path = tmp_path / f"mask{fill}.png"
    Image.new("L", (512, 512), fill).save(mask_path)
    with pytest.raises(AppError, match=words):
        restore(client, cracked[0], "Manual", kinds=["inpaint"], mask=mask_path)


@pytest.mark.slow
def test_detect_returns_labels_and_mask_and_leaves_the_photo(client, cracked):
    photo, damaged, before = cracked
    out = unpack(client.predict(handle_file(str(photo)), "detect.morph", 0.5,
                                api_name="/detect"))
    report = out["report"]
    check_labels(out["labels"], report)
    assert report["plan"] == ["detect.morph"] and report["inpainted"] is False
    assert "not inpainted" in out["note"]

    mask = pixels(out["mask"], "L") == 255
    assert mask.shape == before.shape[:2]
    assert mask.mean() == pytest.approx(report["defect_fraction"], rel=1e-3)
    # The detector finds most of the synthetic cracks.
    assert (mask & damaged.mask).sum() > 0.5 * damaged.mask.sum()
    assert (pixels(out["restored"]) == before).all(), "/detect must not change the photo"


@pytest.mark.slow
def test_detect_sensitivity_reaches_the_detector(client, cracked):
    low = client.predict(handle_file(str(cracked[0])), "detect.morph", 0.1, api_name="/detect")
    high = client.predict(handle_file(str(cracked[0])), "detect.morph", 0.9, api_name="/detect")
    options = [next(s["options"] for s in unpack(r)["report"]["stages"]
                    if s["id"] == "detect.morph" and s["options"]["sensitivity"] != 0.5)
               for r in (low, high)]
    assert [o["sensitivity"] for o in options] == [0.1, 0.9]
    fraction = [unpack(r)["report"]["defect_fraction"] for r in (low, high)]
    assert fraction[0] < fraction[1]


@pytest.fixture
def not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("these are my grandmother's notes, not a photo\n")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("slot", ["photo", "mask"])
def test_text_file_named_png_is_refused_as_not_an_image(client, cracked, not_an_image, slot):
    """restorer's boundary judges the upload (not PIL inside gradio's preprocessing): the
    reply is an ordinary app error event (AppError, not an HTTP 500) with restorer's message,
    no traceback and no server paths."""
    with pytest.raises(AppError) as caught:
        if slot == "photo":
            restore(client, not_an_image)
        else:
            restore(client, cracked[0], "Manual", kinds=["inpaint"], mask=not_an_image)
    message = str(caught.value)
    assert "'notes.png' is not an image this app can read" in message
    assert "Traceback" not in message and "/" not in message.split("(supported")[0]


@pytest.mark.slow
def test_files_not_uploaded_through_the_app_are_refused(server, cracked):
    """The endpoints skip gradio's image preprocessing; gradio must still refuse a path the
    caller did not upload (else any readable file on the server could be sent in)."""
    import httpx

    photo = {"path": str(cracked[0]), "orig_name": "cracked.png",
             "meta": {"_type": "gradio.FileData"}}
    data = [photo, "Auto", [], *DEFAULTS.values(), None, *FACE_DEFAULTS, 20.0, False, False]
    with httpx.Client(base_url=server, timeout=60) as http:
        call = http.post("gradio_api/call/restore", json={"data": data})
        assert call.status_code == 200, call.text
        reply = http.get(f"gradio_api/call/restore/{call.json()['event_id']}").text
    assert reply.startswith("event: error"), reply[:300]
    assert "not uploaded by a user" in reply


def test_importing_restorer_pulls_in_no_ui_or_heavy_model_packages():
    heavy = {"gradio", "gradio_client", "gfpgan", "basicsr", "facexlib", "tensorflow", "keras"}
    code = ("import restorer, restorer.cli, sys; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(heavy)!r}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().replace("'", '"')) == []


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_bad_upload_corpus_gets_its_message_in_the_page(client, kind, tmp_path):
    """Every refused kind of tests/test_bad_uploads.py, uploaded to the page: an app error
    with the same words as on the CLI, no traceback."""
    name, data, words = REFUSED[kind]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(AppError) as caught:
        restore(client, path)
    message = str(caught.value)
    assert words in message.lower() and "Traceback" not in message, message


def test_session_uploads_are_deleted_with_the_last_session_using_them(tmp_path):
    from restorer.page import SessionUploads

    shared, own = tmp_path / "a" / "photo.png", tmp_path / "b" / "photo.png"
    for path in (shared, own):
        path.parent.mkdir()
        path.write_bytes(b"x")
    uploads = SessionUploads()
    uploads.add("s1", str(shared))
    uploads.add("s2", str(shared))  # the same content, uploaded by another tab
    uploads.add("s2", str(own))
    uploads.add(None, str(own))  # not a browser session: not tracked
    assert uploads.forget("s1") == [] and shared.exists()
    assert uploads.forget("s2") == sorted([shared, own])
    assert not shared.exists() and not own.exists() and not shared.parent.exists()
    gone = tmp_path / "c.png"
    uploads.add("s3", str(gone))  # file already removed by gradio's cleaner
    uploads.add("s4", str(shared))
    assert "s3" not in uploads._sessions


def test_cache_janitor_deletes_old_files_and_folders_but_keeps_examples(tmp_path):
    import time

    import gradio as gr

    from restorer.page import CacheJanitor

    def cached(name: str) -> Path:
        path = tmp_path / name / "photo.png"
        path.parent.mkdir()
        path.write_bytes(b"x")
        return path

    old, example = cached("a"), cached("c")
    time.sleep(0.3)
    now = time.time()
    new = cached("b")
    with gr.Blocks() as demo:
        image = gr.Image()
    image.keep_in_cache = {str(example)}
    demo.temp_file_sets.append({str(old), str(new)})
    janitor = CacheJanitor(demo, tmp_path, keep_seconds=0.2)
    assert janitor.sweep(now=now + 0.05) == 1
    assert not old.exists() and not old.parent.exists()  # the file and its emptied folder
    assert example.exists() and new.exists()
    assert demo.temp_file_sets[-1] == {str(new)}


def test_time_budget_field_and_expected_time_line():
    import app
    from restorer.costs import COSTS
    from restorer.errors import RestorerError
    from restorer.page import parse_time_budget
    from restorer.service import ServiceConfig, build_pipeline

    assert parse_time_budget(None) == float("inf") and parse_time_budget("") == float("inf")
    assert parse_time_budget(12) == 12.0
    for bad in (-1, "soon"):
        with pytest.raises(RestorerError, match="time budget"):
            parse_time_budget(bad)
    actions = app.PageActions(build_pipeline(ServiceConfig(offline=True, device="cpu")),
                              app.AppSettings())
    line = actions.expected("deblur.nafnet")
    assert f"about {COSTS['deblur.nafnet'].cpu_s_per_mp:.0f} s on this CPU" in line
    assert "1.0 MP photo" in line
    assert actions.expected("deblur.rl") == "" and actions.expected(None) == ""
