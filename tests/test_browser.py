"""The page in a real headless Chromium: upload a cracked photo, Restore, see the results.

Uses Debian's chromium driven by Playwright; `make browser-deps` (run by `make install` and
`make test`) installs it, and the test skips with that command when it is missing. Set RESTORER_SCREENSHOT=1 to refresh docs/screenshot.png; otherwise the screenshot
goes to the test's tmp folder.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import time

import pytest
from PIL import Image

from _app_server import ROOT, TRIAGE_CLASSES, save_cracked_photo, serve

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000
RESULT_LABELS = ("Before (left) / after (right)", "Defects by kind", "Defect mask (white = defect)",
                 "Restored photo (full-resolution PNG)")


def _chromium() -> str:
    """Path of the chromium binary; skips, naming the setup command, when it is not installed."""
    found = shutil.which("chromium")
    if found is None:
        pytest.skip("chromium is not installed: run 'make browser-deps' "
                    "(it runs: apt-get install -y chromium)")
    return found


@pytest.fixture(scope="module")
def chromium() -> str:
    pytest.importorskip("playwright.sync_api")
    return _chromium()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(URL, gradio cache folder) of the app served for this module."""
    cache = tmp_path_factory.mktemp("gradio-cache")
    with serve(cache) as url:
        yield url, cache


@pytest.fixture(scope="module")
def server(served):
    return served[0]


def _block(page, label: str):
    """The (innermost) component block whose label contains ``label``."""
    return page.locator(".block").filter(
        has=page.locator("[data-testid=block-label]", has_text=label)).last


def _upload(page, photo) -> None:
    """Upload ``photo`` as the old photo and wait for its preview (clicking earlier sends none)."""
    from playwright.sync_api import expect

    old_photo = _block(page, "Old photo")
    old_photo.locator("input[type=file]").set_input_files(str(photo))
    expect(old_photo.locator("img").first).to_have_attribute("src", re.compile(r".+"))


@pytest.fixture
def page(chromium):
    """A fresh page in headless Chromium; fails the test if the page throws."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"],
                                     headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            crashes: list[str] = []
            page.on("pageerror", lambda exc: crashes.append(str(exc)))
            yield page
            assert not crashes, crashes
        finally:
            browser.close()


def test_restore_in_the_browser(page, server, tmp_path):
    from playwright.sync_api import expect

    photo, _ = save_cracked_photo(tmp_path)
    shot = (ROOT / "docs" / "screenshot.png" if os.environ.get("RESTORER_SCREENSHOT") == "1"
            else tmp_path / "screenshot.png")

    page.goto(server)

    _upload(page, photo)

    page.get_by_role("button", name="Restore", exact=True).click()

    # Damage labels: one bar per independent label, the most confident (cracked) first; no
    # heading and none of the four exclusive classes' "clean".
    triage = _block(page, "Damage labels")
    rows = triage.locator("[data-testid$='-confidence-set']")
    # The first run may still be loading the triage model: wait as long as a user.
    expect(rows.first).to_have_attribute("data-testid", "cracked-confidence-set",
                                         timeout=TIMEOUT_MS)
    shown = {r.get_attribute("data-testid").removesuffix("-confidence-set")
             for r in rows.all()}
    assert {"blurred", "cracked"} <= shown and not shown & (TRIAGE_CLASSES - {"blurred", "cracked"})
    expect(triage.get_by_test_id("label-output-value")).to_have_count(0)
    expect(rows.first).to_contain_text("%")

    # Every image output shows a loaded 512 x 512 picture served by the app.
    for label, count in zip(RESULT_LABELS, (2, 1, 1, 1)):
        images = _block(page, label).locator("img")
        expect(images).to_have_count(count)
        for img in images.all():
            expect(img).to_have_attribute("src", re.compile("/gradio_api/file="))
            expect(img).to_have_js_property("complete", True)
            assert img.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [512, 512]

    # The restored picture is the PNG the app made (fetched as the user would).
    src = _block(page, RESULT_LABELS[3]).locator("img").get_attribute("src")
    reply = page.request.get(src)
    assert reply.ok
    restored = Image.open(io.BytesIO(reply.body()))
    assert restored.format == "PNG" and restored.size == (512, 512)

    note = page.get_by_text("Stages: detect.print, inpaint.telea")
    expect(note).to_contain_text("Defect mask inpainted")
    expect(_block(page, "Report")).to_contain_text('"inpainted": true')
    plot = page.locator(".vega-embed")  # "Seconds per stage", drawn by Vega as SVG
    for stage in ("detect.print", "triage.net", "inpaint.telea"):
        expect(plot).to_contain_text(stage)
    expect(page.locator(".toast-body")).to_have_count(0)  # no error popped up

    page.screenshot(path=str(shot), full_page=True)

    with Image.open(shot) as image:
        assert image.width == 1280 and image.height > 900  # the whole page, not the viewport


def test_example_photo_restores(page, server):
    """A page example (a file gradio cached, not a user upload) passes the upload checks."""
    from playwright.sync_api import expect

    if not (ROOT / "examples" / "cracked-astronaut.jpg").is_file():
        pytest.skip("examples/cracked-astronaut.jpg is not in this checkout")
    page.goto(server)
    page.locator("button.gallery-item").filter(
        has=page.locator("img[src*='cracked-astronaut']")).click()
    old_photo = _block(page, "Old photo")
    expect(old_photo.locator("img").first).to_have_attribute("src",
                                                             re.compile("cracked-astronaut"))
    page.get_by_role("button", name="Restore", exact=True).click()
    triage = _block(page, "Damage labels")
    expect(triage.locator("[data-testid$='-confidence-set']").first).to_have_attribute(
        "data-testid", "cracked-confidence-set", timeout=TIMEOUT_MS)
    restored = _block(page, "Restored photo (full-resolution PNG)").locator("img")
    expect(restored).to_have_attribute("src", re.compile("/gradio_api/file="))
    expect(page.locator(".toast-body")).to_have_count(0)


def test_uploads_are_deleted_when_the_tab_closes(page, served, tmp_path):
    """The uploaded photo stays while the tab is open (to re-run with other settings) and is
    deleted from the server when the tab closes."""
    from playwright.sync_api import expect

    url, cache = served
    photo, _ = save_cracked_photo(tmp_path)
    probe = photo.rename(photo.with_name(f"upload-probe-{os.getpid()}.png"))
    page.goto(url)
    _upload(page, probe)
    page.get_by_role("button", name="Find defects", exact=True).click()
    mask = _block(page, "Defect mask (white = defect)").locator("img")
    expect(mask).to_have_attribute("src", re.compile("/gradio_api/file="), timeout=TIMEOUT_MS)
    assert list(cache.rglob(probe.name)), "the upload should be kept while the tab is open"
    page.close()
    deadline = time.monotonic() + 20
    while list(cache.rglob(probe.name)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not list(cache.rglob(probe.name)), "the upload outlived its tab"


def _checkbox_block(page, label: str):
    """The block of the checkbox named ``label`` (a checkbox has no block label of its own)."""
    return page.locator(".block").filter(has=page.get_by_role("checkbox", name=label)).last


def _chroma(png: bytes) -> float:
    """Mean |R-G| + |G-B| of a PNG: 0 for a grey picture."""
    import numpy as np

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return float((abs(rgb[..., 0] - rgb[..., 1]) + abs(rgb[..., 1] - rgb[..., 2])).mean())


def test_colourise_is_unavailable_with_its_reason_and_hidden_in_manual(page, server, tmp_path):
    """This server has no verified DDColor file: the Auto checkbox says why; ticking it gives
    the reason as the page's message; in Manual the checkbox is hidden (Manual ticks colour)."""
    from playwright.sync_api import expect

    photo, _ = save_cracked_photo(tmp_path)
    page.goto(server)
    box = _checkbox_block(page, "Colourise (black-and-white / sepia prints)")
    expect(box).to_contain_text("Unavailable: weights not usable here")
    _upload(page, photo)
    box.get_by_role("checkbox").check()
    page.get_by_role("button", name="Restore", exact=True).click()
    expect(page.locator(".toast-body")).to_contain_text("Colourisation is unavailable")
    page.get_by_label("Manual").check()
    expect(box).to_be_hidden()


@pytest.fixture(scope="module")
def colour_server(tmp_path_factory, standin_files):
    """The page over a pipeline with a verified stand-in DDColor (random weights)."""
    from test_colour_ddcolor import page_pipeline

    with serve(tmp_path_factory.mktemp("gradio-cache-colour"),
               pipeline=page_pipeline(standin_files.path("ddcolor_paper_tiny"))) as url:
        yield url


@pytest.mark.slow
def test_colourised_run_shows_the_colour_stages_own_before_after(page, colour_server, tmp_path):
    from playwright.sync_api import expect
    from test_colour_ddcolor import grey_print

    from restorer.imaging import save_image

    photo = save_image(grey_print(96, 128), tmp_path / "grey.png")
    page.goto(colour_server)
    colour = _block(page, "Colourisation only")
    expect(colour).to_be_hidden()                                  # until a colour stage runs
    box = _checkbox_block(page, "Colourise (black-and-white / sepia prints)")
    expect(box).to_contain_text("Auto: ends with DDColor colourisation")
    _upload(page, photo)
    box.get_by_role("checkbox").check()
    page.get_by_role("button", name="Restore", exact=True).click()
    images = colour.locator("img")
    expect(images).to_have_count(2, timeout=TIMEOUT_MS * 3)
    before, after = (page.request.get(img.get_attribute("src")).body() for img in images.all())
    assert _chroma(before) < 1.0 < 5.0 < _chroma(after)           # grey, then in colour
    expect(page.get_by_text("Colourised: the colourisation's own before/after")).to_be_visible()
    box.get_by_role("checkbox").uncheck()                           # a plain run hides it again
    page.get_by_role("button", name="Restore", exact=True).click()
    expect(colour).to_be_hidden(timeout=TIMEOUT_MS * 3)
    expect(page.locator(".toast-body")).to_have_count(0)
