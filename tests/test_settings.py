"""One Settings value built at each edge, one weight store, one cache folder, one set of exit codes.

The weight files travel through the real ``huggingface_hub`` client and the local Hub of
tests/hub_server.py on 127.0.0.1; nothing reaches the internet.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest

from restorer.cli import main
from restorer.errors import ExitCode, RestorerError
from restorer.settings import (DEFAULT_TIME_BUDGET, Settings, build_settings, default_cache_dir,
                               is_truthy)
from restorer.weights import Manifest, WeightEntry, default_manifest_path, load_manifest

try:
    from tests.hub_server import FakeHub
except ImportError:  # tests/ is not importable as a package: pytest put tests/ itself on sys.path
    from hub_server import FakeHub

ROOT = Path(__file__).resolve().parents[1]
#: Modules that are edges: they alone may read the environment.
EDGES = {"cli.py", "weights_cli.py", "stages_cli.py", "archive/command.py"}


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with FakeHub() as server:
        yield server


def test_flag_beats_environment_beats_default(tmp_path: Path) -> None:
    env = {"HF_HUB_OFFLINE": "yes", "RESTORER_DEVICE": "cpu", "HF_HUB_CACHE": str(tmp_path / "env"),
           "RESTORER_THREADS": "3", "HF_ENDPOINT": "http://env.invalid"}
    from_env = build_settings({}, env)
    assert (from_env.offline, from_env.device, from_env.cache_dir, from_env.threads,
            from_env.endpoint) == (True, "cpu", tmp_path / "env", 3, "http://env.invalid")
    flags = {"offline": False, "device": "auto", "cache_dir": tmp_path / "flag", "threads": 1,
             "endpoint": "http://flag.invalid", "time_budget": float("inf"), "max_pixels": 10}
    from_flags = build_settings(flags, env)
    assert (from_flags.offline, from_flags.device, from_flags.cache_dir, from_flags.threads,
            from_flags.endpoint) == (False, "auto", tmp_path / "flag", 1, "http://flag.invalid")
    assert from_flags.time_budget is None and from_flags.max_pixels == 10
    default = build_settings({}, {"HOME": str(tmp_path)})
    assert default == Settings(cache_dir=tmp_path / ".cache" / "huggingface" / "hub")
    assert (default.offline, default.device, default.time_budget, default.threads) == \
        (False, "auto", DEFAULT_TIME_BUDGET, None)
    assert default.bundled_dir == default_manifest_path().parent
    assert build_settings({"manifest": tmp_path / "m.json"}, {}).bundled_dir == tmp_path


def test_the_cache_folder_follows_the_hub_clients_rule(tmp_path: Path) -> None:
    assert default_cache_dir({"HF_HUB_CACHE": "/a", "HF_HOME": "/b"}) == Path("/a")
    assert default_cache_dir({"HF_HOME": "/b", "XDG_CACHE_HOME": "/c"}) == Path("/b/hub")
    assert default_cache_dir({"XDG_CACHE_HOME": "/c", "HOME": "/h"}) == Path("/c/huggingface/hub")
    assert default_cache_dir({"HOME": "/h"}) == Path("/h/.cache/huggingface/hub")


def test_one_truthy_rule_and_clear_refusals() -> None:
    for word in ("1", "true", "True", "YES", " on "):
        assert is_truthy(word, "X") is True
    for word in ("", "0", "false", "No", "OFF"):
        assert is_truthy(word, "X") is False
    with pytest.raises(RestorerError, match="HF_HUB_OFFLINE='maybe'"):
        build_settings({}, {"HF_HUB_OFFLINE": "maybe"})
    with pytest.raises(RestorerError, match="unknown device 'gpu'.*RESTORER_DEVICE"):
        build_settings({}, {"RESTORER_DEVICE": "gpu"})
    with pytest.raises(RestorerError, match="RESTORER_THREADS='two'"):
        build_settings({}, {"RESTORER_THREADS": "two"})
    with pytest.raises(RestorerError, match="unknown precision 'fp8'"):
        build_settings({"precision": "fp8"}, {})
    with pytest.raises(RestorerError, match="max-pixels"):
        build_settings({"max_pixels": 0}, {})


def test_the_library_below_the_edges_never_reads_the_environment() -> None:
    """Only the edges read os.environ; backends.py may set (and restore) KERAS_BACKEND, which
    Keras reads when first imported and offers no other way to choose."""
    found = []
    for path in sorted((ROOT / "restorer").rglob("*.py")):
        relative = path.relative_to(ROOT / "restorer").as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not re.search(r"os\.environ|getenv|environ\.get", line) or relative in EDGES:
                continue
            if relative == "backends.py" and "KERAS_BACKEND" in line:
                continue
            found.append(f"restorer/{relative}:{number}: {line.strip()}")
    assert found == []


def _segnet_manifest(tmp_path: Path, hub: FakeHub) -> tuple[Path, Path]:
    """A manifest of one entry, the shipped SegNet as a published (not bundled) file served by
    ``hub``, and an empty bundled folder; returns (manifest, bundled folder)."""
    shipped = load_manifest(default_manifest_path()).get("detect_segnet")
    data = (default_manifest_path().parent / shipped.local_name).read_bytes()
    commit = hub.commit("org/segnet", {shipped.filename: data})
    entry = WeightEntry.from_dict({**shipped.to_dict(), "repo_id": "org/segnet", "revision": commit,
                                   "bundled": False})
    manifest = tmp_path / "manifest.json"
    Manifest((entry,)).save(manifest)
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    return manifest, bundled


def _photo(tmp_path: Path) -> Path:
    """A small scratched photo written as PNG."""
    from restorer import synth
    from restorer.imaging import save_image

    y, x = np.mgrid[0:96, 0:128].astype(np.float32)
    clean = np.stack([x / 128, y / 96, 0.5 + 0.3 * np.sin(x / 9)], axis=-1).astype(np.float32)
    return save_image(synth.damage(clean, np.random.default_rng(0), cracks=True).image,
                      tmp_path / "photo.png")


def test_restore_reads_the_cache_folder_weights_pull_filled(tmp_path: Path, hub: FakeHub,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    manifest, bundled = _segnet_manifest(tmp_path, hub)
    store = ["--manifest", str(manifest), "--weights-dir", str(bundled)]
    cache = tmp_path / "pulled"
    assert main(["weights", "pull", "detect_segnet", *store, "--cache-dir", str(cache),
                 "--endpoint", hub.endpoint]) == ExitCode.DONE
    assert "verified  detect_segnet" in capsys.readouterr().out
    requests = hub.count()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    photo, report = _photo(tmp_path), tmp_path / "report.json"
    restore = ["restore", str(photo), "--mode", "manual", "--stages", "detect:segnet,inpaint:telea",
               *store, "--report", str(report)]
    assert main([*restore, "-o", str(tmp_path / "out.png"), "--cache-dir", str(cache)]) == ExitCode.DONE
    assert "detect.segnet" in json.loads(report.read_text())["plan"]
    assert hub.count() == requests  # offline: read from the folder, nothing fetched
    capsys.readouterr()
    # Another cache folder (here the environment's) lacks the file: the same failure as `weights`.
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    code = main([*restore, "-o", str(tmp_path / "none.png")])
    assert code == ExitCode.FAILED and "weights pull detect_segnet" in capsys.readouterr().err
    assert not (tmp_path / "none.png").exists()
    assert main(["weights", "pull", "detect_segnet", *store]) == code
    assert "weights pull detect_segnet" in capsys.readouterr().err


def test_the_same_failure_gives_the_same_exit_code_from_restore_and_weights(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    photo = _photo(tmp_path)
    for argv in (["restore", str(photo), "-o", str(tmp_path / "o.png"), "--threads", "many"],
                 ["weights", "pull", "--no-such-flag"]):
        with pytest.raises(SystemExit) as exited:  # argparse refuses before any work
            main(argv)
        assert exited.value.code == ExitCode.REFUSED
    monkeypatch.setenv("RESTORER_DEVICE", "gpu")  # a bad setting, read the same way by both
    for argv in (["restore", str(photo), "-o", str(tmp_path / "o.png")],
                 ["weights", "list", "--cache-dir", str(tmp_path)]):
        capsys.readouterr()
        assert main(argv) == ExitCode.REFUSED
        assert "unknown device 'gpu'" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.slow
def test_choosing_keras_backend_leaves_the_environment_as_it_was() -> None:
    """KERAS_BACKEND is set only while Keras is imported: left set to torch, it would reach
    child processes, where "import tensorflow" then loads Keras on torch and crashes (exit 139,
    seen in CI when a test's subprocess imported TensorFlow)."""
    import subprocess
    import sys

    code = ("import os\nfrom restorer.backends import keras\n"
            "print(keras('torch').backend.backend(), os.environ.get('KERAS_BACKEND'))")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=300, check=True)
    assert out.stdout.split() == ["torch", "None"]
