"""The page's examples: real public-domain photos copied by examples/make_examples.py --real
(never committed) come first when present, else the bundled generated ones."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _make_examples():
    spec = importlib.util.spec_from_file_location("make_examples", ROOT / "examples" / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_copy_real_copies_the_listed_photos_byte_for_byte_and_names_a_missing_one(tmp_path: Path) -> None:
    make = _make_examples()
    data = tmp_path / "data"
    for index, name in enumerate(make.REAL_EXAMPLES):
        (data / "real" / name).parent.mkdir(parents=True, exist_ok=True)
        (data / "real" / name).write_bytes(bytes([index]) * 100)
    out = tmp_path / "real"
    copied = make.copy_real(data, out)
    assert [p.name for p in copied] == [Path(n).name for n in make.REAL_EXAMPLES]
    assert all(p.read_bytes() == bytes([i]) * 100 for i, p in enumerate(copied))
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in copied)  # no temp left
    (data / "real" / make.REAL_EXAMPLES[1]).unlink()
    with pytest.raises(SystemExit, match=Path(make.REAL_EXAMPLES[1]).name):
        make.copy_real(data, tmp_path / "again")


def test_every_real_example_is_dated_before_1900_in_its_name_and_listed_in_the_docs() -> None:
    import re

    doc = (ROOT / "docs" / "examples.md").read_text(encoding="utf-8")
    for name in _make_examples().REAL_EXAMPLES:
        years = [int(y) for y in re.findall(r"1[89]\d\d", name)]
        assert years and max(years) < 1900, name
        assert Path(name).name in doc, name


def test_page_lists_real_examples_first_when_present(tmp_path: Path) -> None:
    from restorer.page import example_files

    (tmp_path / "b-synthetic.jpg").write_bytes(b"x")
    examples, label = example_files(tmp_path)
    assert examples == [tmp_path / "b-synthetic.jpg"] and "synthetic" in label
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a1860.jpg").write_bytes(b"x")
    (tmp_path / "real" / "notes.txt").write_text("not a photo")
    examples, label = example_files(tmp_path)
    assert examples == [tmp_path / "real" / "a1860.jpg", tmp_path / "b-synthetic.jpg"]
    assert "before 1900" in label
