#!/usr/bin/env python
"""Throughput of an archive: the single-process folder run against ``batch`` on Ray.

    python bench/batch.py [--count 100] [--data ../shared/data] [--workers-list 1,2]

The same ``--count`` photos (the shared clean photos of ``clean/bsds-test``, 481 x 321, with
seeded synthetic damage from ``restorer.synth``: cracks on all, blur on every other one) are
written as PNG into a temporary folder and restored, in this one run, by

* ``python -m restorer restore FOLDER -o OUT`` (one process, photo after photo), and
* ``python -m restorer batch FOLDER OUT --workers N`` (embedded Ray) for each N of
  ``--workers-list``,

each in a fresh process, Auto mode, real triage network; the folder run also once with
``OMP_NUM_THREADS=1``, as Ray sets it in each worker, to tell how much of a difference is
threading rather than Ray. Photos per second is over the whole command (start-up included:
Ray and each worker's model loading); "steady" is the rate once results flow (first to last
output file written, by their mtimes). Peak RSS is the process's own
(``ru_maxrss`` of the folder run; each worker's, from the batch's run summary). Outputs of
every batch are compared with the folder run's (byte-identical count).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from restorer.archive.progress import RUN_SUMMARY_NAME  # noqa: E402
from restorer.imaging import load_image, save_image  # noqa: E402
from restorer.synth import damage  # noqa: E402


def make_photos(data: Path, count: int, folder: Path) -> list[Path]:
    """``count`` damaged copies of the shared clean photos, as PNG in ``folder``."""
    clean = sorted((data / "clean" / "bsds-test").glob("*.jpg"))
    if len(clean) < count:
        sys.exit(f"error: {data / 'clean' / 'bsds-test'} has {len(clean)} photos, "
                 f"fewer than --count {count}")
    paths = []
    for i, source in enumerate(clean[:count]):
        rng = np.random.default_rng(i)
        hurt = damage(load_image(source), rng, cracks=True, blurred=i % 2 == 1)
        paths.append(save_image(hurt.image, folder / f"{source.stem}.png"))
    return paths


def timed(command: list[str], **env_vars: str) -> tuple[float, float, int]:
    """Run ``command`` quietly (with ``env_vars`` set); (wall seconds, peak RSS MiB of the
    process, exit status)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
           "TF_CPP_MIN_LOG_LEVEL": "3", **env_vars}
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0, 1):
        sys.exit(f"error: {' '.join(command)} failed: {child.stderr.read().decode()[-400:]}")
    return wall, usage.ru_maxrss / 1024, child.returncode


def steady_rate(dest: Path) -> float:
    """Photos per second between the first and the last output written (files' mtimes)."""
    stamps = sorted(p.stat().st_mtime for p in dest.glob("*.png"))
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0


def same_files(a: Path, b: Path) -> int:
    """How many PNG files of ``a`` are byte-identical in ``b``."""
    return sum((b / p.name).exists() and (b / p.name).read_bytes() == p.read_bytes()
               for p in a.glob("*.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--workers-list", default="1,2")
    args = parser.parse_args()
    workers = [int(n) for n in args.workers_list.split(",") if n.strip()]
    python = [sys.executable, "-m", "restorer"]
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        src = root / "src"
        src.mkdir()
        make_photos(args.data, args.count, src)
        folder_out = root / "folder"
        wall, peak, _ = timed(python + ["restore", str(src), "-o", str(folder_out)])
        base = args.count / wall
        rows = [("restore FOLDER (1 process)", wall, base, steady_rate(folder_out), 1.0, None,
                 f"{peak:.0f}", args.count)]
        # Ray sets OMP_NUM_THREADS=1 in each worker (one CPU each): the folder run likewise.
        single = root / "folder1"
        wall, peak, _ = timed(python + ["restore", str(src), "-o", str(single)],
                              OMP_NUM_THREADS="1")
        rows.append(("restore FOLDER, OMP_NUM_THREADS=1", wall, args.count / wall,
                     steady_rate(single), args.count / wall / base, None, f"{peak:.0f}",
                     same_files(folder_out, single)))
        one_worker = None
        for n in workers:
            dest = root / f"batch{n}"
            wall, _, _ = timed(python + ["batch", str(src), str(dest), "--workers", str(n)])
            run = json.loads((dest / RUN_SUMMARY_NAME).read_text())
            rate = run["done"] / wall
            one_worker = rate if n == 1 else one_worker
            peaks = "/".join(f"{w['peak_rss_mib']:.0f}" for w in run["workers"])
            rows.append((f"batch --workers {n}", wall, rate, steady_rate(dest), rate / base,
                         rate / one_worker if one_worker else None, peaks,
                         same_files(folder_out, dest)))
    print(f"{args.count} photos (bsds-test 481x321, synthetic damage), Auto, "
          f"{os.cpu_count()} CPUs\n")
    print(f"| run | seconds | photos/s | steady photos/s | x folder run | x 1 worker "
          f"| peak RSS MiB (per worker) | identical to folder run |")
    print("|---|---|---|---|---|---|---|---|")
    for name, wall, rate, steady, ratio, ratio1, peak, same in rows:
        print(f"| {name} | {wall:.1f} | {rate:.3f} | {'-' if steady is None else f'{steady:.3f}'} "
              f"| {ratio:.2f} | {'-' if ratio1 is None else f'{ratio1:.2f}'} | {peak} "
              f"| {same}/{args.count} |")


if __name__ == "__main__":
    main()
