"""Start-up cost: what ``import restorer``, ``--help`` and a single-photo run load and print.

Each check runs in a fresh interpreter (this one has long imported everything). They check
which modules are loaded, not how long it took: bench/coldstart.py measures the time.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "cv2", "huggingface_hub", "tensorflow", "keras", "gradio")
#: The one module that imports the Hub client (and its HTTP client), inside functions.
HUB_OWNER = "weights/hub.py"


def _loaded_after(code: str, tmp_path: Path) -> list[str]:
    """The HEAVY packages loaded after running ``code`` in a fresh interpreter."""
    probe = code + f"\nimport sys\nprint('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("LOADED "))
    return ast.literal_eval(line.removeprefix("LOADED "))


def _help(*argv: str) -> str:
    """Code that prints ``python -m restorer ARGV --help`` as ``-m`` would run it."""
    return ("import runpy, sys, contextlib, io\n"
            f"sys.argv = ['restorer', *{list(argv)!r}, '--help']\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    runpy.run_module('restorer', run_name='__main__', alter_sys=True)\n")


@pytest.mark.parametrize("code", [
    "import restorer",
    "import restorer\nrestorer.RestorerError, restorer.__version__",
    _help(),
    _help("restore"),
    _help("weights", "pull"),
], ids=["import", "errors", "help", "restore-help", "weights-help"])
def test_import_and_help_load_no_heavy_library(code: str, tmp_path: Path) -> None:
    assert _loaded_after(code, tmp_path) == []


def test_the_weights_command_never_loads_the_hub_client_to_list(tmp_path: Path) -> None:
    code = ("from restorer.cli import main\n"
            f"assert main(['weights', 'list', '--cache-dir', {str(tmp_path / 'cache')!r}]) == 0\n")
    assert _loaded_after(code, tmp_path) == []


def test_a_public_name_is_imported_on_first_use(tmp_path: Path) -> None:
    """The lazy package still gives every name of its __all__."""
    code = ("import restorer\n"
            "missing = [n for n in restorer.__all__ if getattr(restorer, n, None) is None]\n"
            "assert missing == [], missing\n"
            "from restorer import Pipeline, load_image, Settings\n")
    assert "cv2" in _loaded_after(code, tmp_path)


def _packages(node: ast.AST) -> list[str]:
    """Top-level packages an import statement names (none for any other node)."""
    if isinstance(node, ast.Import):
        return [alias.name.split(".")[0] for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [node.module.split(".")[0]]
    return []


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(every package ``path`` imports, those imported when the module itself is: not inside a
    function, a class or ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    deferred: set[int] = set()
    for node in ast.walk(tree):
        typing_only = isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        if typing_only or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            deferred.update(id(inner) for inner in ast.walk(node) if inner is not node)
    every = {name for node in ast.walk(tree) for name in _packages(node)}
    eager = {name for node in ast.walk(tree) if id(node) not in deferred for name in _packages(node)}
    return every, eager


def test_only_the_hub_module_imports_the_hub_client_and_only_on_use() -> None:
    for path in sorted((ROOT / "restorer").rglob("*.py")):
        relative = path.relative_to(ROOT / "restorer").as_posix()
        every, eager = _imports(path)
        for name in {"huggingface_hub", "httpx2"} & every:
            assert relative == HUB_OWNER, f"restorer/{relative} imports {name}"
            assert name not in eager, f"restorer/{relative} imports {name} at module level"


#: What restorer itself writes on stderr: its log lines and the CLI's one-line messages.
OWN_LINE = re.compile(r"^((DEBUG|INFO|WARNING|ERROR|CRITICAL) restorer[.:]|(error|interrupted|terminated): )")


def test_a_single_photo_run_prints_only_restorers_lines_and_loads_no_tensorflow(tmp_path: Path) -> None:
    """A cold ``restore`` of a 0.15 MP photo in Auto mode (the shipped triage network included):
    stderr holds no framework's start-up lines, and neither Keras nor TensorFlow is imported."""
    from restorer import synth
    from restorer.imaging import save_image

    y, x = np.mgrid[0:320, 0:480].astype(np.float32)
    clean = np.stack([x / 480, y / 320, 0.5 + 0.3 * np.sin(x / 17)], axis=-1).astype(np.float32)
    photo = save_image(synth.damage(clean, np.random.default_rng(3), cracks=True).image,
                       tmp_path / "photo.png")
    code = ("import sys\nfrom restorer.cli import main\n"
            f"code = main(['restore', {str(photo)!r}, '-o', {str(tmp_path / 'out.png')!r}])\n"
            "assert code == 0, code\n")
    probe = code + "print('LOADED', sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    foreign = [line for line in done.stderr.splitlines() if line.strip() and not OWN_LINE.match(line)]
    assert foreign == []
    assert "LOADED []" in done.stdout  # the triage network ran in torch: no Keras, no TensorFlow
    assert (tmp_path / "out.png").is_file()
