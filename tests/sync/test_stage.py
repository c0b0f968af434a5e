"""What messy responses do to a sync: nothing lost, nothing silently changed, one clear line a failure."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from rich.console import Console

from connector.cli.sync import print_summary
from connector.config import DestinationKind, WarehouseSettings
from connector.emulator import Emulator, FaultRule
from connector.sync import stage
from connector.sync.run import SyncSummary
from connector.sync.shape import PageMalformed
from connector.sync.staging import ObjectStaging
from connector.wiring import open_destination
from tests.helpers import (
    LOGS,
    LOGS_REF,
    cli_warehouse_args,
    iceberg_in,
    one_line,
    query,
    run_cli,
    staged,
    sync,
    warehouse_in,
)
from tests.helpers import event as logs_event

BIG = 18446744073709551616  # 2**64: wider than any integer type


@pytest.fixture
def projects(emulator: Emulator) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two projects with logs: `broken` gets the malformed responses, `healthy` must sync regardless."""
    broken = emulator.store.create_project("broken")
    healthy = emulator.store.create_project("healthy")
    for project in (broken, healthy):
        emulator.store.insert(
            "project_logs", project["id"], [{"id": f"r{i}", "input": i} for i in range(120)]
        )
    return broken, healthy


def serve(emulator: Emulator, project_id: str, events: list[Any] | str, times: int | None = None) -> None:
    """Make fetches of the project's logs answer exactly this page (the first `times` of them, or all)."""
    # The standard library's encoder: it writes integers wider than 64 bits.
    body = events if isinstance(events, str) else json.dumps({"events": events, "cursor": None})
    emulator.faults.add(
        FaultRule(kind="body", route=f"/v1/project_logs/{project_id}/fetch", body=body, times=times)
    )


def event(row_id: Any = "a", xact: Any = "1000198294685155348", **fields: Any) -> dict[str, Any]:
    return {"id": row_id, "_xact_id": xact, "created": "2025-06-02T09:00:00.000Z", **fields}


def logs_by_id(warehouse: WarehouseSettings, project_id: str, columns: str) -> dict[str, tuple[Any, ...]]:
    """The project's log rows by id: each one's `columns` (SQL)."""
    selected = f"SELECT id, {columns} FROM project_logs WHERE project_id = ?"
    return {row_id: tuple(values) for row_id, *values in query(warehouse, selected, [project_id])}


def test_empty_pages_that_carry_a_cursor_are_followed(
    emulator: Emulator, projects: tuple[dict[str, Any], ...], warehouse: WarehouseSettings
) -> None:
    broken, _ = projects
    for after in (0, 2, 3, 7):
        emulator.faults.add(FaultRule(kind="empty_page", route=f"{broken['id']}/fetch", after=after, times=1))
    sync(emulator, warehouse, page_limit=10)
    assert query(warehouse, "SELECT count(*) FROM project_logs WHERE project_id = ?", [broken["id"]]) == [
        (120,)
    ]
    emulator.store.insert("project_logs", broken["id"], [{"id": "later", "input": "x"}])
    sync(emulator, warehouse, page_limit=10)
    assert query(warehouse, "SELECT count(*) FROM project_logs WHERE project_id = ?", [broken["id"]]) == [
        (121,)
    ]


# Each malformed page, and what the one line says of it.
MALFORMED_PAGES: dict[str, tuple[list[Any] | str, str]] = {
    "null-ids": ([event(row_id=None)] * 112, "have no id"),
    "no-id": ([{"_xact_id": "1000198294685155348", "input": 1}], "1 of its events has no id"),
    "numeric-id": ([event(row_id=5)], "`id` is not text"),
    "object-id": ([event(row_id={"a": 1})], "`id` is not text"),
    "list-id": ([event(row_id=["a"]), event("b")], "`id` is not text"),
    "float-xact": ([event(xact=1.5)], "`_xact_id` that is not a 64-bit decimal"),
    "wide-xact": ([event(xact=str(BIG))], "`_xact_id` that is not a 64-bit decimal"),
    "text-xact": ([event(xact="12a")], "`_xact_id` that is not a 64-bit decimal"),
    "scalars": ([1, 2, 3], "values that are not JSON objects"),
    "object": ('{"events": {"a": 1}, "cursor": null}', "`events` is not a list"),
    "object-cursor": (
        '{"events": [{"id": "a", "_xact_id": "1000198294685155348"}], "cursor": {"a": 1}}',
        "`cursor` is not text",
    ),
    "no-events": ('{"rows": [], "cursor": null}', "no `events` list"),
    "invalid": ('{"events": [{"id": "a", }], "cursor": null}', "not valid JSON"),
}


@dataclass(frozen=True)
class MalformedRun:
    """A synced project per malformed page and a healthy one, then `bt-sync sync --full` serving the pages:
    the run, its projects' ids, and the log rows of each project before and after it (`logs_by_project`)."""

    done: subprocess.CompletedProcess[str]
    broken: dict[str, str]
    healthy: str
    before: dict[str, tuple[Any, ...]]
    after: dict[str, tuple[Any, ...]]


def logs_by_project(warehouse: WarehouseSettings) -> dict[str, tuple[Any, ...]]:
    """Each project's count of log rows, newest `_xact_id`, and count of rows of id `new`."""
    counts = "count(*), max(_xact_id), count(*) FILTER (id = 'new')"
    sql = f"SELECT project_id, {counts} FROM project_logs GROUP BY project_id"
    return {project_id: tuple(values) for project_id, *values in query(warehouse, sql)}


@pytest.fixture(scope="module")
def malformed_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MalformedRun]:
    """One run serves every malformed page, each to an object of its own: a run per page cost a sync and a
    CLI start of its own (about 2 s), where an object more in one run costs a tenth of that."""
    with Emulator(seed="empty") as emulator:
        store = emulator.store
        broken = {case: store.create_project(f"broken-{case}")["id"] for case in MALFORMED_PAGES}
        healthy = store.create_project("healthy")["id"]
        for project_id in [*broken.values(), healthy]:
            store.insert("project_logs", project_id, [{"id": f"r{i}", "input": i} for i in range(120)])
        warehouse = warehouse_in(tmp_path_factory.mktemp("malformed"))
        sync(emulator, warehouse)
        before = logs_by_project(warehouse)
        for case, (page, _) in MALFORMED_PAGES.items():
            serve(emulator, broken[case], page)
        store.insert("project_logs", healthy, [{"id": "new", "input": "after"}])
        done = run_cli("sync", "--api-url", emulator.url, *cli_warehouse_args(warehouse), "--full", "--json",
                       env={"BRAINTRUST_API_KEY": emulator.api_key})  # fmt: skip
        yield MalformedRun(done, broken, healthy, before, logs_by_project(warehouse))


@pytest.mark.parametrize("case", MALFORMED_PAGES)
def test_a_malformed_page_fails_its_object_in_one_line_and_the_others_sync(
    malformed_run: MalformedRun, case: str
) -> None:
    run, broken = malformed_run, malformed_run.broken[case]
    one_line(run.done.stderr)
    assert run.done.returncode == 1
    # The summary says why each object failed (the error's line, the most frequent reasons).
    (said,) = [o["error"] for o in json.loads(run.done.stdout)["objects"] if o["name"] == f"broken-{case}"]
    assert MALFORMED_PAGES[case][1] in said and broken in said and "\n" not in said
    assert run.after[run.healthy][2] == 1
    assert run.after[broken] == run.before[broken]  # nothing committed for the broken object


def test_a_later_page_whose_cursor_is_no_json_string_fails_its_object_in_one_line(
    emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    # The version probe and the first page are whole; the third answer ends with `"cursor": "c\x"`,
    # which the next page's early request reads off the body's tail before DuckDB parses it.
    project = emulator.store.create_project("bad-cursor")
    emulator.store.insert("project_logs", project["id"], [{"id": f"r{i}", "input": i} for i in range(50)])
    page = json.dumps({"events": [event()]})[:-1] + ', "cursor": "c\\x"}'
    route = f"/v1/project_logs/{project['id']}/fetch"
    emulator.faults.add(FaultRule(kind="body", route=route, body=page, after=2, times=1))
    done = run_cli("sync", "--api-url", emulator.url, *cli_warehouse_args(warehouse), "--page-limit", "10",
                   env={"BRAINTRUST_API_KEY": emulator.api_key})  # fmt: skip
    assert done.returncode == 1
    assert "not valid JSON" in one_line(done.stderr)


def test_a_page_that_fails_its_checks_leaves_no_table_in_the_process_s_staging_database(
    tmp_path: Path,
) -> None:
    staging = ObjectStaging(tmp_path / "failed", LOGS_REF)
    failing = stage.PageStager(LOGS, staging, [], ordered=True, oldest_xact=None, object_rows=0)
    with closing(failing), pytest.raises(PageMalformed, match="1 of its events has no id"):
        # Typed into a table, then refused: the table outlives the page unless the stager drops it.
        failing.stage(orjson.dumps({"events": [{"_xact_id": "1", "input": 1}], "cursor": None}), None)
    # The next object's stager shares the database, and stages as if it were new.
    (part,) = staged(tmp_path / "next", [logs_event("a", 2)]).paths
    assert part.exists()
    with closing(stage._session().connect()) as con:
        assert con.execute("SELECT table_name FROM duckdb_tables()").fetchall() == []


def test_ctrl_c_while_duckdb_reads_a_page_stops_the_sync_rather_than_failing_its_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = stage._one_string

    def interrupted_as_read(body: bytes | bytearray) -> pa.RecordBatchReader:
        table = real(body)

        def batches() -> Iterator[pa.RecordBatch]:
            raise KeyboardInterrupt  # as Ctrl-C's handler raises it, while DuckDB reads the page
            yield from table.to_batches()

        return pa.RecordBatchReader.from_batches(table.schema, batches())

    monkeypatch.setattr(stage, "_one_string", interrupted_as_read)
    stager = stage.PageStager(
        LOGS, ObjectStaging(tmp_path, LOGS_REF), [], ordered=True, oldest_xact=None, object_rows=0
    )
    # DuckDB reports it as an error of its own, which was taken for a malformed page: the object failed,
    # and the sync went on to the next one.
    with closing(stager), pytest.raises(KeyboardInterrupt):
        stager.stage(orjson.dumps({"events": [logs_event("a", 2)], "cursor": None}), None)


def test_misfits_keep_their_value_in_extra_and_nothing_is_lost(
    emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    # A project with no rows of its own: the pin and the first page are the page below, the next is empty.
    broken = emulator.store.create_project("messy")
    serve(
        emulator,
        broken["id"],
        [
            event("bad-time", created="yesterday"),
            event("number-time", created=1717000000),
            event("big", metadata={"n": BIG, "nested": [BIG, 1.5]}, output=BIG),
            event("drift", scores={"acc": "high", "ok": 0.5}, tags=["a", 3], brand_new={"x": [1, 2]}),
            event("fine", scores={"acc": 1}, is_root=True, tags=["t"]),
            # An older version of a misfit row, on the same page: only the newest may be written.
            event("drift", xact="1000198294685155000", scores={"acc": 0.1}, output="older"),
        ],
        times=2,
    )
    sync(emulator, warehouse)
    rows = {
        row[0]: row[1:]
        for row in query(
            warehouse,
            "SELECT id, created, _extra, metadata, output, scores, tags FROM project_logs WHERE project_id "
            "= ?",
            [broken["id"]],
        )
    }
    created, extra, *_ = rows["bad-time"]
    assert created is None and orjson.loads(extra) == {"created": "yesterday"}
    created, extra, *_ = rows["number-time"]
    assert created is None and orjson.loads(extra) == {"created": 1717000000}
    _, extra, metadata, output, *_ = rows["big"]
    assert extra is None and str(BIG) in metadata and output == str(BIG)
    assert query(warehouse, "SELECT (metadata->>'n') FROM project_logs WHERE id = 'big'") == [(str(BIG),)]
    _, extra, _, output, scores, tags = rows["drift"]
    assert (output, scores, tags) == (None, None, None) and len(rows) == 5
    assert orjson.loads(extra) == {
        "scores": {"acc": "high", "ok": 0.5},
        "tags": ["a", 3],
        "brand_new": {"x": [1, 2]},
    }
    _, extra, _, _, scores, tags = rows["fine"]
    assert (extra, scores, tags) == (None, {"acc": 1.0}, ["t"])


def test_extra_keeps_the_keys_in_the_event_s_order(emulator: Emulator, warehouse: WarehouseSettings) -> None:
    # In the order of a set of them, which changes with the process's string hashing: the same row synced
    # into two warehouses differed in its `_extra`'s text.
    broken = emulator.store.create_project("messy")
    names = ["zeta", "alpha", "mike", "bravo", "yankee", "charlie", "xray", "delta", "whiskey", "echo"]
    fields: dict[str, Any] = {name: index for index, name in enumerate(names[:5])}
    fields["tags"] = [["misfit"]]
    fields |= {name: [index] for index, name in enumerate(names[5:])}
    serve(emulator, broken["id"], [event("odd", **fields), event("plain")], times=2)
    sync(emulator, warehouse)
    ((extra,),) = query(warehouse, "SELECT _extra FROM project_logs WHERE id = 'odd'")
    assert list(orjson.loads(extra)) == list(fields)


def test_extra_keeps_numbers_as_the_page_wrote_them(emulator: Emulator, warehouse: WarehouseSettings) -> None:
    # Read as floats, `1e400` was kept as `Infinity`, which is no JSON (strict readers and `push --sql`
    # refused the column), and `-1e-400` as `-0.0`.
    broken = emulator.store.create_project("messy")
    kept = (
        '{"new_field": {"big": 1e400, "tiny": -1e-400, "exact": 1.50, "list": [2.5E3, -0.0], '
        '"wide": 123456789012345678901234567890}, "scores": {"s": "0.5", "t": -1e400}}'
    )
    page = (
        '{"events": [{"id": "odd", "_xact_id": "1000198294685155348", "created": "2025-06-02T09:00:00Z", '
        f"{kept[1:-1]}}}], " + '"cursor": null}'
    )
    serve(emulator, broken["id"], page, times=2)
    sync(emulator, warehouse)
    ((extra,),) = query(warehouse, "SELECT _extra FROM project_logs WHERE project_id = ?", [broken["id"]])

    def no_constant(name: str) -> None:
        raise ValueError(f"{name} is no JSON")

    as_written = json.loads(extra, parse_float=str, parse_constant=no_constant)
    assert as_written == json.loads(kept, parse_float=str)


@pytest.mark.parametrize(
    "misfit",
    [
        {"created": {"t": 1}},
        {"created": [1]},
        {"span_id": {"x": 1}},
        {"scores": {"a": {"b": 1}}},
        {"scores": {"a": [1]}},
        {"tags": [["a"]]},
        {"is_root": {"yes": True}},
        # Times DuckDB holds and Python's datetime cannot: every reader in Python would fail on them.
        {"created": "0001-01-01T00:00:00+01:00"},
        {"created": "-0001-01-01T00:00:00Z"},
        {"created": "9999-12-31T23:59:59.999999-01:00"},
        # Words DuckDB reads as a time: `epoch` was stored as 1970-01-01, its text lost.
        {"created": "epoch"},
        {"created": "EPOCH"},
        {"created": " epoch"},
        {"created": "-epoch"},
    ],
    ids=[
        "created-object",
        "created-list",
        "span-id-object",
        "score-object",
        "score-list",
        "tag-list",
        "flag",
        "year-0",
        "year-minus-1",
        "year-10000",
        "epoch",
        "epoch-upper",
        "epoch-blank",
        "epoch-signed",
    ],
)
def test_a_value_its_column_cannot_hold_lands_in_extra(
    emulator: Emulator, warehouse: WarehouseSettings, misfit: dict[str, Any]
) -> None:
    broken = emulator.store.create_project("messy")
    serve(emulator, broken["id"], [event("odd", **misfit), event("plain")], times=2)
    sync(emulator, warehouse)
    rows = dict(query(warehouse, "SELECT id, _extra FROM project_logs WHERE project_id = ?", [broken["id"]]))
    assert rows.keys() == {"odd", "plain"}
    assert orjson.loads(rows["odd"]) == misfit and rows["plain"] is None


def test_a_time_finer_than_a_microsecond_keeps_its_text_in_extra_and_its_column_the_microsecond(
    emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    broken = emulator.store.create_project("messy")
    times = {
        "nanoseconds": "2024-05-01T12:00:00.123456789Z",
        "seven-digits": "2024-05-01T12:00:00.1234567+02:00",
        "zeros-past-the-sixth": "2024-05-01T12:00:00.123456000Z",
        "microseconds": "2024-05-01T12:00:00.123456Z",
        "milliseconds": "2024-05-01T12:00:00.123Z",
    }
    serve(emulator, broken["id"], [event(name, created=time) for name, time in times.items()], times=2)
    sync(emulator, warehouse)
    rows = {
        name: (created, extra)
        for name, created, extra in query(
            warehouse,
            "SELECT id, strftime(created, '%H:%M:%S.%f'), _extra FROM project_logs WHERE project_id = ?",
            [broken["id"]],
        )
    }
    assert rows == {
        "nanoseconds": ("12:00:00.123456", '{"created":"2024-05-01T12:00:00.123456789Z"}'),
        "seven-digits": ("10:00:00.123456", '{"created":"2024-05-01T12:00:00.1234567+02:00"}'),
        "zeros-past-the-sixth": ("12:00:00.123456", None),
        "microseconds": ("12:00:00.123456", None),
        "milliseconds": ("12:00:00.123000", None),
    }


@pytest.mark.parametrize("page_fits", [True, False])
def test_a_map_with_a_key_given_twice_keeps_its_text_in_extra(
    emulator: Emulator, warehouse: WarehouseSettings, page_fits: bool
) -> None:
    # JSON allows a key twice and a map does not: typing such `scores` made the whole map NULL silently.
    broken = emulator.store.create_project("messy")
    events = [
        # A time that does not parse too: both land in `_extra`.
        event("twice", created="later", scores={"a": 1, "b": 0.5}),
        event("once", scores={"a": 1}),
        event("empty", scores={}),
        event("none", scores=None),
    ]
    if not page_fits:  # a string score: the page takes the misfit path, where the others are typed too
        events.append(event("text", scores={"a": "high"}))
    # The standard library's encoder cannot repeat a key: `b` is renamed in the text.
    body = json.dumps({"events": events, "cursor": None}).replace('"b": 0.5', '"a": 0.5')
    serve(emulator, broken["id"], body, times=2)
    sync(emulator, warehouse)
    rows = logs_by_id(warehouse, broken["id"], "scores, _extra")
    extras = {row_id: None if extra is None else orjson.loads(extra) for row_id, (_, extra) in rows.items()}
    assert rows["twice"][0] is None
    assert re.sub(r"\s", "", rows["twice"][1]) == '{"created":"later","scores":{"a":1,"a":0.5}}'
    assert {row_id: scores for row_id, (scores, _) in rows.items() if row_id != "twice"} == {
        "once": {"a": 1.0},
        "empty": {},
        "none": None,
        **({} if page_fits else {"text": None}),
    }
    assert {row_id: extra for row_id, extra in extras.items() if row_id != "twice"} == {
        "once": None,
        "empty": None,
        "none": None,
        **({} if page_fits else {"text": {"scores": {"a": "high"}}}),
    }


def test_an_event_naming_another_object_keeps_that_name_in_extra(
    emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    # The key column is the object's own id: the event's other value was dropped without a trace.
    broken = emulator.store.create_project("messy")
    page = [
        event("other", project_id="another-project"),
        event("own", project_id=broken["id"]),
        event("none"),
        # Not text: the page takes the misfit path, where the others must be kept too.
        event("number", project_id=5),
    ]
    serve(emulator, broken["id"], page, times=2)
    sync(emulator, warehouse)
    rows = {
        row_id: (project, None if extra is None else orjson.loads(extra))
        for row_id, (project, extra) in logs_by_id(warehouse, broken["id"], "project_id, _extra").items()
    }
    assert rows == {
        "other": (broken["id"], {"project_id": "another-project"}),
        "own": (broken["id"], None),
        "none": (broken["id"], None),
        "number": (broken["id"], {"project_id": 5}),
    }


def test_a_lone_surrogate_escape_becomes_the_replacement_character_and_its_page_syncs(
    emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    # Valid JSON (a string cut in the middle of an emoji, as `json.dumps` writes it), which DuckDB refuses.
    broken = emulator.store.create_project("cut")
    page = [event("cut", output="Sure! \ud83d", metadata={"k\udc00": ["\ud83d\ude00 whole"]}), event("plain")]
    serve(emulator, broken["id"], page, times=2)
    sync(emulator, warehouse)
    rows = logs_by_id(warehouse, broken["id"], "output, metadata")
    assert rows.keys() == {"cut", "plain"}
    output, metadata = rows["cut"]
    assert orjson.loads(output) == "Sure! \ufffd"
    assert orjson.loads(metadata) == {"k\ufffd": ["\U0001f600 whole"]}


@pytest.mark.parametrize("shift", ["", "x", "xx", "xxx"])
def test_a_lone_surrogate_syncs_when_duckdb_s_error_cuts_a_character_of_the_page_it_quotes(
    emulator: Emulator, warehouse: WarehouseSettings, shift: str
) -> None:
    # DuckDB quotes the page's start in its error, cut at a byte count: inside a 4-byte character for one
    # of these shifts, where its Python binding raised UnicodeDecodeError and the whole run crashed.
    broken = emulator.store.create_project("cut-quoted")
    text = shift + "é\U0001f600a" * 40
    # Its quote is of the page's first 50 bytes or so: the wide text first.
    page = {"events": [{"input": text, **event("wide")}, event("cut", input="x\ud83d")], "cursor": None}
    # The API's UTF-8, but for the lone surrogate, which it escapes.
    serve(emulator, broken["id"], json.dumps(page, ensure_ascii=False).replace("\ud83d", "\\ud83d"), times=2)
    sync(emulator, warehouse)
    rows = logs_by_id(warehouse, broken["id"], "input")
    assert {row_id: orjson.loads(value) for row_id, (value,) in rows.items()} == {
        "wide": text,
        "cut": "x\ufffd",
    }


def test_ids_that_differ_only_in_a_lone_surrogate_stay_apart_through_updates_and_deletes(
    emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    # Upstream id, and as stored: a lone half as its escape's text, that text written out (a backslash,
    # then `ud83d`) with its backslashes doubled, so that the two stay apart. (Pairs: ruff takes keys
    # that differ only in a lone surrogate for one repeated key.)
    stored = dict([
        ("x\ud83d", "x\\ud83d"),
        ("x\ud83e", "x\\ud83e"),
        ("x\ufffd", "x\ufffd"),
        ("x\udc00y", "x\\udc00y"),
        ("x\\ud83d", "x\\\\ud83d"),
        ("x\\\ud83d", "x\\\\\\ud83d"),
        ("x\\\\ud83d", "x\\\\\\\\ud83d"),
        ("x\\uD83D", "x\\uD83D"),
        ("a\\b\\u0041", "a\\b\\u0041"),
    ])  # fmt: skip
    assert len(stored) == 9
    for page_of in ("lone halves", "text only"):  # DuckDB reads the second page as it is, Python the first
        project = emulator.store.create_project(page_of)["id"]
        lone = page_of == "lone halves"
        ids = [i for i in stored if any("\ud800" <= c <= "\udfff" for c in i) == lone]
        emulator.store.insert("project_logs", project, [{"id": i, "input": n} for n, i in enumerate(ids)])
        sync(emulator, warehouse)
        assert {i: n for i, (n,) in logs_by_id(warehouse, project, "input").items()} == {
            stored[i]: str(n) for n, i in enumerate(ids)
        }
    project = emulator.store.create_project("cut ids")["id"]
    emulator.store.insert("project_logs", project, [{"id": i, "input": n} for n, i in enumerate(stored)])
    sync(emulator, warehouse)
    # As U+FFFD, the first three were one row; as an escape's text, the first and the fifth.
    assert {i: n for i, (n,) in logs_by_id(warehouse, project, "input").items()} == {
        stored[i]: str(n) for n, i in enumerate(stored)
    }
    emulator.store.insert("project_logs", project, [{"id": "x\ud83e", "input": 10}])
    emulator.store.insert("project_logs", project, [{"id": "x\\ud83d", "input": 11}])
    emulator.store.insert("project_logs", project, [{"id": "x\ud83d", "_object_delete": True}])
    sync(emulator, warehouse, reconcile=True)  # the API's fetch never shows a deleted row
    expected = {stored[i]: str(n) for n, i in enumerate(stored) if i != "x\ud83d"}
    assert {i: n for i, (n,) in logs_by_id(warehouse, project, "input").items()} == {
        **expected,
        stored["x\ud83e"]: "10",
        stored["x\\ud83d"]: "11",
    }


def test_a_page_mended_of_a_lone_surrogate_keeps_every_other_value_as_written(
    emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    # The page was read and written again by Python: 1e400 became `Infinity` (not JSON), 1E5 100000.0.
    numbers = '{"huge": 1e400, "exp": 1E5, "wide": 18446744073709551616, "tenth": 1.10}'
    projects = {}
    for name, output in (("cut", "Sure! \\ud83d"), ("whole", "Sure! \\ufffd")):
        projects[name] = emulator.store.create_project(name)["id"]
        written = json.dumps(event(name, input="\\ud83d is text"))[:-1]
        page = f'{{"events": [{written}, "output": "{output}", "metadata": {numbers}}}], "cursor": null}}'
        serve(emulator, projects[name], page, times=2)
    sync(emulator, warehouse)
    stored = {
        project: rows
        for project, *rows in query(
            warehouse, "SELECT project_id, output, input, metadata FROM project_logs ORDER BY project_id"
        )
    }
    # The mended page is stored as the same page written with U+FFFD in the first place.
    assert stored[projects["cut"]] == stored[projects["whole"]]
    output, text_input, metadata = stored[projects["cut"]]
    assert orjson.loads(output) == "Sure! \ufffd" and orjson.loads(text_input) == "\\ud83d is text"
    assert "1e400" in metadata and "18446744073709551616" in metadata


def test_values_nested_deeper_than_python_reads_sync_with_their_page(
    emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    # 1,500 levels: Python's reader stopped at its recursion limit, and the whole run with a traceback.
    deep = "[" * 1500 + '"bottom"' + "]" * 1500
    broken = emulator.store.create_project("deep")
    # The unknown key makes the page not fit, so its events are read in Python one by one too.
    nested = json.dumps(event("deep"))[:-1] + f', "metadata": {{"d": {deep}}}, "unknown": {deep}}}'
    page = f'{{"events": [{nested}, {json.dumps(event("plain"))}], "cursor": null}}'
    serve(emulator, broken["id"], page, times=2)
    env = {"BRAINTRUST_API_KEY": emulator.api_key}
    done = run_cli("sync", "--api-url", emulator.url, *cli_warehouse_args(warehouse), "--json", env=env)
    assert done.returncode == 0, done.stderr
    rows = logs_by_id(warehouse, broken["id"], "metadata, _extra")
    assert rows.keys() == {"deep", "plain"}
    metadata, extra = rows["deep"]
    # Compared as text: Python's reader would stop at these values too.
    assert (metadata, extra.replace(" ", "")) == (f'{{"d":{deep}}}', f'{{"unknown":{deep}}}')


def sync_giving_up_soon(
    emulator: Emulator, warehouse: WarehouseSettings, *args: str
) -> subprocess.CompletedProcess[str]:
    """`bt-sync sync --json ARGS` with two attempts per request and no wait between them."""
    env = {
        "BRAINTRUST_API_KEY": emulator.api_key,
        "BT_SYNC_MAX_ATTEMPTS": "2",
        "BT_SYNC_BACKOFF_INITIAL_S": "0",
    }
    return run_cli(
        "sync", "--api-url", emulator.url, *cli_warehouse_args(warehouse), "--json", *args, env=env
    )


@pytest.mark.parametrize("status", [503, 400, 403])  # 403: a key may read some objects, not others
def test_an_object_the_api_keeps_failing_fails_alone_and_the_summary_is_printed(
    emulator: Emulator, projects: tuple[dict[str, Any], ...], warehouse: WarehouseSettings, status: int
) -> None:
    broken, _ = projects
    emulator.faults.add(FaultRule(kind="status", status=status, route=f"{broken['id']}/fetch", times=None))
    done = sync_giving_up_soon(emulator, warehouse)
    assert done.returncode == 1
    by_name = {o["name"]: o for o in orjson.loads(done.stdout)["objects"]}
    assert by_name["broken"]["status"] == "failed" and f"HTTP {status}" in by_name["broken"]["error"]
    assert by_name["healthy"]["status"] == "synced" and by_name["healthy"]["rows"] == 120
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("bt-sync: error: 1 of 2 objects failed (project_logs 'broken': ")


@pytest.mark.parametrize("rejected_first", [True, False])
@pytest.mark.parametrize(
    ("status", "says", "stopped"),
    [
        (401, "Braintrust rejected the API key (HTTP 401", "the API rejected the key"),
        # A proxy or a move of the API mid-run: every object after it would meet it too.
        (307, "with a redirect (HTTP 307)", "the API could not be reached as set"),
    ],
)
def test_what_would_fail_every_object_mid_run_stops_it_keeping_the_summary_of_what_committed(
    emulator: Emulator,
    projects: tuple[dict[str, Any], ...],
    warehouse: WarehouseSettings,
    rejected_first: bool,
    status: int,
    says: str,
    stopped: str,
) -> None:
    broken, healthy = projects if rejected_first else projects[::-1]
    emulator.faults.add(FaultRule(kind="status", status=status, route=f"{broken['id']}/fetch", times=None))
    done = sync_giving_up_soon(emulator, warehouse, "--reconcile")
    assert done.returncode == 1
    summary = orjson.loads(done.stdout)
    by_name = {o["name"]: o for o in summary["objects"]}
    assert by_name[broken["name"]]["status"] == "failed"
    assert says in by_name[broken["name"]]["error"]
    tried_after = [o["name"] for o in summary["objects"]].index(broken["name"]) == 0
    other = by_name[healthy["name"]]
    if tried_after:
        assert other["error"] == f"not tried: {stopped} for an object before"
    else:
        assert (other["status"], other["rows"]) == ("synced", 120)
    assert summary["removed_objects"] == []  # no reconcile of what vanished then
    assert done.stderr.startswith(f"bt-sync: error: {1 + tried_after} of 2 objects failed (")


def test_objects_after_two_that_found_the_api_unavailable_are_not_tried(
    emulator: Emulator, projects: tuple[dict[str, Any], ...], warehouse: WarehouseSettings
) -> None:
    for name in ("third", "fourth", "fifth"):
        project = emulator.store.create_project(name)
        emulator.store.insert("project_logs", project["id"], [{"id": "r", "input": 1}])
    emulator.faults.add(FaultRule(kind="status", status=503, route="/fetch", times=None))
    done = sync_giving_up_soon(emulator, warehouse)
    assert done.returncode == 1
    objects = orjson.loads(done.stdout)["objects"]
    errors = [o["error"] for o in objects]
    assert ["HTTP 503" in error for error in errors] == [True, True, False, False, False]
    not_tried = "not tried: the API was unavailable for the objects before"
    assert errors[2:] == [not_tried] * 3
    # Two attempts at the first fetch of each of two objects: the others were not tried.
    assert emulator.stats.snapshot()["requests"]["POST project_logs.fetch"] == 4
    # Said once for all of them, first as the most objects' reason: the line, one clause an object, grew to
    # 16 KB over 163 objects.
    assert done.stderr.startswith(
        "bt-sync: error: 5 of 5 objects failed "
        f"(project_logs '{objects[2]['name']}' and 2 more: {not_tried}; "
    )
    assert done.stderr.count("not tried") == 1


def block_files_of(warehouse: WarehouseSettings, project: dict[str, Any]) -> None:
    """A file where the object's directory of files must go: its files cannot be written."""
    if warehouse.destination is DestinationKind.ICEBERG:
        # The table's own location: its name and a suffix of its own.
        (table,) = Path(str(warehouse.iceberg_warehouse), "braintrust").glob("project_logs-*")
        directory = table / "data"
    else:
        directory = Path(warehouse.tables_root, "_bt_sync", "project_logs")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"project_id={project['id']}").touch()


@pytest.mark.parametrize(
    ("destination", "says"), [("duckdb", "cannot write"), ("iceberg", "committing project_logs 'broken': ")]
)
def test_an_object_whose_files_cannot_be_written_fails_alone_and_the_summary_is_printed(
    emulator: Emulator,
    projects: tuple[dict[str, Any], ...],
    warehouse: WarehouseSettings,
    tmp_path: Path,
    destination: str,
    says: str,
) -> None:
    broken, _ = projects
    if destination == "iceberg":
        warehouse = iceberg_in(tmp_path)
        open_destination(warehouse)  # its tables, before the file in the way
    block_files_of(warehouse, broken)
    done = sync_giving_up_soon(emulator, warehouse)
    assert done.returncode == 1, done.stderr
    by_name = {o["name"]: o for o in orjson.loads(done.stdout)["objects"]}
    assert by_name["broken"]["status"] == "failed" and says in by_name["broken"]["error"]
    assert by_name["healthy"]["status"] == "synced" and by_name["healthy"]["rows"] == 120
    assert query(warehouse, "SELECT count(*) FROM project_logs") == [(120,)]


def test_an_object_whose_merge_cannot_write_its_scratch_fails_alone_and_the_summary_is_printed(
    emulator: Emulator, projects: tuple[dict[str, Any], ...], warehouse: WarehouseSettings
) -> None:
    broken, healthy = projects
    assert sync_giving_up_soon(emulator, warehouse).returncode == 0
    for project in (broken, healthy):
        emulator.store.insert("project_logs", project["id"], [{"id": "r1", "input": "changed"}])
    # A file where the merge's scratch must go: its writes fail, as on a full disk. DuckDB's error
    # stopped the whole run, the other object not tried and no summary printed.
    (merges,) = Path(warehouse.state_dir).glob("staging/*/merge")
    shutil.rmtree(merges / broken["id"], ignore_errors=True)
    (merges / broken["id"]).touch()
    done = sync_giving_up_soon(emulator, warehouse)
    assert done.returncode == 1, done.stderr
    by_name = {o["name"]: o for o in orjson.loads(done.stdout)["objects"]}
    assert by_name["broken"]["status"] == "failed"
    assert by_name["broken"]["error"].startswith("cannot merge the rows read: ")
    assert (by_name["healthy"]["status"], by_name["healthy"]["updated"]) == ("synced", 1)
    (merges / broken["id"]).unlink()
    assert sync_giving_up_soon(emulator, warehouse).returncode == 0
    assert logs_by_id(warehouse, broken["id"], "input")["r1"] == ('"changed"',)


def test_objects_after_two_whose_files_could_not_be_written_are_not_tried(
    emulator: Emulator, projects: tuple[dict[str, Any], ...], warehouse: WarehouseSettings
) -> None:
    third = emulator.store.create_project("third")
    emulator.store.insert("project_logs", third["id"], [{"id": "r", "input": 1}])
    for project in (*projects, third):  # as a full disk would
        block_files_of(warehouse, project)
    done = sync_giving_up_soon(emulator, warehouse)
    assert done.returncode == 1
    errors = [o["error"] for o in orjson.loads(done.stdout)["objects"]]
    assert ["cannot write" in error for error in errors] == [True, True, False]
    assert errors[2] == "not tried: the warehouse could not be written for the objects before"


def test_an_object_deleted_during_the_run_is_skipped_with_a_warning(
    emulator: Emulator, projects: tuple[dict[str, Any], ...], warehouse: WarehouseSettings
) -> None:
    broken, _ = projects
    # Deleted once listed: its rows and the object itself answer 404 from then on.
    emulator.faults.add(FaultRule(kind="status", status=404, route=f"{broken['id']}/fetch", times=None))
    emulator.faults.add(
        FaultRule(kind="status", status=404, method="GET", route=f"^/v1/project/{broken['id']}$", times=None)
    )
    done = run_cli("sync", "--api-url", emulator.url, *cli_warehouse_args(warehouse), "--json",
                   env={"BRAINTRUST_API_KEY": emulator.api_key})  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = orjson.loads(done.stdout)
    by_name = {o["name"]: o for o in summary["objects"]}
    assert by_name["broken"]["status"] == "skipped" and "deleted upstream" in by_name["broken"]["error"]
    assert by_name["healthy"]["status"] == "synced" and by_name["healthy"]["rows"] == 120
    assert "broken" in done.stderr and done.stderr.count("\n") == 1
    # The closing line's counts are of the catalog as listed, the skipped object among them: it says so.
    console = Console(record=True, width=200)
    print_summary(SyncSummary.model_validate(summary), console)
    assert (
        console.export_text()
        .rstrip()
        .endswith("retries); 1 object of them skipped (deleted upstream during the sync)")
    )


def test_an_object_deleted_during_the_run_reports_the_rows_it_still_holds(
    emulator: Emulator, projects: tuple[dict[str, Any], ...], warehouse: WarehouseSettings
) -> None:
    broken, _ = projects
    before = {o.name: o for o in sync(emulator, warehouse).objects}["broken"]
    emulator.faults.add(FaultRule(kind="status", status=404, route=f"{broken['id']}/fetch", times=None))
    emulator.faults.add(
        FaultRule(kind="status", status=404, method="GET", route=f"^/v1/project/{broken['id']}$", times=None)
    )
    skipped = {o.name: o for o in sync(emulator, warehouse).objects}["broken"]
    # Its rows stay until a reconcile: the summary said 0 rows, 0 bytes and no version.
    assert skipped.status == "skipped" and skipped.rows == before.rows > 0
    assert (skipped.bytes, skipped.version) == (before.bytes, before.version)


def test_a_404_for_the_rows_of_an_object_that_exists_is_a_failure_not_a_deletion(
    emulator: Emulator, projects: tuple[dict[str, Any], ...], warehouse: WarehouseSettings
) -> None:
    broken, _ = projects
    sync(emulator, warehouse)
    emulator.faults.add(FaultRule(kind="status", status=404, route=f"{broken['id']}/fetch", times=1))
    done = run_cli("sync", "--api-url", emulator.url, *cli_warehouse_args(warehouse), "--reconcile", "--json",
                   env={"BRAINTRUST_API_KEY": emulator.api_key})  # fmt: skip
    assert done.returncode == 1
    by_name = {o["name"]: o for o in orjson.loads(done.stdout)["objects"]}
    # A failure's mode is what was asked for: --reconcile re-reads everything.
    assert (by_name["broken"]["status"], by_name["broken"]["mode"]) == ("failed", "full")
    assert "(yet the object exists: not taken as deleted)" in by_name["broken"]["error"]
    assert query(warehouse, "SELECT count(*) FROM project_logs WHERE project_id = ?", [broken["id"]]) == [
        (120,)
    ]
    assert run_cli("sync", "--api-url", emulator.url, *cli_warehouse_args(warehouse),
                   env={"BRAINTRUST_API_KEY": emulator.api_key}).returncode == 0  # fmt: skip
