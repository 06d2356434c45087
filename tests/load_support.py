"""What the load test needs from the load harness (bench/load.py and its bench/load_*.py parts),
in one place: the harness's entry points and the small CI form of a run.

The CI form: 8 users at once against the real app served as a subprocess on 127.0.0.1
(concurrency 2, a queue of only 2, so that some users are told it is busy and must retry),
small photos of four modes, 24 requests; then the harness waits for the app's cache sweep
(30 s keep time). About a minute on 2 CPU cores.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench/ is a folder of scripts at the repository root
    sys.path.insert(0, str(ROOT))

from bench.load import run_load  # noqa: E402
from bench.load_report import MODES, LoadReport, LoadSettings, format_table  # noqa: E402

__all__ = ["CLIENTS", "REQUESTS", "MODES", "LoadReport", "ci_settings", "explain", "run_load"]

CLIENTS, REQUESTS = 8, 24


def ci_settings(workdir: Path) -> LoadSettings:
    """The CI run: CLIENTS users, REQUESTS requests, a queue of 2, small photos, in ``workdir``."""
    return LoadSettings(clients=CLIENTS, requests=REQUESTS, concurrency=2, queue_size=2,
                        short=True, deadline=120, request_deadline=90, startup_timeout=150,
                        workdir=workdir)


def explain(report: LoadReport) -> str:
    """The run's table, for assertion messages."""
    return "\n" + format_table(report)
