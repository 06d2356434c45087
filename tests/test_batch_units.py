"""The archive package's pure parts: ledger, sources, temporaries, settings hash, no-Ray."""

from __future__ import annotations

import importlib.machinery
import io
import subprocess
import sys
import types

import pytest

from restorer.archive.driver import BatchOptions, BatchSummary, _connect, to_do
from restorer.archive.ledger import Ledger, file_sha256, settings_hash
from restorer.archive.progress import Progress
from restorer.archive.sources import clean_temporaries, list_jobs
from restorer.cli import main
from restorer.errors import RestorerError
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


def test_colourise_and_crop_to_print_change_the_settings_id_only_when_on():
    """Both change the outputs, so a ledger must not skip photos done without them; off, the
    id is the one earlier versions wrote (the hash holds no key for them)."""
    from restorer.archive.command import settings_id
    from restorer.jobs import JobSettings
    from restorer.pipeline import Pipeline
    from restorer.registry import default_registry

    pipeline = Pipeline(default_registry())
    ids = [settings_id(JobSettings(**flags), pipeline, False)
           for flags in ({}, {"colourise": True}, {"crop_to_print": True},
                         {"colourise": True, "crop_to_print": True})]
    assert len(set(ids)) == 4
    assert settings_id(JobSettings(colourise=False, crop_to_print=False), pipeline, False) == ids[0]


def test_batch_without_ray_says_how_to_add_it(tmp_path):
    code = ("import sys\nsys.modules['ray'] = None  # as if Ray were not installed\n"
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


def _fake_ray(calls: list, error: Exception | None = None) -> types.ModuleType:
    """A stand-in ``ray`` module whose ``init`` records its arguments."""
    fake = types.ModuleType("ray")
    fake.__spec__ = importlib.machinery.ModuleSpec("ray", None)

    def init(**kwargs):
        calls.append(kwargs)
        if error is not None:
            raise error

    fake.init = init
    fake.is_initialized = lambda: False
    fake.cluster_resources = lambda: {"CPU": 48.0}
    return fake


@pytest.mark.parametrize("address", ["auto", "ray://head.example:10001"])
def test_address_reaches_ray_init_and_the_cluster_sizes_the_pool(monkeypatch, address):
    calls: list = []
    monkeypatch.setitem(sys.modules, "ray", _fake_ray(calls))
    cluster = _connect(BatchOptions(address=address))
    assert calls[0]["address"] == address and "num_cpus" not in calls[0]
    assert calls[0]["log_to_driver"] is False
    assert cluster.workers == 48 and cluster.owned and cluster.temp_dir is None
    assert _connect(BatchOptions(address=address, workers=3)).workers == 3


def test_a_cluster_that_cannot_be_joined_is_a_one_line_error(monkeypatch, tmp_path, capsys):
    calls: list = []
    error = ConnectionError("Could not find any running Ray instance.\nPlease specify ...")
    monkeypatch.setitem(sys.modules, "ray", _fake_ray(calls, error))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.png").write_bytes(b"x")
    code = main(["batch", str(tmp_path / "src"), str(tmp_path / "out"), "--address", "auto"])
    assert code == 2 and calls[0]["address"] == "auto"
    err = capsys.readouterr().err
    assert_one_line_error(err, "cannot join the Ray cluster at 'auto'", "ray start --head")
    with pytest.raises(RestorerError):
        _connect(BatchOptions(address="ray://nowhere:1"))


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_progress_is_plain_lines_off_a_terminal_and_a_bar_on_one():
    plain, tty = _Stream(False), _Stream(True)
    for stream in (plain, tty):
        progress = Progress(stream, every=0.0)
        summary = BatchSummary(total=10, skipped=4)
        progress(summary)
        summary.done, summary.failed = 3, 1
        progress(summary)
        progress.close()
    lines = plain.getvalue().splitlines()
    assert lines[0].startswith("restoring: 4/10 photos (4 skipped, 0 failed)")
    assert lines[-1].startswith("restoring: 8/10 photos (4 skipped, 1 failed)")
    assert "photos/s, ETA" in lines[-1] and "\r" not in plain.getvalue()
    bar = tty.getvalue()
    assert "\r" in bar and "8/10" in bar and "failed=1" in bar and "photo/s" in bar


def test_a_dead_worker_charges_a_retry_only_to_the_photo_it_was_restoring(tmp_path):
    import collections

    from restorer.archive.driver import _worker_died

    jobs = list_jobs(_three_photos(tmp_path), tmp_path / "out", None)
    killed, started = [], []
    fake_ray = types.SimpleNamespace(kill=killed.append)
    actor_class = types.SimpleNamespace(remote=lambda *a: started.append(a) or "new actor")
    actors = ["actor 0", "actor 1"]
    assigned = [collections.deque(["r0", "r1"]), collections.deque(["r2"])]
    inflight = {"r0": (jobs[0], 0, 0), "r1": (jobs[1], 0, 0), "r2": (jobs[2], 0, 1)}
    pending: collections.deque = collections.deque()
    args = (fake_ray, 0, actors, assigned, inflight, pending, actor_class, None, None,
            RuntimeError("died"))
    assert _worker_died(*args) is None  # first death: both go back, only the first charged
    assert killed == ["actor 0"] and actors == ["new actor", "actor 1"] and len(started) == 1
    assert list(pending) == [(jobs[0], 1), (jobs[1], 0)] and list(inflight) == ["r2"]
    assert not assigned[0] and list(assigned[1]) == ["r2"]
    pending.clear()
    assigned[0].extend(["r3", "r4"])
    inflight.update(r3=(jobs[0], 1, 0), r4=(jobs[1], 0, 0))
    row = _worker_died(*args)  # second death on the same photo: failed, the other goes back
    assert row["status"] == "failed" and row["input"] == jobs[0].key
    assert "died twice" in row["error"] and list(pending) == [(jobs[1], 0)]


def _three_photos(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        (src / name).write_bytes(b"x")
    return src
