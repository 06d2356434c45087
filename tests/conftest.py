"""Shared fixtures: small seeded photos made from scikit-image's bundled images."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from skimage import data  # noqa: E402

from restorer.imaging import load_image  # noqa: E402


@pytest.fixture(autouse=True)
def _quiet_home(tmp_path_factory, monkeypatch):
    """Keep matplotlib/keras caches out of the home folder."""
    cache = tmp_path_factory.getbasetemp() / "home-cache"
    monkeypatch.setenv("MPLCONFIGDIR", str(cache / "mpl"))
    monkeypatch.setenv("KERAS_HOME", str(cache / "keras"))


@pytest.fixture(scope="module")
def two_torch_threads():
    """Two torch intra-op threads for a module's tests (restored afterwards); use with
    ``pytestmark = pytest.mark.usefixtures("two_torch_threads")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def standin_files(tmp_path_factory):
    """The stand-in weight files of tests/standins.py, each written on first use and shared by
    every test of the session (some take 200 MB and seconds to write)."""
    try:
        from tests.standins import StandinFiles
    except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
        from standins import StandinFiles
    return StandinFiles(tmp_path_factory.mktemp("standins"))


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Clean float32 (H, W, 3) photos: astronaut, coffee, chelsea, camera (gray)."""
    return {
        "astronaut": load_image(data.astronaut()),
        "coffee": load_image(data.coffee()),
        "chelsea": load_image(data.chelsea()),
        "camera": load_image(data.camera()),
    }
