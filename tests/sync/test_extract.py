"""Reading one object: the version probe, and the pages a read fetches and checkpoints."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pytest

from connector.api.client import BraintrustClient
from connector.api.pagination import PagePosition
from connector.config import ApiSettings, WarehouseSettings
from connector.destinations.base import ObjectRef
from connector.emulator import Emulator, FaultRule
from connector.errors import MalformedResponse, PaginationError, WarehouseError
from connector.progress import NullProgress, ProgressTask
from connector.sync import stage
from connector.sync.extract import extract_object, newest_version, trailing_cursor
from connector.sync.seen import SeenIds
from connector.sync.shape import PageMalformed
from connector.sync.stage import PageStager, StagedPage
from connector.sync.staging import Checkpoint, ObjectStaging
from tests.helpers import LOGS, fast_client, fetches_ahead_done, query, small_files, sync


@pytest.fixture
def client(emulator: Emulator) -> Iterator[BraintrustClient]:
    with fast_client(emulator) as running:
        yield running


def logs_of(project: dict[str, Any]) -> ObjectRef:
    return ObjectRef(LOGS, project["id"], project["id"], project["name"])


def staged_ids(staging: ObjectStaging, parts: list[str]) -> list[str]:
    """The ids the parts hold, sorted."""
    return sorted(row_id for row_id, _ in staged_rows(staging, parts))


def numbered_ids(count: int) -> list[str]:
    """`r00`, `r01`, …: the ids `insert_numbered` writes, `count` of them."""
    return [f"r{n:02d}" for n in range(count)]


def insert_numbered(emulator: Emulator, project_id: str, count: int) -> None:
    """Log `count` rows to the project, one write each (so one version each), ids `numbered_ids`."""
    for number, row_id in enumerate(numbered_ids(count)):
        emulator.store.insert("project_logs", project_id, [{"id": row_id, "input": number}])


def test_the_version_probe_reads_one_trace_and_returns_its_version(
    emulator: Emulator, client: BraintrustClient
) -> None:
    project = emulator.store.create_project("probe")
    for number in range(5):
        emulator.store.insert("project_logs", project["id"], [{"id": f"r{number}", "input": number}])
    newest = max(int(row["_xact_id"]) for row in emulator.store.live_rows("project_logs", project["id"]))
    assert newest_version(client, logs_of(project)) == newest
    # One trace of one span: the probe costs one row whatever the object's size.
    assert emulator.stats.rows_served[project["id"]] == 1


def test_the_version_probe_of_an_empty_object_is_none(emulator: Emulator, client: BraintrustClient) -> None:
    project = emulator.store.create_project("empty")
    assert newest_version(client, logs_of(project)) is None


def test_the_version_probe_follows_empty_pages_that_carry_a_cursor(
    emulator: Emulator, client: BraintrustClient
) -> None:
    project = emulator.store.create_project("behind-empty-pages")
    emulator.store.insert("project_logs", project["id"], [{"id": "only", "input": 1}])
    emulator.faults.add(FaultRule(kind="empty_page", route=f"{project['id']}/fetch", times=3))
    (row,) = emulator.store.live_rows("project_logs", project["id"])
    assert newest_version(client, logs_of(project)) == int(row["_xact_id"])


def test_the_version_probe_asks_each_empty_page_s_cursor_for_one_more_trace(
    emulator: Emulator, client: BraintrustClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = emulator.store.create_project("cursor-after-empty-pages")
    emulator.store.insert("project_logs", project["id"], [{"id": "only", "input": 1}])
    emulator.faults.add(FaultRule(kind="empty_page", route=f"{project['id']}/fetch", times=2))
    asked: list[tuple[int | None, str | None]] = []
    answered: list[str | None] = []
    fetch_raw = client.fetch_raw

    def recorded(*args: Any) -> bytes:
        asked.append((args[-1].limit, args[-1].cursor))
        body = fetch_raw(*args)
        answered.append(json.loads(body).get("cursor"))
        return body

    monkeypatch.setattr(client, "fetch_raw", recorded)
    newest_version(client, logs_of(project))
    assert asked == [(1, None), (1, answered[0]), (1, answered[1])]
    assert answered[0] and answered[1]


@pytest.mark.parametrize(
    "page", ['{"events": [], "cursor": ""}', '{"events": [], "cursor": null}', '{"events": []}']
)
@pytest.mark.parametrize(("confirm_empty", "requests"), [(False, 1), (True, 2)])
def test_an_empty_page_without_a_cursor_ends_the_probe(
    emulator: Emulator, client: BraintrustClient, page: str, confirm_empty: bool, requests: int
) -> None:
    project = emulator.store.create_project("ends-empty")
    emulator.faults.add(FaultRule(kind="body", route=f"{project['id']}/fetch", body=page, times=None))
    assert newest_version(client, logs_of(project), confirm_empty=confirm_empty) is None
    # Asked for twice before it is believed, where one wrong answer would delete rows.
    assert emulator.stats.requests[("POST", "project_logs.fetch")] == requests


def test_one_wrong_end_of_the_history_does_not_end_a_probe_that_confirms_it(
    emulator: Emulator, client: BraintrustClient
) -> None:
    project = emulator.store.create_project("told-empty-once")
    emulator.store.insert("project_logs", project["id"], [{"id": "only", "input": 1}])
    told = '{"events": []}'
    emulator.faults.add(FaultRule(kind="body", route=f"{project['id']}/fetch", body=told, times=1))
    (row,) = emulator.store.live_rows("project_logs", project["id"])
    assert newest_version(client, logs_of(project), confirm_empty=True) == int(row["_xact_id"])


def test_the_version_probe_stops_after_too_many_empty_pages(
    emulator: Emulator, client: BraintrustClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("connector.sync.extract.MAX_EMPTY_PAGES", 3)
    project = emulator.store.create_project("only-empty-pages")
    emulator.store.insert("project_logs", project["id"], [{"id": "only", "input": 1}])
    emulator.faults.add(FaultRule(kind="empty_page", route=f"{project['id']}/fetch", times=None))
    with pytest.raises(PaginationError, match="3 empty pages in a row"):
        newest_version(client, logs_of(project))
    assert emulator.stats.requests[("POST", "project_logs.fetch")] == 3


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"events": [}', "the page is not valid JSON"),
        ('{"events": [{"_xact_id": "5"}], "cursor": null}', "id"),
        # No end of the history: a reconcile believing one would delete every row the object has.
        *[
            (f'{{"events": [], "cursor": {cursor}}}', "`cursor` is not text")
            for cursor in ("0", "false", "5", "[]")
        ],
    ],
)
def test_a_malformed_probe_names_the_object_and_the_reason(
    emulator: Emulator, client: BraintrustClient, body: str, reason: str
) -> None:
    project = emulator.store.create_project("malformed")
    emulator.faults.add(FaultRule(kind="body", route=f"{project['id']}/fetch", body=body, times=None))
    with pytest.raises(MalformedResponse) as raised:
        newest_version(client, logs_of(project))
    message = str(raised.value)
    assert f"project_logs 'malformed' ({project['id']}) is malformed" in message
    assert reason in message and message.endswith("; nothing was committed for it")


# Staging: what each page keeps ------------------------------------------------------------------------


CREATED = "2025-06-02T09:00:00Z"


def page(*events: tuple[str, int], cursor: str | None = None) -> bytes:
    return json.dumps(
        {
            "events": [
                {"id": row_id, "_xact_id": str(xact), "root_span_id": row_id, "created": CREATED}
                for row_id, xact in events
            ],
            "cursor": cursor,
        }
    ).encode()


def staged_rows(staging: ObjectStaging, parts: list[str]) -> list[tuple[str, int]]:
    with duckdb.connect() as con:
        return con.execute(
            "SELECT id, _xact_id FROM read_parquet($paths) ORDER BY _xact_id DESC, id",
            {"paths": [str(staging.directory / name) for name in parts]},
        ).fetchall()


@pytest.fixture
def staging(tmp_path: Path) -> ObjectStaging:
    return ObjectStaging(tmp_path, ObjectRef(LOGS, "object", "project", "bot"))


def stager_of(staging: ObjectStaging, parts: list[str] | None = None) -> PageStager:
    return PageStager(LOGS, staging, parts or [], ordered=True, oldest_xact=None, object_rows=0)


def test_a_page_keeps_the_versions_above_the_cutoff_and_each_id_s_newest(staging: ObjectStaging) -> None:
    with closing(stager_of(staging)) as stager:
        staged = stager.stage(page(("a", 7), ("a", 6), ("b", 6), ("c", 5), ("d", 4), cursor="next"), 5)
        staged.wait()
    assert (staged.cursor, staged.events, staged.rows, staged.newest_xact, staged.oldest) == (
        "next", 5, 2, 7, (4, "d")
    )  # fmt: skip
    assert staged_rows(staging, staged.parts) == [("a", 7), ("b", 6)]


def test_a_write_that_stores_fewer_rows_than_it_keeps_fails_and_leaves_no_part(
    staging: ObjectStaging, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kept rows are picked by their position on the page: a selection one event short (as if
    # the page were typed into more rows than it has events) would drop the last row without a word.
    real_table = stage._Selection.table
    monkeypatch.setattr(
        stage._Selection, "table", lambda self, parts: real_table(self, parts).slice(0, self.events - 1)
    )
    with closing(stager_of(staging)) as stager:
        staged = stager.stage(page(("a", 7), ("b", 6), ("c", 5)), None)
        with pytest.raises(WarehouseError) as failure:
            staged.wait()
    assert str(failure.value) == "project_logs: staging wrote 2 rows of a page where 3 were kept"
    assert not (staging.directory / staged.parts[0]).exists()


def test_an_ordered_read_stages_each_id_once_also_across_a_resume(staging: ObjectStaging) -> None:
    with closing(stager_of(staging)) as stager:
        first = stager.stage(page(("a", 9), ("b", 8)), None)
        second = stager.stage(page(("a", 7), ("c", 6)), None)
        second.wait()
    assert stager.ordered and second.rows == 1
    # A resumed read remembers the ids of the parts its checkpoint names, and numbers parts after them.
    with closing(stager_of(staging, [*first.parts, *second.parts])) as resumed:
        third = resumed.stage(page(("b", 5), ("c", 4), ("d", 3)), None)
        third.wait()
    assert third.parts == ["part-000002.parquet"] and third.rows == 1
    assert staged_rows(staging, [*first.parts, *second.parts, *third.parts]) == [
        ("a", 9), ("b", 8), ("c", 6), ("d", 3)
    ]  # fmt: skip


def test_a_page_is_typed_only_once_the_page_before_is_written(
    staging: ObjectStaging, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One typed page in memory at a time: a page's write overlaps with the next page's shape, not with
    # its typing. Each write is slowed down, so that typing the next page would come first if it could.
    steps: list[str] = []
    write, type_page = PageStager._write, stage._PageSql.type_page

    def slow_write(stager: PageStager, *args: Any) -> None:
        time.sleep(0.1)
        write(stager, *args)
        steps.append("written")

    def typing(sql: stage._PageSql, *args: Any) -> str:
        steps.append("typed")
        return type_page(sql, *args)

    monkeypatch.setattr(PageStager, "_write", slow_write)
    monkeypatch.setattr(stage._PageSql, "type_page", typing)
    with closing(stager_of(staging)) as stager:
        staged = [stager.stage(page((f"{n}", 100 - n)), None) for n in range(3)]
        staged[-1].wait()
    assert steps == ["typed", "written"] * 3
    assert len(staged_rows(staging, [part for done in staged for part in done.parts])) == 3


def test_ids_staged_many_pages_before_are_recognised_from_the_files_they_are_kept_in(
    staging: ObjectStaging, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 20 pages of two new ids each, with at most 10 ids kept in memory: the first ones are merged into
    # files in the object's scratch directory. Then the older versions of all 40.
    monkeypatch.setattr(stage, "SeenIds", partial(SeenIds, recent_ids=10))
    pages = [page((f"{n}-a", 1000 - 2 * n), (f"{n}-b", 999 - 2 * n)) for n in range(20)]
    with closing(stager_of(staging)) as stager:
        staged = [stager.stage(body, None) for body in pages]
        assert any((staging.directory / "seen-ids").iterdir())
        older = stager.stage(
            page(*[(f"{n}-{side}", 500 - n) for n in range(20) for side in "ab"], ("new", 1)), None
        )
        older.wait()
    assert older.rows == 1 and len(staged_rows(staging, [*older.parts])) == 1
    assert len(staged_rows(staging, [part for done in (*staged, older) for part in done.parts])) == 41
    assert not (staging.directory / "seen-ids").exists()


def test_pages_out_of_order_keep_every_version_for_the_merge_to_choose(staging: ObjectStaging) -> None:
    with closing(stager_of(staging)) as stager:
        first = stager.stage(page(("a", 5), ("b", 4)), None)
        second = stager.stage(page(("a", 9), ("b", 3)), None)
        third = stager.stage(page(("c", 7)), None)
        third.wait()
    # The next page must start below the oldest version of any page, not of the last one.
    assert not stager.ordered and stager.oldest_xact == 3
    assert staged_rows(staging, [*first.parts, *second.parts, *third.parts]) == [
        ("a", 9), ("c", 7), ("a", 5), ("b", 4), ("b", 3)
    ]  # fmt: skip


def test_pages_that_meet_at_one_version_are_still_in_order(staging: ObjectStaging) -> None:
    with closing(stager_of(staging)) as stager:
        first = stager.stage(page(("a", 5), ("b", 4)), None)
        # One write's rows can span two pages: this page's newest is the last page's oldest.
        second = stager.stage(page(("a", 4), ("c", 4), ("d", 3)), None)
        second.wait()
    assert stager.ordered and second.rows == 2
    assert staged_rows(staging, [*first.parts, *second.parts]) == [("a", 5), ("b", 4), ("c", 4), ("d", 3)]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            b'{"events": [{"id": "a" "_xact_id": "1"}], "cursor": null}',
            r"^the page is not valid JSON \(.+\)$",
        ),
        (
            b'{"events": [{"id": "a", "_xact_id": "12a"}, {"id": "b", "_xact_id": "7"}], "cursor": null}',
            r"^1 of its events have a `_xact_id` that is not a 64-bit decimal number, e\.g\. '12a'$",
        ),
        (
            b'{"events": [{"id": "a", "_xact_id": null}, {"id": "b"}], "cursor": null}',
            r"^2 of its events have a `_xact_id` that is not a 64-bit decimal number, "
            r"e\.g\. null or missing$",
        ),
    ],
    ids=["invalid", "bad-version", "null-version"],
)
def test_a_malformed_page_is_refused_with_the_reason(staging: ObjectStaging, body: bytes, says: str) -> None:
    with closing(stager_of(staging)) as stager, pytest.raises(PageMalformed, match=says):
        stager.stage(body, None)


@pytest.mark.parametrize(
    ("files_per_object", "page_rows", "part_rows"),
    [
        # One file an object: a page's parts are as large as everything staged before it (two rows at least).
        (1, (4, 8, 12), [[2, 2], [4, 4], [12]]),
        # Files of a quarter of the object: the first page is cut, a page after pages stop doubling is not.
        (4, (8, 4), [[2, 2, 2, 2], [4]]),
    ],
)
def test_parts_grow_with_the_rows_the_object_has_staged_while_pages_double(
    staging: ObjectStaging,
    monkeypatch: pytest.MonkeyPatch,
    files_per_object: int,
    page_rows: tuple[int, ...],
    part_rows: list[list[int]],
) -> None:
    small_files(monkeypatch, min_rows=2, files_per_object=files_per_object)
    sizes = []
    with closing(stager_of(staging)) as stager:
        newest = 100
        for count in page_rows:
            staged = stager.stage(page(*((f"r{newest - n}", newest - n) for n in range(count))), None)
            staged.wait()
            sizes.append([len(staged_rows(staging, [name])) for name in staged.parts])
            newest -= count
    assert sizes == part_rows


def test_a_page_of_many_rows_is_cut_into_parts_in_page_order(
    staging: ObjectStaging, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_files(monkeypatch, min_rows=2)
    with closing(stager_of(staging)) as stager:
        staged = stager.stage(page(*((f"r{n}", 100 - n) for n in range(10))), None)
        staged.wait()
    # At most four parts a page: ten rows make parts of three, and the first holds the newest rows.
    assert staged.parts == [f"part-{n:06d}.parquet" for n in range(4)] and staged.rows == 10
    assert [len(staged_rows(staging, [name])) for name in staged.parts] == [3, 3, 3, 1]
    assert staged_rows(staging, staged.parts[:1]) == [("r0", 100), ("r1", 99), ("r2", 98)]


@pytest.mark.parametrize("leftover", ["file", "directory"])
def test_a_write_killed_before_its_rename_leaves_nothing_in_the_way(
    staging: ObjectStaging, monkeypatch: pytest.MonkeyPatch, leftover: str
) -> None:
    # A page of one part is written to a temporary file, a page of several to a temporary directory:
    # whatever a killed write left under that name, the next write of the part replaces it.
    small_files(monkeypatch, min_rows=2)
    for number in range(5):
        temporary = staging.part_path(number).with_name(f".part-{number:06d}.tmp")
        temporary.parent.mkdir(parents=True, exist_ok=True)
        if leftover == "file":
            temporary.write_bytes(b"cut short")
        else:
            (temporary / "_part=0").mkdir(parents=True)
            (temporary / "_part=0" / "data_0.parquet").write_bytes(b"cut short")
    with closing(stager_of(staging)) as stager:
        one = stager.stage(page(("a", 9)), None)
        several = stager.stage(page(*((f"r{n}", 8 - n) for n in range(4))), None)
        several.wait()
    assert one.parts == ["part-000000.parquet"]
    assert several.parts == ["part-000001.parquet", "part-000002.parquet"]
    assert staged_rows(staging, [*one.parts, *several.parts]) == [
        ("a", 9), ("r0", 8), ("r1", 7), ("r2", 6), ("r3", 5)
    ]  # fmt: skip
    # A write names its temporary output after its first part; the others' are not its to clear.
    assert sorted(path.name for path in staging.directory.iterdir() if path.name.endswith(".tmp")) == [
        ".part-000002.tmp", ".part-000003.tmp", ".part-000004.tmp"
    ]  # fmt: skip


# A read: the pages fetched and the checkpoint saved -----------------------------------------------------


class Advanced:
    """A progress task that sums what it is advanced by."""

    def __init__(self) -> None:
        self.rows = self.pages = 0

    def advance(self, rows: int = 0, pages: int = 0) -> None:
        self.rows += rows
        self.pages += pages

    def close(self) -> None:
        pass


def read(
    client: BraintrustClient,
    project: dict[str, Any],
    staging: ObjectStaging,
    cutoff: int | None,
    progress: ProgressTask | None = None,
) -> Checkpoint:
    version = newest_version(client, logs_of(project))
    assert version is not None
    start = Checkpoint(version=version, watermark=version, cutoff=cutoff, started_at=datetime.now(UTC))
    task = progress or NullProgress().task("read")
    return extract_object(client, logs_of(project), staging, start, task, page_limit=5, object_rows=0)


def test_an_incremental_read_stops_at_the_page_that_reaches_the_cutoff(
    emulator: Emulator, client: BraintrustClient, staging: ObjectStaging
) -> None:
    project = emulator.store.create_project("incremental")
    insert_numbered(emulator, project["id"], 30)
    newest_first = sorted(
        (
            (int(row["_xact_id"]), row["id"])
            for row in emulator.store.live_rows("project_logs", project["id"])
        ),
        reverse=True,
    )
    emulator.stats.reset()
    # Pages of 1, 1, 1, 1 and 2 traces (each at most half the traces read before it): the fifth ends
    # exactly at the cutoff, the sixth newest row.
    done = read(client, project, staging, cutoff=newest_first[5][0])
    assert emulator.stats.requests[("POST", "project_logs.fetch")] == 1 + 5  # the probe, then five pages
    assert (done.done, done.pages, done.rows_fetched, done.rows_staged, done.ordered) == (True, 5, 6, 5, True)
    assert done.oldest_xact == newest_first[5][0]
    assert staging.load() == done  # the last page's checkpoint is on disk
    assert sorted(staged_rows(staging, done.parts)) == sorted(
        (row_id, xact) for xact, row_id in newest_first[:5]
    )


def test_a_full_read_fetches_every_page_once_and_checkpoints_where_it_ended(
    emulator: Emulator, client: BraintrustClient, staging: ObjectStaging
) -> None:
    project = emulator.store.create_project("full")
    insert_numbered(emulator, project["id"], 30)
    emulator.stats.reset()
    progress = Advanced()
    done = read(client, project, staging, cutoff=None, progress=progress)
    assert (progress.rows, progress.pages) == (30, 7)
    # Pages of at most five traces (the page limit): six full pages, then the empty last one, asked for
    # twice before it is believed (the second answer is no page of its own).
    assert emulator.stats.requests[("POST", "project_logs.fetch")] == 1 + 8
    assert (done.done, done.pages, done.rows_fetched, done.rows_staged) == (True, 7, 30, 30)
    assert len(done.parts) == 6 and staging.load() == done
    assert staged_ids(staging, done.parts) == numbered_ids(30)


def test_an_empty_page_without_a_cursor_amid_the_history_is_not_its_end(
    emulator: Emulator, client: BraintrustClient, staging: ObjectStaging
) -> None:
    project = emulator.store.create_project("told-the-end")
    insert_numbered(emulator, project["id"], 30)
    emulator.faults.add(FaultRule(kind="body", body='{"events": []}', route="/fetch", times=1, after=3))
    done = read(client, project, staging, cutoff=None)
    assert staged_ids(staging, done.parts) == numbered_ids(30)
    # Told twice, it is: the read ends there.
    emulator.faults.add(FaultRule(kind="body", body='{"events": []}', route="/fetch", times=2, after=2))
    staging.clear()
    done = read(client, project, staging, cutoff=None)
    assert (done.done, done.rows_fetched) == (True, 5)


@pytest.mark.parametrize(
    ("body", "cursor"),
    [
        (b'{"events": [], "cursor": "c-1"}', "c-1"),
        (b'{"events": [{"id": "' + b"x" * 9_000 + b'"}], "cursor": "c\\"2"}\n', 'c"2'),
        (b'{"events": [], "cursor": null}', None),
        (b'{"cursor": "c-3", "events": []}', None),  # not at the end: DuckDB's parse will say
        (b'{"events": [{"cursor": "inner"}]}', None),
        (b'{"events": [], "cursor": "c\\x"}', None),  # not JSON: the page's parse will say
        (b'{"events": [], "cursor": "c\t5"}', None),
        # Empty is none: sent back as the next page's cursor, the API refused it (HTTP 400).
        (b'{"events": [{"id": "a"}], "cursor": ""}', None),
    ],
)
def test_a_cursor_that_ends_the_body_is_read_off_its_tail(body: bytes, cursor: str | None) -> None:
    assert trailing_cursor(body) == cursor


def test_clearing_an_object_that_staged_nothing_is_a_no_op(staging: ObjectStaging) -> None:
    staging.clear()
    staging.save(Checkpoint(version=1, watermark=1, cutoff=None, started_at=datetime.now(UTC)))
    staging.clear()
    assert not staging.directory.exists() and staging.load() is None


def test_a_read_resumed_from_its_checkpoint_fetches_only_the_pages_after_it(
    emulator: Emulator, client: BraintrustClient, staging: ObjectStaging, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = emulator.store.create_project("resumed")
    insert_numbered(emulator, project["id"], 30)
    real_write = PageStager._write
    writes = 0

    def die_writing_the_third_page(self: PageStager, *args: Any) -> None:
        nonlocal writes
        writes += 1
        if writes == 3:
            raise KeyboardInterrupt
        real_write(self, *args)

    monkeypatch.setattr(PageStager, "_write", die_writing_the_third_page)
    with pytest.raises(KeyboardInterrupt):
        read(client, project, staging, cutoff=None)
    monkeypatch.undo()
    left = staging.load()
    assert left is not None and (left.pages, len(left.parts), left.done) == (2, 2, False)
    assert left.position.cursor
    fetches_ahead_done()
    emulator.stats.reset()
    done = extract_object(
        client, logs_of(project), staging, left, NullProgress().task("read"), page_limit=5, object_rows=0
    )
    # Pages three to six and the empty last one (twice); the first two are not fetched again.
    assert emulator.stats.requests[("POST", "project_logs.fetch")] == 6
    assert (done.done, done.pages, done.rows_fetched, done.rows_staged, len(done.parts)) == (
        True,
        7,
        30,
        30,
        6,
    )
    assert staged_ids(staging, done.parts) == numbered_ids(30)


def resume_after_a_crash(
    emulator: Emulator,
    client: BraintrustClient,
    staging: ObjectStaging,
    project: dict[str, Any],
    crashed: bytes,
    served: bytes,
    *,
    version: int,
) -> tuple[StagedPage, Checkpoint]:
    """A read of `project` at `version` that died once it had staged the page `crashed`, resumed from
    its checkpoint against a server that answers `served`: the crashed page and the final checkpoint."""
    with closing(stager_of(staging)) as stager:
        before = stager.stage(crashed, None)
        before.wait()
    assert before.oldest is not None and before.cursor is not None
    left = Checkpoint(
        version=version, watermark=version, cutoff=None, started_at=datetime.now(UTC), parts=before.parts,
        pages=1, rows_fetched=before.events, rows_staged=before.rows, oldest_xact=before.oldest[0],
        position=PagePosition(cursor=before.cursor),
    )  # fmt: skip
    emulator.faults.add(FaultRule(kind="body", route=f"{project['id']}/fetch", body=served.decode()))
    done = extract_object(
        client, logs_of(project), staging, left, NullProgress().task("read"), page_limit=5, object_rows=0
    )
    return before, done


def test_a_resumed_read_remembers_the_oldest_version_so_far_and_keeps_a_newer_one_that_comes_late(
    emulator: Emulator, client: BraintrustClient, staging: ObjectStaging
) -> None:
    project = emulator.store.create_project("late")
    # The page after the crash holds a version of `a` newer than any seen before it: out of order.
    _, done = resume_after_a_crash(
        emulator,
        client,
        staging,
        project,
        page(("a", 6), ("b", 5), cursor="after-b"),
        page(("a", 9)),
        version=9,
    )
    assert (done.done, done.ordered, done.rows_staged) == (True, False, 3)
    assert ("a", 9) in staged_rows(staging, done.parts)


def test_a_resumed_read_cuts_its_parts_for_the_rows_staged_before_it(
    emulator: Emulator, client: BraintrustClient, staging: ObjectStaging, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One file an object: parts are as large as everything staged before them, the crashed run's rows too.
    small_files(monkeypatch, min_rows=2, files_per_object=1)
    project = emulator.store.create_project("resumed-parts")
    crashed = page(*((f"r{20 - n}", 20 - n) for n in range(8)), cursor="after")
    served = page(*((f"r{12 - n}", 12 - n) for n in range(8)))
    before, done = resume_after_a_crash(emulator, client, staging, project, crashed, served, version=20)
    assert len(before.parts) == 4 and done.rows_staged == 16
    assert [len(staged_rows(staging, [name])) for name in done.parts[4:]] == [8]


def test_a_page_without_a_cursor_is_followed_below_its_oldest_row(
    emulator: Emulator, client: BraintrustClient, staging: ObjectStaging
) -> None:
    project = emulator.store.create_project("no-cursor")
    insert_numbered(emulator, project["id"], 12)
    rows = sorted(
        emulator.store.live_rows("project_logs", project["id"]), key=lambda row: -int(row["_xact_id"])
    )
    # A server that knows only the deprecated paging: the first page's five rows, and no cursor.
    first = {
        "events": [
            {key: row[key] for key in ("id", "_xact_id", "root_span_id", "created")} for row in rows[:5]
        ]
    }
    emulator.faults.add(
        FaultRule(
            kind="body", route=f"{project['id']}/fetch", body=json.dumps(first | {"cursor": None}), after=1
        )
    )
    done = read(client, project, staging, cutoff=None)
    assert done.done and done.rows_staged == 12
    assert staged_ids(staging, done.parts) == numbered_ids(12)


def test_a_page_whose_tail_and_whole_disagree_on_the_cursor_is_an_error(
    emulator: Emulator, client: BraintrustClient, staging: ObjectStaging
) -> None:
    project = emulator.store.create_project("two-cursors")
    emulator.store.insert("project_logs", project["id"], [{"id": "a", "input": 1}])
    (row,) = emulator.store.live_rows("project_logs", project["id"])
    # A duplicate key: the cheap look at the tail reads the last cursor, DuckDB's parse the first.
    body = (
        page(("a", int(row["_xact_id"])))
        .decode()
        .replace('"cursor": null', '"cursor": "one", "cursor": "two"')
    )
    emulator.faults.add(FaultRule(kind="body", route=f"{project['id']}/fetch", body=body, after=1))
    with pytest.raises(PaginationError) as raised:
        read(client, project, staging, cutoff=None)
    assert str(raised.value) == "the cursor at the end of a page of 'two-cursors' is not the page's cursor"


def test_rows_whose_ids_near_the_top_of_64_bits_are_synced(tmp_path: Path) -> None:
    # The read is pinned past the newest row: never past the largest id the API can read at.
    settings = WarehouseSettings(
        duckdb_path=tmp_path / "w.duckdb", parquet_root=str(tmp_path / "pq"), state_dir=tmp_path / "state"
    )
    with Emulator(seed="empty", xact_start=2**64 - 16) as emulator:
        project = emulator.store.create_project("p")
        emulator.store.insert("project_logs", project["id"], [{"id": f"r{i}"} for i in range(8)])
        assert not sync(emulator, settings).failures
        assert sync(emulator, settings).objects[0].status == "synced"
    ((rows, newest),) = query(settings, "SELECT count(*), max(_xact_id) FROM project_logs")
    assert rows == 8 and newest >= 2**64 - 16


# The API pages by whole traces, newest first (its `limit` counts traces): a trace that gained a span
# comes whole, its older spans too. Three traces of a project's logs, as such an API pages them, above
# and below an incremental read's cutoff of 1000.
WHOLE_TRACE_PAGES = {
    None: ([("t10", "t10-new", 1050), ("t10", "t10-old", 900), ("t10", "t10-older", 800)], "c1"),
    "c1": ([("tnew", "n1", 1030), ("tnew", "n2", 1020)], "c2"),
    "c2": ([("t9", "r9", 990), ("t9", "r9b", 980)], "c3"),
    "c3": ([], None),
}


class _WholeTraces(BaseHTTPRequestHandler):
    """Serves `WHOLE_TRACE_PAGES` at any fetch, by the request's cursor; counts the requests."""

    served: ClassVar[list[str | None]] = []

    def do_POST(self) -> None:
        cursor = json.loads(self.rfile.read(int(self.headers["Content-Length"]))).get("cursor")
        type(self).served.append(cursor)
        rows, after = WHOLE_TRACE_PAGES[cursor]
        events = [{"id": i, "root_span_id": t, "_xact_id": str(x), "input": i} for t, i, x in rows]
        body = json.dumps({"events": events, "cursor": after}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def test_an_incremental_read_of_whole_trace_pages_reads_on_past_a_trace_s_old_spans(
    staging: ObjectStaging,
) -> None:
    _WholeTraces.served = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _WholeTraces)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = ApiSettings(api_url=f"http://127.0.0.1:{server.server_address[1]}", api_key="whole-traces")
    start = Checkpoint(version=2000, watermark=2000, cutoff=1000, started_at=datetime.now(UTC))
    project = {"id": "p-whole", "name": "whole"}
    try:
        with BraintrustClient(settings) as client:
            done = extract_object(
                client,
                logs_of(project),
                staging,
                start,
                NullProgress().task("read"),
                page_limit=5,
                object_rows=0,
            )
    finally:
        server.shutdown()
        server.server_close()
    # The first page's oldest row (800) is below the cutoff, but the next trace is newer than it: a read
    # that stopped there lost `n1` and `n2` for good (the watermark moved past them). The trace that
    # gained a span is staged whole: an earlier read paging while it did never met its old spans.
    assert staged_ids(staging, done.parts) == ["n1", "n2", "t10-new", "t10-old", "t10-older"]
    assert _WholeTraces.served == [None, "c1", "c2"]
