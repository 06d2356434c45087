"""Dependencies are declared once: every third-party package restorer/ and app.py import is in
pyproject.toml (dependencies or an extra), and requirements.txt (the Space's) or
requirements-dev.txt pins it at the same version."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Import names whose distribution is called otherwise; every other import is its own name.
DISTRIBUTION = {"cv2": "opencv-python", "PIL": "pillow", "skimage": "scikit-image",
                "tensorflow": "tensorflow-cpu", "yaml": "pyyaml"}


def _normal(name: str) -> str:
    """A distribution name as PEP 503 compares it (case, and -, _ and . alike)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement(text: str) -> tuple[str, str]:
    """(normalised name, version specifier) of a requirement like ``ray[data]==2.60.0``."""
    match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(.*?)\s*", text)
    assert match, f"cannot read the requirement {text!r}"
    return _normal(match.group(1)), match.group(3)


def _imported() -> dict[str, set[str]]:
    """Top-level third-party packages imported anywhere in restorer/ and the page's modules at
    the top level (app.py, app_panels.py) -> files."""
    found: dict[str, set[str]] = {}
    page = sorted(ROOT.glob("app*.py"))
    local = {"restorer", *(path.stem for path in page)}
    for path in [*sorted((ROOT / "restorer").rglob("*.py")), *page]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local:
                    found.setdefault(top, set()).add(path.relative_to(ROOT).as_posix())
    return found


def _declared() -> dict[str, str]:
    """Distributions of pyproject.toml (dependencies and every extra) -> version specifier."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements.extend(extra)
    return dict(_requirement(text) for text in requirements)


def test_every_imported_package_is_declared_in_pyproject() -> None:
    imported = _imported()
    assert {"numpy", "cv2", "torch", "huggingface_hub", "gradio"} <= set(imported)  # the scan works
    declared = _declared()
    undeclared = {name: sorted(files) for name, files in imported.items()
                  if _normal(DISTRIBUTION.get(name, name)) not in declared}
    assert undeclared == {}


def test_requirements_pin_what_pyproject_declares() -> None:
    """The Space's requirements.txt (and requirements-dev.txt, for what only the archive
    command and the tests need: Ray) hold every imported package, each at pyproject's version
    (the one range there, pillow's, as pyproject states it)."""
    declared = _declared()
    pinned: dict[str, str] = {}
    for name in ("requirements.txt", "requirements-dev.txt"):
        lines = (line.split("#")[0].strip() for line in
                 (ROOT / name).read_text(encoding="utf-8").splitlines())
        pinned.update(_requirement(line) for line in lines if line)
    differing = {name: (spec, declared[name]) for name, spec in pinned.items()
                 if name in declared and declared[name] != spec}
    assert differing == {}
    imported = {_normal(DISTRIBUTION.get(name, name)) for name in _imported()}
    assert sorted(imported - set(pinned)) == []
