"""Test helper: serve restorer's page on 127.0.0.1 for test_app.py and test_browser.py.

Imported by those modules (not a test module itself). It sets the offline / no-telemetry
environment before gradio or gradio_client can be imported, and keeps matplotlib's and
gradio's caches out of the home folder and the shared /tmp/gradio.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLCONFIGDIR", str(Path(tempfile.gettempdir()) / "restorer-tests-mpl"))
if str(ROOT) not in sys.path:  # app.py lives at the repository root, not in a package
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from skimage import data  # noqa: E402

from restorer.imaging import load_image, save_image  # noqa: E402
from restorer.synth import Damaged, damage  # noqa: E402

#: Triage classes the page must always show.
TRIAGE_CLASSES = {"clean", "blurred", "cracked", "blurred+cracked"}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cracked_astronaut(seed: int = 0) -> Damaged:
    """scikit-image's astronaut (512 x 512) with seeded synthetic cracks."""
    return damage(load_image(data.astronaut()), np.random.default_rng(seed))


def save_cracked_photo(folder: Path, seed: int = 0) -> tuple[Path, Damaged]:
    """Write the cracked astronaut as PNG in ``folder``; returns its path and the truth."""
    damaged = cracked_astronaut(seed)
    return save_image(damaged.image, folder / "cracked.png"), damaged


@contextmanager
def serve(cache_dir: Path, pipeline=None, models=None) -> Iterator[str]:
    """Build the real pipeline (or use ``pipeline``) and page (its Models panel over
    ``models``, a ModelStatus), launch it queued on a free port; yield its URL.

    Uses app.launch (the production path: queue limits, show_error, max_file_size) with the
    test's settings: concurrency 2, queue of 16, 127.0.0.1, no thread lock, quiet.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(cache_dir))
        import app
        from restorer.service import ServiceConfig, build_pipeline, warm_up

        settings = app.AppSettings(host="127.0.0.1", port=free_port(), concurrency=2,
                                   queue_size=16)
        if pipeline is None:
            pipeline = build_pipeline(ServiceConfig(offline=True))
        warm_up(pipeline)  # as app.main does
        demo = app.build_demo(pipeline, settings, models)
        janitor = app.launch(demo, settings, prevent_thread_lock=True, quiet=True)
        try:
            url = demo.local_url
            assert url and url.startswith("http://127.0.0.1:"), url
            yield url
        finally:
            janitor.stop()
            demo.close()
