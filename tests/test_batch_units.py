"""The archive package's pure parts: ledger, sources, temporaries, settings hash, no-Ray."""

from __future__ import annotations

import subprocess
import sys

from restorer.archive.driver import to_do
from restorer.archive.ledger import Ledger, file_sha256, settings_hash
from restorer.archive.sources import clean_temporaries, list_jobs
from tests.cli_support import ROOT, assert_one_line_error


def test_ledger_survives_a_torn_last_line(tmp_path):
    ledger = Ledger(tmp_path / "l.jsonl")
    ledger.append({"input": "a", "status": "done"})
    ledger.close()
    with open(tmp_path / "l.jsonl", "a") as handle:
        handle.write('{"input": "b", "sta')  # a SIGKILL in the middle of a write
    assert [r["input"] for r in ledger.rows()] == ["a"]
    ledger.append({"input": "c", "status": "failed"})
    ledger.close()
    assert [r["input"] for r in Ledger(tmp_path / "l.jsonl").rows()] == ["a", "c"]


def test_sources_mirror_the_tree_and_keep_clashing_names(tmp_path):
    src = tmp_path / "src"
    (src / "box1").mkdir(parents=True)
    for name in ("a.jpg", "a.png", "box1/b.tif", "notes.txt", ".hidden.png"):
        (src / name).write_bytes(b"x")
    jobs = list_jobs(src, tmp_path / "out", tmp_path / "rep")
    images = sorted(str(j.outputs.image.relative_to(tmp_path / "out")) for j in jobs)
    assert images == ["a.jpg.png", "a.png.png", "box1/b.png"]
    assert {j.outputs.report.name for j in jobs} == {"a.jpg.json", "a.png.json", "b.json"}
    listing = tmp_path / "list.txt"
    listing.write_text("# photos\nsrc/box1/b.tif\n" + str(src / "a.jpg") + "\n")
    assert [j.source.name for j in list_jobs(listing, tmp_path / "o", None)] == ["b.tif", "a.jpg"]


def test_only_our_own_temporaries_are_cleaned(tmp_path):
    ours = [tmp_path / ".p01.png.ab_12xyz.tmp", tmp_path / ".p01.json.Zz9_aaaa.tmp"]
    theirs = [tmp_path / "p01.png", tmp_path / ".p01.png.short.tmp", tmp_path / "x.tmp"]
    for path in ours + theirs:
        path.write_bytes(b"x")
    assert clean_temporaries([tmp_path]) == 2
    assert all(not p.exists() for p in ours) and all(p.exists() for p in theirs)


def test_done_photos_are_skipped_only_with_same_bytes_and_settings(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        (src / name).write_bytes(name.encode())
    jobs = list_jobs(src, tmp_path / "out", None)
    (tmp_path / "out").mkdir()
    ledger = Ledger(tmp_path / "out" / "ledger.jsonl")
    for job in jobs:
        job.outputs.image.write_bytes(b"restored")
        ledger.append({"input": job.key, "status": "done", "settings": "s1",
                       "sha256": file_sha256(job.source)})
    ledger.append({"input": jobs[2].key, "status": "failed", "settings": "s1"})
    (src / "b.png").write_bytes(b"changed")
    todo, skipped = to_do(jobs, ledger, "s1")
    assert [j.source.name for j in todo] == ["b.png", "c.png"] and skipped == 1
    assert len(to_do(jobs, ledger, "s2")[0]) == 3
    assert settings_hash({"a": 1, "b": [2]}) == settings_hash({"b": [2], "a": 1})


def test_batch_without_ray_says_how_to_add_it(tmp_path):
    code = ("import sys, importlib.util\nreal = importlib.util.find_spec\n"
            "importlib.util.find_spec = lambda n, *a: None if n == 'ray' else real(n, *a)\n"
            "from restorer.cli import main\n"
            f"sys.exit(main(['batch', {str(tmp_path)!r}, {str(tmp_path / 'o')!r}]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
                                         "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 2
    assert_one_line_error(done.stderr, "pip install 'restorer[archive]'")
    assert not (tmp_path / "o").exists()


def test_import_restorer_archive_does_not_import_ray():
    code = "import sys, restorer.archive.command; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
