#!/usr/bin/env python
"""Cold start: seconds and peak memory of fresh restorer processes.

    python bench/coldstart.py [--runs 5] [--baseline /path/to/other/checkout] [--json OUT]

Times, each in a new process (after one warm-up run that fills the file cache), the commands a
user starts cold: ``python -c "import restorer"``, ``python -m restorer --help`` and
``python -m restorer restore PHOTO -o OUT`` on a 0.15 MP photo made here (480 x 320, seeded
synthetic cracks and dust over a smooth gradient, PNG) in Auto mode with the shipped weights
(the triage network included), offline. ``--baseline`` runs the same commands with another
checkout's ``restorer`` (``PYTHONPATH``), alternating with this one run by run so both see the
same machine. Prints, per command, the median, minimum and maximum wall seconds and the median
peak RSS (``wait4``'s ``ru_maxrss`` of the child: this script stays small, so the parent's
high-water mark that Linux carries over at exec does not count).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def make_photo(path: Path, seed: int = 0) -> Path:
    """A 480 x 320 (0.15 MP) PNG: a smooth gradient with seeded dark cracks and light dust."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:320, 0:480].astype(np.float32)
    image = np.stack([x / 480, y / 320, 0.5 + 0.3 * np.sin(x / 17)], axis=-1)
    for _ in range(4):  # cracks: random walks 2 px wide
        row, col = rng.integers(0, 320), rng.integers(0, 480)
        for _ in range(300):
            image[max(row - 1, 0):row + 1, max(col - 1, 0):col + 1] = 0.08
            row = int(np.clip(row + rng.integers(-1, 2), 0, 319))
            col = int(np.clip(col + rng.integers(0, 2), 0, 479))
    for row, col in zip(rng.integers(0, 320, 60), rng.integers(0, 480, 60)):  # dust
        image[row:row + 2, col:col + 2] = 0.95
    Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8)).save(path)
    return path


def run_once(argv: list[str], root: Path, env: dict[str, str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit status) of ``argv`` run with ``root``'s restorer."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, cwd=root, env={**env, "PYTHONPATH": str(root)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(f"warning: {' '.join(argv[1:3])} exited {code}: {err.decode()[-300:]}", file=sys.stderr)
    return wall, usage.ru_maxrss / 1024, code


def commands(photo: Path, out: Path) -> dict[str, list[str]]:
    """The timed commands by name."""
    python = sys.executable
    return {
        "import restorer": [python, "-c", "import restorer"],
        "--help": [python, "-m", "restorer", "--help"],
        "restore 0.15 MP": [python, "-m", "restorer", "restore", str(photo), "-o", str(out)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="counted runs per command (default 5)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another checkout to compare with (its restorer, same commands)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    roots = {"this": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    with tempfile.TemporaryDirectory(prefix="restorer-coldstart-") as tmp:
        folder = Path(tmp)
        photo = make_photo(folder / "photo.png")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
               "KERAS_HOME": str(folder / "keras"), "MPLCONFIGDIR": str(folder / "mpl")}
        figures: dict[str, dict[str, list[tuple[float, float, int]]]] = {}
        for name, command in commands(photo, folder / "out.png").items():
            for root in roots.values():
                run_once(command, root, env)  # warm-up: file cache, stamps, Keras' config
            for _ in range(args.runs):
                for label, root in roots.items():
                    figures.setdefault(name, {}).setdefault(label, []).append(run_once(command, root, env))
    rows = [("command", "code", "median s", "min s", "max s", "peak RSS MiB")]
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for name, by_root in figures.items():
        for label, runs in by_root.items():
            walls, peaks = [r[0] for r in runs], [r[1] for r in runs]
            stats = {"median_s": statistics.median(walls), "min_s": min(walls), "max_s": max(walls),
                     "peak_rss_mib": statistics.median(peaks)}
            summary.setdefault(name, {})[label] = stats
            rows.append((f"{name} ({label})", ",".join(sorted({str(r[2]) for r in runs})),
                         f"{stats['median_s']:.2f}", f"{stats['min_s']:.2f}", f"{stats['max_s']:.2f}",
                         f"{stats['peak_rss_mib']:.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(f"{args.runs} runs per command, {os.cpu_count()} CPUs; " +
          ", ".join(f"{label}: {root}" for label, root in roots.items()))
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
