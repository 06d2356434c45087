"""The page and its API refuse bad values with a message, never a stack trace, and the app's
log never holds an uploaded file's name.

The app runs as a subprocess (``python app.py``), as on a Space, so that everything it and
gradio write to stdout and stderr is captured and searched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _app_server import ROOT, free_port  # noqa: I001  (sets the offline environment first)

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

pytestmark = pytest.mark.slow  # serves app.py as a subprocess for the module

SECRET = "grandma-ellis-1931"
"""Part of every uploaded file name: it must never appear in the app's log."""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(gradio client, path of the app's log) for an app served in a subprocess."""
    folder = tmp_path_factory.mktemp("page-errors")
    log_path = folder / "app.log"
    port = free_port()
    env = {**os.environ, "GRADIO_TEMP_DIR": str(folder / "cache"), "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(ROOT)}
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1", "--port",
                                    str(port), "--concurrency", "1"], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        client = None
        deadline = time.monotonic() + 240
        while client is None:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the app did not start"
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False,
                                download_files=str(folder / "dl"))
            except Exception:  # not listening yet
                time.sleep(1)
        yield client, log_path, folder
    finally:
        process.terminate()
        process.wait(timeout=60)


def _photo(folder: Path) -> Path:
    path = folder / f"{SECRET}-portrait.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def _restore(client, photo, mode="Auto", kinds=(), sensitivity=0.5, mask=None, **face):
    face = {"face_id": None, "fidelity": 0.7, "faces": "all", "min_size": 64, "upscale": 1,
            **face}
    return client.predict(handle_file(str(photo)), mode, list(kinds), "detect.morph",
                          sensitivity, "inpaint.telea", "deblur.rl",
                          handle_file(str(mask)) if mask else None, face["face_id"],
                          face["fidelity"], face["faces"], face["min_size"], face["upscale"],
                          api_name="/restore")


def _refused(call, *words) -> str:
    with pytest.raises(AppError) as caught:
        call()
    message = str(caught.value)
    assert "Traceback" not in message, message
    for word in words:
        assert word in message, message
    return message


def test_unknown_mode_is_refused(app):
    client, _, folder = app
    _refused(lambda: _restore(client, _photo(folder), mode="Sideways"),
             "unknown mode 'Sideways'", "Auto or Manual")


@pytest.mark.parametrize("value, words", [(5, "from 0 to 1"), (-0.5, "from 0 to 1"),
                                          ("abc", "sensitivity"), (None, "sensitivity")])
def test_out_of_range_and_non_numeric_settings_are_refused(app, value, words):
    client, _, folder = app
    _refused(lambda: _restore(client, _photo(folder), "Manual", ["detect"], sensitivity=value),
             "detect.morph.sensitivity", words)


@pytest.mark.parametrize("face, words", [({"upscale": 3}, "face.gfpgan.upscale"),
                                         ({"fidelity": "high"}, "face.gfpgan.fidelity"),
                                         ({"fidelity": 7}, "face.gfpgan.fidelity"),
                                         ({"min_size": -5}, "face.gfpgan.min_size")])
def test_face_settings_sent_by_the_api_are_checked(app, face, words):
    client, _, folder = app
    _refused(lambda: _restore(client, _photo(folder), "Manual", ["face"],
                              face_id="face.gfpgan", **face), words)


def test_unknown_stage_kind_is_refused(app):
    client, _, folder = app
    _refused(lambda: _restore(client, _photo(folder), "Manual", ["paint"]),
             "unknown stage kind 'paint'")


@pytest.mark.parametrize("name, data, words", [
    ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>',
     "an SVG drawing, not a raster photo"),
    ("page.png", b"<!doctype html><html><body>hi</body></html>", "an HTML page"),
    ("scan.pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "a PDF document"),
])
def test_documents_are_named_as_such(app, name, data, words):
    client, _, folder = app
    path = folder / f"{SECRET}-{name}"
    path.write_bytes(data)
    _refused(lambda: _restore(client, path), words)


def test_the_log_never_holds_an_uploaded_file_name(app):
    client, log_path, folder = app
    truncated = folder / f"{SECRET}-cut.png"
    truncated.write_bytes(_photo(folder).read_bytes()[:120])
    _refused(lambda: _restore(client, truncated), "damaged or truncated")
    mask = folder / f"{SECRET}-mask.png"
    Image.new("L", (10, 10), 255).save(mask)
    _refused(lambda: _restore(client, _photo(folder), "Manual", ["inpaint"], mask=mask), "size")
    _restore(client, _photo(folder))  # and one that works
    time.sleep(1)  # let the server flush its log
    text = log_path.read_text()
    assert SECRET not in text, text
    assert "Traceback" not in text, text
