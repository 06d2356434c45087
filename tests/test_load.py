"""The load harness (bench/load.py) in its CI form (tests/load_support.py): 8 users at once
against the real app.

The app runs as a subprocess on 127.0.0.1 (concurrency 2, a queue of only 2, so that some
users are told it is busy and must retry), small photos of four modes, 24 requests; then the
harness waits for the app's cache sweep (30 s keep time). About a minute on 2 CPU cores.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from load_support import MODES, REQUESTS, LoadReport, ci_settings, explain, run_load

pytestmark = pytest.mark.load


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> LoadReport:
    return run_load(ci_settings(tmp_path_factory.mktemp("load")))


def test_every_request_succeeds_with_its_own_result(report):
    assert not report.aborted, explain(report)
    assert report.requests == REQUESTS
    assert report.failures == 0 and report.not_run == 0, explain(report)
    assert report.succeeded == REQUESTS, explain(report)
    assert {m: report.modes[m].count for m in MODES} == {m: REQUESTS // len(MODES)
                                                         for m in MODES}


def test_no_cross_talk_between_users(report):
    assert report.crosstalk_checked == REQUESTS, explain(report)
    assert report.crosstalk_wrong == 0, explain(report)
    assert report.crosstalk_own_max < 0.02 and report.crosstalk_other_min > 0.02, explain(report)
    assert report.result_paths_shared == 0, explain(report)


def test_a_full_queue_answers_busy_with_a_clear_message(report):
    """Eight users against 2 workers and a queue of 2: some are told to wait, and retry."""
    assert report.busy > 0, explain(report)
    assert sum(report.busy_messages.values()) == report.busy
    assert all("Queue is full" in message for message in report.busy_messages), explain(report)


def test_memory_is_bounded_and_the_page_stays_responsive(report):
    assert report.rss_samples > 0 and 0 < report.rss_peak_mb < 4096, explain(report)
    assert 0 < report.rss_hwm_mb < 4096, explain(report)
    assert report.probe_count > 0 and report.probe_errors == 0, explain(report)
    assert report.probe_max_s < 5.0 and report.probe_unresponsive == 0, explain(report)


def test_nothing_is_left_behind(report):
    """Uploads and results (and their folders) go once the app's keep time passed, and the
    sweep kept up during the load; nothing leaks into the app's TMPDIR and no upload is named
    in its log; the app was stopped."""
    assert report.cache_files_after_load > 0  # the check below is not vacuous
    assert report.cache_files_left == 0 and report.cache_dirs_left == 0, explain(report)
    assert report.cache_overdue_max == 0, explain(report)
    assert report.tmpdir_files == [], explain(report)
    assert report.log_upload_mentions == 0, explain(report)
    assert report.log_tracebacks == 0, explain(report)
    assert report.app_exit_code is not None
    assert not Path(report.settings["workdir"]).exists()
    assert report.ok, explain(report)
