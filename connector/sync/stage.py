"""Typing fetch pages in DuckDB and staging their rows as Parquet parts.

A page's body goes to DuckDB as it came off the wire, and Python never
touches a row. Two passes over the page, both in DuckDB's C++:
`json_structure` decides whether every event fits its table (see
`connector.sync.shape`); one `json_transform` types every event into a
table in memory (a map from its text, which is kept if it makes no map).
The checks, the cutoff and the deduplication read that table's ids and
versions; the rows that are kept are then written from it to Parquet,
once, in the table's file format.

Parts are the object's future data files: for an object's first load they are
moved into place as they are. Each page becomes one part, or several of the
object's file size while pages still grow; each is written under a temporary
name and renamed, so a checkpoint can say "these parts, then continue after
that page".
"""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from connector import interrupts
from connector.destinations.file_size import file_target_rows
from connector.duckdb_connect import connect
from connector.duckdb_messages import decoded_duckdb_errors
from connector.errors import WarehouseError, first_line
from connector.sync.seen import SeenIds
from connector.sync.shape import (
    EventMisfits,
    PageMalformed,
    PageShape,
    event_misfits,
    events_with_bad_version,
    events_without_id,
    page_shape,
)
from connector.sync.staging import ObjectStaging
from connector.sync.surrogates import (
    ESCAPE_TEXT_DOUBLED_SQL,
    ESCAPE_TEXT_SQL,
    ids_with_lone_surrogates,
    without_lone_surrogates,
)
from schemas.tables import (
    Column,
    EventStream,
    json_struct,
    read_parquet,
    sql_identifier,
    sql_literal,
    sql_path_list,
)

# DuckDB's memory for typing a page, which it types whole: a fixed part and about ten times the
# page (a 12 MB page needs about 128 MB, a 2 MB one 48 MB), with room to spare, for the page typed
# and the one before it, still being written while the page's shape is read. Pages are kept near
# `connector.sync.extract.PAGE_TARGET_BYTES`; a single trace bigger than that still fits.
STAGING_MEMORY_BASE_BYTES = 64 * 2**20
STAGING_MEMORY_PER_PAGE_BYTE = 32
_MEMORY_STEP_BYTES = 64 * 2**20
MAX_PARTS_PER_PAGE = 4
# Statement texts kept parsed per connection; texts that do not repeat (a rare misfit shape) only
# ever fill it up to this, then it starts again.
_MOST_PARSED = 32
# The optimizers staging's statements use: the time's cast made once for a row (common subexpressions),
# scans of the typed page reading only the columns a statement uses (unused columns, column lifetime),
# and the cutoff's filter applied as the page is scanned (filter pushdown).
_STAGING_OPTIMIZERS = frozenset(
    {"common_subexpressions", "unused_columns", "column_lifetime", "filter_pushdown"}
)
# Where, in an object's scratch directory, the ids already staged are kept (see `SeenIds`).
_SEEN_IDS = "seen-ids"
# The times Python's `datetime` holds: a table's readers in Python fail on any other.
_FIRST_TIME = "TIMESTAMPTZ '0001-01-01 00:00:00+00'"
_LAST_TIME = "TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'"
# The upper 64 bits of `md5` (an id's `md5_number`) and its lowest 32, as `SeenIds` keeps them: one MD5
# per id, where `md5_number_upper` and `_lower` would compute it twice.
_MD5_PARTS = "(md5 >> 64)::UBIGINT AS upper, (md5 & 4294967295)::UINTEGER AS lower"


@dataclass(frozen=True)
class StagedPage:
    """What staging one page found, and the writing of its parts.

    Args:
        cursor: the page's cursor (None: the server sent none).
        events: events on the page.
        newest_xact: the page's greatest `_xact_id` (None for an empty page).
        oldest: its smallest (`_xact_id`, `root_span_id`), where manual paging continues.
        trace_floor: of an incremental read's page, the smallest of its traces' newest `_xact_id` (None
            otherwise): a later page holds no trace newer than it.
        parts: the part files it is written to (none when every row was dropped).
        rows: rows written to those parts.
        written: done when the parts are on disk.
    """

    cursor: str | None
    events: int
    newest_xact: int | None
    oldest: tuple[int, str] | None
    trace_floor: int | None
    parts: list[str]
    rows: int
    written: Future[None]

    def wait(self) -> None:
        """Return once the page's parts are on disk; raise what writing them raised."""
        self.written.result()


class PageStager:
    """Stages the pages of one object's read into Parquet parts.

    Args:
        stream: the table the object's rows go to.
        staging: the object's scratch directory.
        parts: parts already staged by an interrupted read (their ids are not staged again).
        ordered: whether the pages staged so far came newest first.
        oldest_xact: the smallest `_xact_id` received so far.
        object_rows: rows the object already has, plus those already staged (sizes the parts).
    """

    def __init__(
        self,
        stream: EventStream,
        staging: ObjectStaging,
        parts: list[str],
        *,
        ordered: bool,
        oldest_xact: int | None,
        object_rows: int,
    ) -> None:
        self._stream = stream
        self._staging = staging
        self._part_count = len(parts)
        self.ordered = ordered
        self.oldest_xact = oldest_xact
        self._object_rows = object_rows
        self._seen = SeenIds(staging.directory / _SEEN_IDS)
        self._sql = _PageSql(stream, staging.object_id)
        self._session = _session()
        self._con = self._session.connect()
        self._run = _Parsed(self._con)
        # A typed page lives in the session's database until written, in a table named apart from other
        # stagers' tables: the same name makes the same statements for every page.
        self._table = f"page_{uuid.uuid4().hex[:8]}"
        # Writing a page's parts overlaps with reading the next page's shape, on a connection of its own.
        self._writing = _done()
        self._writer = self._session.connect()
        self._run_writer = _Parsed(self._writer)
        self._writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bt-sync-stage")
        self._remember_staged_ids([staging.directory / name for name in parts])

    def close(self) -> None:
        """Let a write in progress finish, then release DuckDB and the files of the ids staged."""
        self._writes.shutdown(wait=True, cancel_futures=True)
        # A page that failed its checks, or whose write failed or was cancelled, left its table behind.
        self._con.execute(f"DROP TABLE IF EXISTS {self._table}")
        self._writer.close()
        self._con.close()
        self._seen.close()

    def stage(
        self, body: bytes | bytearray, cutoff: int | None, *, ids: dict[int, str] | None = None
    ) -> StagedPage:
        """Check one page and start writing the rows to keep: of traces with a version above `cutoff`,
        newest version of each id (see `_PageSql.candidates`).

        `ids` replaces the ids of the events at those places (from 1) in a page mended of its lone
        surrogates (`_stage_mended`).

        Raises:
            PageMalformed: the page or an event breaks the API's contract (the reason, for a message).
        """
        con, run, table = self._con, self._run, self._table
        self._session.fit(len(body))
        con.register("page_body", _one_string(body))
        try:
            shape = page_shape(str(_scalar(run, "SELECT json_structure(body) FROM page_body")), self._stream)
            if not shape.fits:
                con.register("page_misfits", _misfits_table(event_misfits(body, self._stream, shape)))
        except duckdb.InvalidInputException as error:
            con.unregister("page_body")
            return self._stage_mended(body, error, cutoff)
        # One typed page at a time: the last page's write is done with the table before this page is
        # typed into it (a sync's peak memory fell by 20-25 MB), and raises here what writing it raised.
        self._writing.result()
        try:
            run(self._sql.type_page(table, shape))
        except duckdb.InvalidInputException as error:
            con.unregister("page_body")
            return self._stage_mended(body, error, cutoff)
        (
            events,
            bad_ids,
            bad_xacts,
            newest,
            oldest,
            bad_sample,
            cursor,
            other_objects,
            untyped_maps,
            ids_like_escapes,  # rare
        ) = run(self._sql.page_checks(table)).fetchall()[0]
        if ids_like_escapes:
            run(_escape_text_doubled(table))
        if ids:  # after the ids DuckDB read were changed: these are as they are stored
            self._replace_ids(table, ids)
        if other_objects:
            run(self._sql.keep_other_objects(table))
        if untyped_maps:
            for statement in self._sql.keep_untyped_maps(table):
                run(statement)
        if not events:
            cursor = _scalar(run, "SELECT json_extract_string(body, '$.cursor') FROM page_body")
        con.unregister("page_body")
        if bad_ids:
            raise events_without_id(bad_ids)
        if bad_xacts:
            raise events_with_bad_version(bad_xacts, bad_sample)
        keep: npt.NDArray[np.int64] = np.empty(0, np.int64)
        trace_floor = None
        if newest is not None and cutoff is not None:
            trace_floor = int(str(_scalar(run, _PageSql.trace_floor(table))))
        if newest is not None:
            if self.oldest_xact is not None and newest > self.oldest_xact:
                # Out of order: from here on keep every version, and let the merge keep the newest.
                self.ordered = False
            self.oldest_xact = oldest["x"] if self.oldest_xact is None else min(self.oldest_xact, oldest["x"])
            keep = self._rows_to_keep(table, cutoff)
        parts = self._name_parts(len(keep))
        if parts:
            written = self._writes.submit(self._write, table, _Selection(int(events), keep), parts)
        else:
            run(f"DROP TABLE {table}")
            written = _done()
        self._writing = written
        return StagedPage(
            cursor=None if cursor is None else str(cursor),
            events=int(events),
            newest_xact=None if newest is None else int(newest),
            oldest=None if oldest is None else (int(oldest["x"]), str(oldest["r"])),
            trace_floor=trace_floor,
            parts=[path.name for path in parts],
            rows=len(keep),
            written=written,
        )

    def _stage_mended(
        self, body: bytes | bytearray, error: duckdb.InvalidInputException, cutoff: int | None
    ) -> StagedPage:
        """Stage the page without its lone surrogates, its ids keeping theirs as text, if they are what
        DuckDB refused in it (else `_mended` raises)."""
        return self.stage(_mended(body, error), cutoff, ids=ids_with_lone_surrogates(body))

    def _replace_ids(self, table: str, ids: dict[int, str]) -> None:
        self._con.register(
            "page_ids", pa.table({"_ordinal": pa.array(list(ids), pa.int64()), "id": list(ids.values())})
        )
        try:
            self._run(f"UPDATE {table} SET id = p.id FROM page_ids AS p WHERE {table}._ordinal = p._ordinal")
        finally:
            self._con.unregister("page_ids")

    def _name_parts(self, rows: int) -> list[Path]:
        """The part files for `rows` new rows.

        A page as large as everything staged before it (a first load's first pages, which grow:
        the object's newest rows, those an hourly change touches) is cut into parts of the object's
        file size, at most a few. Any other page is one part: a Parquet file costs about 4 ms of
        fixed work, and cutting every page made three times as many files as pages (a tenth of the
        CPU of a first load of 200,000 rows).
        """
        if not rows:
            return []
        count = 1
        if rows >= self._object_rows:
            part_rows = max(file_target_rows(self._object_rows), -(-rows // MAX_PARTS_PER_PAGE))
            count = -(-rows // part_rows)
        names = [self._staging.part_path(self._part_count + index) for index in range(count)]
        self._part_count += count
        self._object_rows += rows
        return names

    def _rows_to_keep(self, table: str, cutoff: int | None) -> npt.NDArray[np.int64]:
        candidates = self._run(self._sql.candidates(table, cutoff)).fetchnumpy()
        ordinals, upper, lower = candidates["_ordinal"], candidates["upper"], candidates["lower"]
        if self.ordered:
            # Pages are newest first: an id seen on an earlier page has a newer version staged already.
            new = ~self._seen.contains(upper, lower)
            ordinals, upper, lower = ordinals[new], upper[new], lower[new]
        self._seen.add(upper, lower)
        return np.sort(ordinals)

    def _write(self, table: str, selection: _Selection, parts: list[Path]) -> None:
        """Write the kept rows of the typed page `table` to `parts`, in page order (on the write thread)."""
        con = self._writer
        con.register("page_keep", selection.table(len(parts)))
        output = parts[0].with_name(f".{parts[0].stem}.tmp")
        # A killed write may have left either kind of output behind.
        shutil.rmtree(output, ignore_errors=True)
        output.unlink(missing_ok=True)
        parts[0].parent.mkdir(parents=True, exist_ok=True)
        # Partitioning by part costs about a sixth of the write even into one part: only when needed.
        split = len(parts) > 1
        ((written,),) = con.execute(self._sql.write(table, into=output, split=split)).fetchall()
        self._run_writer(f"DROP TABLE {table}")
        if written != len(selection.ordinals):
            # The rows are picked by position: a page typed into another number of rows than its
            # events would lose rows without a word. Fail before a checkpoint names the parts.
            raise WarehouseError(
                f"{self._stream.table}: staging wrote {written} rows of a page where "
                f"{len(selection.ordinals)} were kept"
            )
        if split:
            produced = sorted(output.glob("_part=*/*.parquet"), key=_part_order)
            for file, part in zip(produced, parts, strict=True):
                file.replace(part)
            shutil.rmtree(output)
        else:
            output.replace(parts[0])

    def _remember_staged_ids(self, parts: list[Path]) -> None:
        if not parts:
            return
        hashes = self._con.execute(
            f"SELECT {_MD5_PARTS} FROM (SELECT md5_number(id) AS md5 "
            f"FROM {read_parquet(sql_path_list(parts))})"
        ).fetchnumpy()
        self._seen.add(hashes["upper"], hashes["lower"])


class _Session:
    """The process's in-memory DuckDB for staging, its memory limit fitted to the pages it types.

    One per process, not one per object: opening a DuckDB database costs 30-40 ms and closing one
    10 ms, a fifth of the time a sync of a small object took. A sync stages one object at a time.
    """

    def __init__(self) -> None:
        self._limit = STAGING_MEMORY_BASE_BYTES
        self._fitting = threading.Lock()
        # One thread per query: a page is one JSON value, typed by one thread anyway; more only add memory.
        self._database = connect(memory_limit=f"{self._limit}B", threads=1)
        # Timestamps without a zone are read as UTC, as the API means them.
        self._database.execute("SET GLOBAL TimeZone = 'UTC'")
        # Each page's statements are planned afresh; most of DuckDB's optimizers find nothing to do in
        # them but take their time looking (0.1 s of the 3.3-3.5 s a 200k sync's pages take to stage).
        # Named from the list DuckDB gives, so that one it adds or drops never fails the setting.
        optimizers = self._database.execute("SELECT name FROM duckdb_optimizers()").fetchall()
        unused = ",".join(name for (name,) in optimizers if name not in _STAGING_OPTIMIZERS)
        self._database.execute(f"SET GLOBAL disabled_optimizers = {sql_literal(unused)}")

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own (registered tables, settings) to the staging database."""
        return self._database.cursor()

    def fit(self, page_bytes: int) -> None:
        """Make room for typing a page of `page_bytes`."""
        needed = STAGING_MEMORY_BASE_BYTES + STAGING_MEMORY_PER_PAGE_BYTE * page_bytes
        # Only ever raised, in steps: setting it is not free, and pages near the target vary in size.
        limit = -(-needed // _MEMORY_STEP_BYTES) * _MEMORY_STEP_BYTES
        with self._fitting:
            if limit > self._limit:
                self._database.execute(f"SET memory_limit = '{limit}B'")
                self._limit = limit


@cache
def _session() -> _Session:
    return _Session()


class _PageSql:
    """The SQL staging the pages of one object (`object_id`) of a table."""

    def __init__(self, stream: EventStream, object_id: str) -> None:
        self._file_columns = stream.file_columns
        self._key_column = stream.key_column
        # Typed in SQL from their JSON text, which the typed page keeps too (`_untyped`).
        self._maps = [c.name for c in stream.payload_columns if c.is_map]
        self._object_id = object_id
        self._struct = '{"events": [' + json_struct(stream.payload_columns) + '], "cursor": "VARCHAR"}'

    def type_page(self, table: str, shape: PageShape) -> str:
        """Type every event of `page_body` into a row of `table`, in page order: the file's columns
        (joined with `page_misfits` when the page does not fit), and for the checks the version as
        sent, the page's cursor, the event's key where it names another object and each map's text
        (`_sent_scores`) where it is no misfit."""
        payload = [c for c in self._file_columns if c.name not in ("_extra", "_synced_at")]
        typed = [f"{_typed(c, shape.misfit_columns)} AS {sql_identifier(c.name)}" for c in payload]
        typed += [f"{_as_sent(name, shape.misfit_columns)} AS {_sent(name)}" for name in self._maps]
        extras = ["m._misfit_extra"] if not shape.fits else []
        extras += [_unparsed_time(c, shape.misfit_columns) for c in payload if c.duckdb_type == "TIMESTAMPTZ"]
        other = self._other_object(shape.misfit_columns)
        source = (
            "SELECT unnest(t.events, max_depth := 2), generate_subscripts(t.events, 1) AS _ordinal, "
            f"t.cursor AS _cursor FROM (SELECT json_transform(body, {sql_literal(self._struct)}) AS t "
            "FROM page_body)"
        )
        misfit_join = " LEFT JOIN page_misfits AS m USING (_ordinal)" if not shape.fits else ""
        # The misfit join does not keep the page's order: ordered again by the events' ordinals.
        order = " ORDER BY e._ordinal" if not shape.fits else ""
        return (
            f"CREATE TABLE {table} AS SELECT {', '.join(typed)}, "
            f"({_merged_json(extras)})::JSON AS _extra, now() AS _synced_at, e._xact_id AS _xact_text, "
            f"e._ordinal, e._cursor, {other} AS _other_object "
            f"FROM ({source}) AS e{misfit_join}{order}"
        )

    def _other_object(self, misfit_columns: frozenset[str]) -> str:
        """SQL of an event's own key (`project_id`, say) where it names another object than the one read,
        else NULL: the key column is the object's id, from its directory, and would lose that value."""
        value = f"e.{sql_identifier(self._key_column)}"
        other = f"{value} <> {sql_literal(self._object_id)}"
        if self._key_column in misfit_columns:
            other += f" AND {_not_misfit(self._key_column)}"
        return f"CASE WHEN {other} THEN {value} END"

    def keep_other_objects(self, table: str) -> str:
        """SQL adding to `_extra` the key of each event of `table` naming another object (rare: done apart,
        so that no other page merges it into `_extra` row by row)."""
        return _kept_in_extra(table, self._key_column, "_other_object", "_other_object IS NOT NULL")

    def keep_untyped_maps(self, table: str) -> list[str]:
        """SQL adding to `_extra` the text of each map of `table` that typing left NULL (rare: done apart)."""
        return [_kept_in_extra(table, name, _sent(name), _untyped(name)) for name in self._maps]

    def page_checks(self, table: str) -> str:
        """The page's events, those without an id or a valid version, its newest version, its oldest
        (version, root span), a version that is not valid, its cursor, its events naming another
        object, those with a map that typing left NULL, and whether an id may hold the text of a lone
        surrogate's escape (a quick look: the exact one costs 1-2 ms a page)."""
        untyped = " OR ".join(_untyped(name) for name in self._maps) or "false"
        return (
            "SELECT count(*), count(*) FILTER (WHERE id IS NULL), count(*) FILTER (WHERE _xact_id IS NULL), "
            "max(_xact_id), min({'x': _xact_id, 'r': coalesce(root_span_id, '')}), "
            "any_value(_xact_text) FILTER (WHERE _xact_id IS NULL), any_value(_cursor), "
            f"count(_other_object), count(*) FILTER (WHERE {untyped}), "
            f"bool_or(contains(id, '\\u')) FROM {table}"
        )

    @staticmethod
    def trace_floor(table: str) -> str:
        """The smallest of the page's traces' newest `_xact_id` (a row of no trace is one of its own).

        The API pages by whole traces, newest first: a trace that gained a span comes whole, its older
        spans too, so the page's oldest row may be far older than the traces of the pages after it.
        """
        return (
            f"SELECT min(newest) FROM (SELECT max(_xact_id) AS newest FROM {table} "
            "GROUP BY root_span_id, CASE WHEN root_span_id IS NULL THEN id END)"
        )

    @staticmethod
    def candidates(table: str, cutoff: int | None) -> str:
        """Per id, the page's newest version (the first on the page of equals), of the traces with a
        version above the cutoff: its ordinal and the two halves of the id's MD5, in the order `SeenIds`
        looks ids up in (by the upper half), which then need not sort them.

        A trace's older spans too: the API pages by whole traces, and one that gained a span while an
        earlier read paged moved ahead of that read's cursor, its older spans unmet; they come now, or
        never again. Those already held are the versions held: the merge leaves them as they are.
        """
        above = ""
        if cutoff is not None:
            changed = f"_xact_id > {int(cutoff)}"
            above = f"WHERE {changed} OR root_span_id IN (SELECT root_span_id FROM {table} WHERE {changed})"
        newest = (
            "SELECT arg_max(_ordinal, {'x': _xact_id, 'o': -_ordinal}) AS _ordinal, md5_number(id) AS md5 "
            f"FROM {table} {above} GROUP BY id"
        )
        return f"SELECT _ordinal, {_MD5_PARTS} FROM ({newest}) ORDER BY upper"

    def write(self, table: str, *, into: Path, split: bool) -> str:
        """COPY the rows of the typed page `table` that `page_keep` keeps (a row per event, in page order)
        into one file per `page_keep._part` under the directory `into` if `split`, else into the one file
        `into`."""
        columns = ", ".join(sql_identifier(c.name) for c in self._file_columns)
        part, options = (", k._part", ", PARTITION_BY (_part)") if split else ("", "")
        return (
            f"COPY (SELECT {columns}{part} FROM {table} POSITIONAL JOIN page_keep AS k WHERE k.keep) "
            f"TO {sql_literal(str(into))} (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1{options})"
        )


@dataclass(frozen=True)
class _Selection:
    """The rows of a page to write: of its `events`, those at the (1-based, ascending) `ordinals`."""

    events: int
    ordinals: npt.NDArray[np.int64]

    def table(self, parts: int) -> pa.Table:
        """A row per event, in page order: whether it is kept and, over several `parts`, the part it goes to.

        Zipped with the page's rows by position: a hash join on the ordinal would copy the whole typed
        page into its hash table (a sixth of the write, measured on an 8 MB page).
        """
        positions = self.ordinals - 1
        keep = np.zeros(self.events, dtype=bool)
        keep[positions] = True
        columns: dict[str, npt.NDArray[np.bool_] | npt.NDArray[np.int64]] = {"keep": keep}
        if parts > 1:
            part = np.zeros(self.events, dtype=np.int64)
            part[positions] = np.arange(len(positions)) // -(-len(positions) // parts)
            columns["_part"] = part
        return pa.table(columns)


def _version(value: str) -> str:
    # `try_cast` alone would round "1.5" to 2: only plain digits are versions.
    return f"CASE WHEN regexp_full_match({value}, '[0-9]{{1,20}}') THEN try_cast({value} AS UBIGINT) END"


def _typed(column: Column, misfit_columns: frozenset[str]) -> str:
    value = f"e.{sql_identifier(column.name)}"
    if column.name == "_xact_id":
        value = _version(value)
    elif column.duckdb_type == "TIMESTAMPTZ":
        value = _time(value)
    elif column.is_map:
        value = f"json_transform({value}, {sql_literal(json.dumps(column.duckdb_type))})"
    if column.name in misfit_columns:
        value = f"CASE WHEN list_contains(m._misfits, {sql_literal(column.name)}) THEN NULL ELSE {value} END"
    return value


def _time(value: str) -> str:
    """SQL typing a timestamp's text, NULL if it does not parse or falls outside the years 1-9999.

    DuckDB takes years before 1 and after 9999, which Python's `datetime` (and so every reader of the
    tables in Python) cannot hold: such a time is kept as text in `_extra`, as one that does not parse.
    So is a word DuckDB reads as a time (`epoch`, 1970's first instant): past the blanks and signs DuckDB
    skips, a time's text starts with a digit, which sorts before ':', and a letter after it (a byte
    comparison, where a regular expression cost a tenth of the typing).
    """
    parsed = f"try_cast({value} AS TIMESTAMPTZ)"
    # Only a text starting below '0' (a blank, a sign) is trimmed: a time's digits are compared as they are.
    trimmed = f"ltrim({value}, ' \t\n\r\v\f+-')"
    digit_first = f"(CASE WHEN {value} >= '0' THEN {value} < ':' ELSE {trimmed} < ':' END)"
    return f"CASE WHEN {digit_first} AND {parsed} BETWEEN {_FIRST_TIME} AND {_LAST_TIME} THEN {parsed} END"


def _unparsed_time(column: Column, misfit_columns: frozenset[str]) -> str:
    """SQL keeping a timestamp that does not parse, or is finer than its column holds, in `_extra` (as
    `{"created": "..."}`), else NULL."""
    value = f"e.{sql_identifier(column.name)}"
    unparsed = f"{value} IS NOT NULL AND ({_time(value)} IS NULL OR {_finer_than_microseconds(value)})"
    if column.name in misfit_columns:
        unparsed += f" AND {_not_misfit(column.name)}"
    return f"CASE WHEN {unparsed} THEN json_object({sql_literal(column.name)}, {value}) END"


def _sent(name: str) -> str:
    """The typed page's column of map column `name`'s text."""
    return sql_identifier(f"_sent_{name}")


def _as_sent(name: str, misfit_columns: frozenset[str]) -> str:
    """SQL of an event's map's JSON text, NULL where it is a misfit (kept in `_extra` by that path)."""
    value = f"e.{sql_identifier(name)}"
    return f"CASE WHEN {_not_misfit(name)} THEN {value} END" if name in misfit_columns else value


def _untyped(name: str) -> str:
    """SQL true where the typed page's map `name` is NULL and its text is not: a key given twice
    (`{"a": 1, "a": 0}`), which JSON allows and a map does not. Its text is then kept in `_extra`.

    A map is typed from its text for this: typed within the page's `json_transform`, such a map was NULL
    without a trace. (A map holding values that are not numbers is a misfit, kept by that path.)
    """
    return f"({sql_identifier(name)} IS NULL AND {_sent(name)} IS NOT NULL)"


def _finer_than_microseconds(value: str) -> str:
    """SQL true where the time's text has a non-zero digit past a fraction's sixth, which DuckDB drops:
    the column keeps the time to the microsecond, `_extra` its text.

    One regular expression, about 55 ns a row: the same test spelled with `strpos` and `substr` was no
    faster a row and took six times as long to plan (0.58 ms of every page's typing, against 0.09).
    """
    return f"regexp_matches({value}, '[.][0-9]{{6}}[0-9]*[1-9]')"


def _not_misfit(name: str) -> str:
    """SQL true where the event's value of column `name` is no misfit: a misfit (not text at all, say) is
    kept in `_extra` by the misfit path already."""
    return f"NOT coalesce(list_contains(m._misfits, {sql_literal(name)}), false)"


def _kept_in_extra(table: str, key: str, value: str, where: str) -> str:
    """SQL adding `{key: value}` to the `_extra` of the rows of `table` that `where` selects."""
    kept = f"json_object({sql_literal(key)}, {value})"
    return f"UPDATE {table} SET _extra = ({_merged_json(['_extra', kept])})::JSON WHERE {where}"


def _merged_json(fragments: list[str]) -> str:
    """SQL merging JSON-object fragments (each possibly NULL) into one object, NULL if all are NULL."""
    if not fragments:
        return "NULL::VARCHAR"
    merged = fragments[0]
    for fragment in fragments[1:]:
        merged = (
            f"CASE WHEN ({merged}) IS NULL THEN {fragment} WHEN ({fragment}) IS NULL THEN ({merged}) "
            f"ELSE json_merge_patch({merged}, {fragment}) END"
        )
    return merged


def _misfits_table(misfits: EventMisfits) -> pa.Table:
    return pa.table({
        "_ordinal": pa.array(misfits.ordinals, pa.int64()),
        "_misfit_extra": pa.array(misfits.extras, pa.string()),
        "_misfits": pa.array(misfits.misfits, pa.list_(pa.string())),
    })  # fmt: skip


def _escape_text_doubled(table: str) -> str:
    """SQL doubling the backslashes before the text of a lone surrogate's escape in the ids of `table`,
    as a page mended of a lone surrogate keeps its ids (`ids_with_lone_surrogates`)."""
    doubled = f"regexp_replace(id, {ESCAPE_TEXT_SQL}, {ESCAPE_TEXT_DOUBLED_SQL}, 'g')"
    return f"UPDATE {table} SET id = {doubled} WHERE regexp_matches(id, {ESCAPE_TEXT_SQL})"


def _mended(body: bytes | bytearray, error: duckdb.InvalidInputException) -> bytes:
    """The page without its lone surrogates, when they are what DuckDB refused in it.

    Raises:
        PageMalformed: DuckDB refused the page for anything else (only what it says of the input:
            running out of memory or disk is not the page's fault).
    """
    interrupts.raise_if_interrupted(error)
    mended = without_lone_surrogates(body) if "surrogate" in str(error) else None
    if mended is None:
        raise PageMalformed(f"the page is not valid JSON ({first_line(error)})") from None
    return mended


def _one_string(body: bytes | bytearray) -> pa.Table:
    """`body` as a one-row string table, without copying it (DuckDB checks the UTF-8 as it parses)."""
    offsets = pa.array([0, len(body)], pa.int32()).buffers()[1]
    array = pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(body)])
    return pa.table({"body": array})


def _part_order(path: Path) -> tuple[int, str]:
    """Order of a file COPY wrote under `_part=N/`: by N, then by name."""
    return int(path.parent.name.removeprefix("_part=")), path.name


def _scalar(run: _Parsed, sql: str) -> object:
    rows = run(sql).fetchall()
    return rows[0][0] if rows else None


def _done() -> Future[None]:
    done: Future[None] = Future()
    done.set_result(None)
    return done


class _Parsed:
    """Runs SQL on one connection, parsing each text once: the pages of an object run the same
    statements, and DuckDB 2.0.1's parser took about 2 ms of each page's 12 ms of fixed work (most of it
    the typing statement's 2,500 characters)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._parsed: dict[str, duckdb.Statement] = {}

    def __call__(self, sql: str) -> duckdb.DuckDBPyConnection:
        statement = self._parsed.get(sql)
        if statement is None:
            if len(self._parsed) >= _MOST_PARSED:
                self._parsed.clear()
            (statement,) = self._con.extract_statements(sql)
            self._parsed[sql] = statement
        with decoded_duckdb_errors():  # a page's error quoting it, cut inside a character
            return self._con.execute(statement)
