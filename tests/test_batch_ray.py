"""``batch`` end to end on a local Ray of 2 workers: outputs, ledger, kills, resume, retries.

One Ray is started for the module (2 CPUs, no dashboard, workers' logs kept out of the
terminal). In-process runs use it as it is; a driver run in a subprocess either starts its
own embedded Ray (the default) or joins this one with ``--address`` (a real cluster join).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from restorer.archive.command import settings_id  # noqa: E402
from restorer.archive.driver import BatchOptions, run_batch  # noqa: E402
from restorer.archive.ledger import LEDGER_NAME, file_sha256  # noqa: E402
from restorer.archive.progress import RUN_SUMMARY_NAME  # noqa: E402
from restorer.archive.sources import list_jobs  # noqa: E402
from restorer.cli import main  # noqa: E402
from restorer.errors import ExitCode, RestorerError  # noqa: E402
from restorer.jobs import JobSettings  # noqa: E402
from restorer.service import ServiceConfig, build_pipeline  # noqa: E402
from tests.batch_support import BAD, BrokenWorker, DyingWorker, ledger_rows, make_archive, pixels  # noqa: E402
from tests.cli_support import ROOT, files_under, run_cli  # noqa: E402

pytestmark = pytest.mark.slow  # a local Ray for the module; its first test ran over 3 min (loaded)

GOOD = 20


@pytest.fixture(scope="module")
def cluster():
    """A local Ray of 2 CPUs for the module; yields its address (for ``--address``)."""
    temp = tempfile.mkdtemp(prefix="rt-")  # short: Ray's socket paths must stay < 108 bytes
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                       logging_level=logging.ERROR, _temp_dir=temp)
    yield context.address_info["gcs_address"]
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """20 small photos and 3 bad files (truncated PNG, text named .jpg, zero bytes)."""
    src = tmp_path_factory.mktemp("archive")
    make_archive(src, GOOD)
    return src


@pytest.fixture(scope="module")
def reference(archive, tmp_path_factory) -> Path:
    """``python -m restorer restore ARCHIVE -o REF``: the single-process folder run."""
    ref = tmp_path_factory.mktemp("reference")
    done = run_cli(["restore", archive, "-o", ref])
    assert done.returncode == ExitCode.PARTIAL, done.stderr
    assert len(list(ref.glob("*.png"))) == GOOD
    return ref


def _batch(src: Path, dest: Path, **kwargs) -> object:
    """run_batch in this process with ``restore``'s default settings (Auto)."""
    config = ServiceConfig(offline=True)
    settings = JobSettings()
    sid = settings_id(settings, build_pipeline(config), False)
    return run_batch(list_jobs(src, dest, None), dest, settings, sid, config,
                     BatchOptions(workers=2), **kwargs)


def _assert_same_as_restore(dest: Path, reference: Path, names: list[str]) -> None:
    for name in names:
        out, ref = dest / name, reference / name
        if out.read_bytes() != ref.read_bytes():  # same pixels within rounding at most
            assert abs(pixels(out) - pixels(ref)).max() <= 1, name


def _assert_quiet(stderr: str) -> None:
    """Nothing but batch's own progress lines on stderr (no Ray or TensorFlow log lines)."""
    noise = [line for line in stderr.splitlines()
             if line.strip() and not line.startswith("restoring: ")]
    assert not noise, stderr


def _done_once(dest: Path, sources: list[Path]) -> None:
    """Each source has exactly one done row in DEST's ledger and no temporary is left."""
    done = [r["input"] for r in ledger_rows(dest) if r["status"] == "done"]
    assert sorted(done) == sorted(str(s) for s in sources)
    assert not [n for n in files_under(dest) if n.endswith(".tmp")], files_under(dest)


def test_batch_writes_what_restore_writes_and_a_complete_ledger(cluster, archive, reference,
                                                                tmp_path, capsys):
    dest = tmp_path / "out"
    assert main(["batch", str(archive), str(dest), "--workers", "2"]) == ExitCode.PARTIAL
    out, err = capsys.readouterr()
    names = sorted(p.name for p in reference.glob("*.png"))
    assert files_under(dest) == sorted(names + [LEDGER_NAME, RUN_SUMMARY_NAME])
    _assert_same_as_restore(dest, reference, names)

    rows = ledger_rows(dest)
    sources = sorted(str(p) for p in archive.iterdir() if p.suffix in (".png", ".jpg"))
    assert sorted(r["input"] for r in rows) == sources  # one row per photo
    for row in rows:
        assert {"input", "sha256", "settings", "status", "outputs", "seconds",
                "error"} <= set(row)
        assert row["sha256"] == file_sha256(Path(row["input"]))
        assert len({r["settings"] for r in rows}) == 1
        name = Path(row["input"]).name
        if name in BAD:
            assert row["status"] == "failed" and row["outputs"] == []
            assert name in row["error"] and "\n" not in row["error"], row["error"]
        else:
            assert row["status"] == "done" and row["error"] is None and row["seconds"] > 0
            assert row["outputs"] == [str(dest / Path(name).with_suffix(".png").name)]
    assert "done                              20" in out and "failed" in out
    assert "label " in out and "plan " in out and "peak RSS" in out
    assert "restoring: 23/23 photos (0 skipped, 3 failed)" in err
    _assert_quiet(err)
    run = json.loads((dest / RUN_SUMMARY_NAME).read_text())
    assert run["done"] == GOOD and run["failed"] == 3
    assert len(run["workers"]) == 2 and all(w["peak_rss_mib"] > 50 for w in run["workers"])

    # Again, with one photo's bytes changed: that one is redone, the failed ones retried.
    src = tmp_path / "src"
    shutil.copytree(archive, src)
    shutil.move(dest, tmp_path / "again")
    dest = tmp_path / "again"
    with open(dest / LEDGER_NAME, "w") as ledger:  # the same rows, as if SRC had been here
        ledger.writelines(json.dumps({**r, "input": str(src / Path(r["input"]).name)}) + "\n"
                          for r in rows)
    shutil.copy(src / "p01.png", src / "p00.png")
    stamps = {n: (dest / n).stat().st_mtime_ns for n in names}
    assert main(["batch", str(src), str(dest), "--resume"]) == ExitCode.PARTIAL
    out, _ = capsys.readouterr()
    assert "skipped (done before)             19" in out
    stamps.pop("p00.png")
    assert {n: (dest / n).stat().st_mtime_ns for n in stamps} == stamps  # done: not redone
    again = ledger_rows(dest)[23:]
    assert sorted(Path(r["input"]).name for r in again) == sorted([*BAD, "p00.png"])
    assert (dest / "p00.png").read_bytes() == (dest / "p01.png").read_bytes()


def test_sigkill_of_the_driver_then_resume_restores_each_photo_once(cluster, archive,
                                                                    reference, tmp_path):
    dest = tmp_path / "out"
    code = ("import sys\nfrom restorer.cli import main\n"
            f"sys.exit(main(['batch', {str(archive)!r}, {str(dest)!r}, '--workers', '2']))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        driver = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + 240
    while len(ledger_rows(dest)) < 4 and time.monotonic() < deadline:
        assert driver.poll() is None, "the batch ended before it was killed"
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)  # the embedded Ray and its workers go with it
    driver.wait()
    landed = len(ledger_rows(dest))
    assert 4 <= landed < 23, landed
    _assert_quiet(log.read_text())

    # Resume from another process that joins this module's cluster (--address, for real).
    done = run_cli(["batch", archive, dest, "--address", cluster, "--workers", "2",
                    "--resume"])
    assert done.returncode == ExitCode.PARTIAL, done.stderr
    _assert_quiet(done.stderr)
    rows = ledger_rows(dest)
    good = sorted(p for p in archive.glob("p*.png"))
    _done_once(dest, good)
    assert {Path(r["input"]).name for r in rows if r["status"] == "failed"} == set(BAD)
    _assert_same_as_restore(dest, reference, [p.name for p in good])


def test_sigkill_of_a_worker_replaces_it_and_retries_its_photos(cluster, tmp_path, reference):
    src = tmp_path / "src"
    good = make_archive(src, 6, bad=False)
    dest = tmp_path / "out"
    dest.mkdir()
    killed: list[int] = []

    def kill_a_worker(summary) -> None:
        if summary.finished == 1 and not killed:
            killed.append(ledger_rows(dest)[-1]["pid"])
            os.kill(killed[0], signal.SIGKILL)

    summary = _batch(src, dest, progress=kill_a_worker)
    assert killed and summary.done == 6 and summary.failed == 0
    _done_once(dest, good)
    assert any(w["pid"] == killed[0] and not w["alive"] for w in summary.workers)
    _assert_same_as_restore(dest, reference, [p.name for p in good])


def test_a_photo_that_kills_its_worker_is_retried_once_then_failed(cluster, tmp_path):
    src = tmp_path / "src"
    good = make_archive(src, 4, bad=False)
    shutil.copy(good[0], src / "die.png")
    dest = tmp_path / "out"
    dest.mkdir()
    summary = _batch(src, dest, worker_class=DyingWorker)
    assert summary.done == 4 and summary.failed == 1
    attempts = (src / "die.attempts").read_text().split()
    assert len(attempts) == 2 and attempts[0] != attempts[1]  # retried once, on a new worker
    (row,) = [r for r in ledger_rows(dest) if r["status"] == "failed"]
    assert row["input"] == str(src / "die.png") and "died twice" in row["error"]
    _done_once(dest, good)


def test_changed_settings_redo_photos(cluster, tmp_path):
    src = tmp_path / "src"
    make_archive(src, 1, bad=False)
    dest = tmp_path / "out"
    assert main(["batch", str(src), str(dest)]) == ExitCode.DONE
    assert main(["batch", str(src), str(dest), "--set", "deblur.rl.iterations=5"]) == \
        ExitCode.DONE
    first, second = ledger_rows(dest)
    assert first["status"] == second["status"] == "done"
    assert first["settings"] != second["settings"]


def test_a_worker_that_cannot_start_stops_the_batch_with_its_reason(cluster, tmp_path):
    src = tmp_path / "src"
    make_archive(src, 3, bad=False)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(RestorerError, match="a worker could not start: .*'triage_net' is missing"):
        _batch(src, dest, worker_class=BrokenWorker)
    assert ledger_rows(dest) == [] and files_under(dest) == []
