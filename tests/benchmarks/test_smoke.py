"""A tiny run of the benchmark: bt-sync and the floor on 2,000 rows, every case a measured process."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import cases, report, run
from benchmarks.report import FULL, HOURLY, PUSH, PUSH_REPEATS, STARTUP
from benchmarks.result import Result, load_results

ROWS = 2_000
PUSH_ROWS = 300
BTSYNC, FLOOR, DLT = "bt-sync", "floor (httpx + orjson)", "dlt rest_api"
AS_CHECKED = "bt-sync --no-validate-first"
# Two runs of each repeated case show that every repeat runs and that the report keeps the fastest as
# well as the benchmark's three do; a third full sync by bt-sync and the floor cost 2.5 s of the module.
FULL_REPEATS = 2


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Result]]:
    out_dir = tmp_path_factory.mktemp("bench")
    # dlt stands in for a peer whose package is missing: it is reported as skipped, never run.
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(cases.REQUIRES, "dlt.fetch", "no_such_package_for_the_smoke_test")
        patch.setattr(run, "HELP_REPEATS", 2)
        patch.setattr(run, "FULL_REPEATS", FULL_REPEATS)
        run.run([ROWS], push_rows=PUSH_ROWS, tools=("bt-sync", "floor", "dlt"), out_dir=out_dir)
    return out_dir, load_results(out_dir / "results.jsonl")


def test_every_case_ran_as_a_measured_process(results: tuple[Path, list[Result]]) -> None:
    _, rows = results
    measured = [r for r in rows if r.tool != DLT]
    assert sorted({(r.object, r.case, r.tool, r.repeat) for r in measured}) == sorted(
        {
            *(("project_logs", FULL, tool, n) for tool in (BTSYNC, FLOOR) for n in range(FULL_REPEATS)),
            ("project_logs", HOURLY, BTSYNC, 0),
            ("experiment", FULL, BTSYNC, 0),
            ("experiment", FULL, FLOOR, 0),
            *(
                ("dataset", PUSH, tool, n)
                for tool in (BTSYNC, AS_CHECKED, FLOOR)
                for n in range(PUSH_REPEATS)
            ),
            ("cli", STARTUP, BTSYNC, 0),
        }
    )
    for r in measured:
        assert r.status == "ok", r.reason
        assert r.wall_s and r.cpu_s and r.rss_peak_mb, r
    # A whole process: the interpreter alone is tens of MB; a sync imports DuckDB and Arrow on top,
    # `--help` does not; and this test process's own memory is not counted in either.
    (help_run,) = [r for r in measured if r.case == STARTUP]
    syncs = [r for r in measured if r.tool == BTSYNC and r.case == FULL]
    assert 20 < help_run.rss_peak_mb < 100 < min(r.rss_peak_mb for r in syncs)  # type: ignore[operator]


def test_btsync_stores_exactly_the_live_rows_and_the_hourly_change_costs_little(
    results: tuple[Path, list[Result]],
) -> None:
    _, rows = results
    for r in rows:
        if r.tool in (BTSYNC, AS_CHECKED) and r.case in (FULL, PUSH):
            expected = PUSH_ROWS if r.case == PUSH else ROWS
            assert r.expected_rows == expected and r.rows_stored == expected, (r.object, r.case)
    (hourly,) = [r for r in rows if r.case == HOURLY]
    # 1% new rows and feedback on 0.5%: 20 + 10 rows.
    assert hourly.work_rows == ROWS // 100 + ROWS // 200
    assert hourly.rows_stored == hourly.expected_rows == ROWS + ROWS // 100
    assert hourly.server_rows is not None and hourly.server_rows < ROWS // 10
    assert hourly.bytes_written and hourly.table_bytes and hourly.bytes_written < hourly.table_bytes


def test_a_missing_peer_is_skipped_with_the_reason(results: tuple[Path, list[Result]]) -> None:
    _, rows = results
    (dlt,) = [r for r in rows if r.tool == DLT]
    assert dlt.status == "skipped"
    assert dlt.reason is not None and "no_such_package_for_the_smoke_test" in dlt.reason


def test_results_markdown_has_the_targets_and_the_fastest_runs(results: tuple[Path, list[Result]]) -> None:
    out_dir, rows = results
    markdown = (out_dir / "RESULTS.md").read_text()
    assert "## Targets" in markdown and "`bt-sync --help` ≤ 0.3 s" in markdown
    assert "### Full sync of the project logs" in markdown
    fastest = min(
        r.wall_s or 0 for r in rows if r.tool == BTSYNC and r.object == "project_logs" and r.case == FULL
    )
    assert f"| **bt-sync** | 2,000 | {fastest:,.2f} |" in markdown


def test_the_report_renders_a_run_again_and_names_a_directory_without_results(
    results: tuple[Path, list[Result]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir, _ = results
    rendered = (out_dir / "RESULTS.md").read_text()
    (out_dir / "RESULTS.md").unlink()
    report.main([str(out_dir)])
    assert (out_dir / "RESULTS.md").read_text() == rendered
    with pytest.raises(SystemExit) as exited:
        report.main([str(tmp_path)])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"python -m benchmarks.report: error: {tmp_path} holds no results.jsonl"
    )
