"""A tiny run of the benchmark machinery: bt-sync and the floor on 2,000 rows, in subprocesses."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import cases, run
from benchmarks.result import Result, load_results

ROWS = 2_000
PUSH_ROWS = 300


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Result]]:
    out_dir = tmp_path_factory.mktemp("bench")
    # dlt stands in for a peer whose package is missing: it is reported as skipped, never run.
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(cases.REQUIRES, "dlt.fetch", "no_such_package_for_the_smoke_test")
        run.run([ROWS], push_rows=PUSH_ROWS, tools=("bt-sync", "floor", "dlt"), out_dir=out_dir)
    return out_dir, load_results(out_dir / "results.jsonl")


def test_every_case_ran_and_has_a_rate(results: tuple[Path, list[Result]]) -> None:
    _, rows = results
    measured = [r for r in rows if r.tool != "dlt rest_api"]
    assert {(r.object, r.case, r.tool) for r in measured} == {
        ("project_logs", "full sync", "bt-sync"),
        ("project_logs", "full sync", "floor (httpx + orjson)"),
        ("project_logs", "incremental sync", "bt-sync"),
        ("experiment", "full sync", "bt-sync"),
        ("experiment", "full sync", "floor (httpx + orjson)"),
        ("dataset", "push", "bt-sync"),
        ("dataset", "push", "floor (httpx + orjson)"),
    }
    for r in measured:
        assert r.status == "ok", r.reason
        assert r.rows_per_s is not None and r.rows_per_s > 0
        assert r.cpu_s is not None and r.rss_peak_mb is not None and r.rss_peak_mb > 0


def test_btsync_stores_exactly_the_live_rows(results: tuple[Path, list[Result]]) -> None:
    _, rows = results
    btsync = [r for r in rows if r.tool.startswith("bt-sync")]
    for r in btsync:
        expected = PUSH_ROWS if r.case == "push" else ROWS
        assert r.expected_rows == expected
        assert r.rows_stored == expected, (r.object, r.case)
    (incremental,) = [r for r in btsync if r.case == "incremental sync"]
    assert incremental.work_rows == ROWS // 100
    assert incremental.server_rows is not None and incremental.server_rows < ROWS // 2


def test_a_missing_peer_is_skipped_with_the_reason(results: tuple[Path, list[Result]]) -> None:
    _, rows = results
    (dlt,) = [r for r in rows if r.tool == "dlt rest_api"]
    assert dlt.status == "skipped"
    assert dlt.reason is not None and "no_such_package_for_the_smoke_test" in dlt.reason


def test_results_markdown_has_the_tables(results: tuple[Path, list[Result]]) -> None:
    out_dir, _ = results
    markdown = (out_dir / "RESULTS.md").read_text()
    assert "## Targets" in markdown
    assert "### Full sync of the project logs" in markdown
    assert "| **bt-sync** | 2,000 |" in markdown
