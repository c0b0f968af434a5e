"""The DuckDB face of the Parquet tree: one view per table, in a file analysts open, or in memory.

The analysts' file holds only views, so a sync never writes it: its rows live
in the Parquet files the views read, and every query sees the files as they
are at that moment. It is written in DuckDB 1.4's storage format (which
DuckDB 1.4, 1.5 and 2.x all read), once, and again only when its views
change (another bt-sync version, a moved Parquet root). It is then rebuilt
beside the old one and renamed over it, so sessions that hold the old file
open keep working, and new ones get the new views.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import duckdb

from connector.destinations.filesystem import Root
from connector.destinations.parquet_tree import (
    SCHEMA_FILE,
    SCHEMA_OBJECT,
    STATE_FILE,
    VERSIONS,
    catalog_file,
    schema_record,
    why_unreadable,
)
from connector.destinations.scratch import scratch_connection
from connector.destinations.spill import spill_directory
from connector.duckdb_connect import connect
from connector.errors import WarehouseError, file_size_limit, first_line, noting_file_size_limit
from schemas.kinds import CATALOG_TABLES, EVENT_STREAMS
from schemas.tables import (
    SYNC_STATE_COLUMNS,
    Column,
    EventStream,
    read_parquet,
    sql_identifier,
    sql_literal,
    sql_path_list,
)

logger = logging.getLogger("bt_sync")

# The oldest storage format DuckDB 2.x writes that DuckDB 1.4 and newer read.
STORAGE_VERSION = "v1.4.0"
# A view holding the fingerprint of the others, so a sync can tell whether they are current.
MARKER_VIEW = "_bt_sync"
SYNC_STATE_DESCRIPTION = "One row per synced object: its watermark, rows and last sync."
# What analysts read of the marker in the file's catalog (it is no table of theirs).
_MARKER_COMMENTS = (
    f"COMMENT ON VIEW {MARKER_VIEW} IS 'bt-sync''s own: tells a sync whether the other views are current.'",
    f"COMMENT ON COLUMN {MARKER_VIEW}.views IS 'A digest of the statements that made the views.'",
    f"COMMENT ON COLUMN {MARKER_VIEW}.stored IS "
    "'A digest of the views as stored, by which a sync sees that a session changed them.'",
)
# The views bt-sync writes in the analysts' file, but for the marker.
_OUR_VIEWS = (
    {stream.table for stream in EVENT_STREAMS.values()} | {t.table for t in CATALOG_TABLES} | {"sync_state"}
)
# What ends the error a damaged commit record's path begins, by which `reader` knows it.
_DAMAGED_RECORD_REMEDY = ": delete its directory, and the next `bt-sync sync` rebuilds the object"
# What the error says of a commit record whose `files` are not a list of versions (`"files": "x"`).
_LISTS_FILES_WRONGLY = " lists its files wrongly"
# The error for a data file a commit record names and the tree lacks (deleted by hand, copied in part).
_MISSING_FILE = "a file of the synced tables is missing ({}): the next `bt-sync sync` rebuilds its object"
# What a user does about a DuckDB file bt-sync cannot use, from the command line or in Dagster.
_ANOTHER_FILE = "choose another DuckDB file (--duckdb, or BT_SYNC_DUCKDB)"
HTTPFS_MISSING = (
    "DuckDB's httpfs extension, which reads object storage, is not installed and could not be downloaded"
)
INSTALL_HTTPFS = "`INSTALL httpfs` once in a DuckDB session that is online"
# The error for a data file whose footer is damaged on disk.
_DAMAGED_FILE = (
    "a file of the synced tables is damaged ({}): delete it, and the next `bt-sync sync` rebuilds its "
    "object if the file was current"
)
_DAMAGED_CATALOG_FILE = (
    "a catalog file of the synced tables is damaged ({}): the next `bt-sync sync` writes it again"
)
# How a view bt-sync writes reads its tree's files.
_READS_FILES = re.compile(r"\bread_(?:parquet|text|json)\w*\s*\(", re.IGNORECASE)
# What `another_tree_shown` says of a root no catalog view names.
UNKNOWN_ROOT = "an unknown one"
# A directory named like a Hive partition (`org_id=acme`) in a path.
_NAME_VALUE_DIRECTORY = re.compile(r"(^|/)[^/=]+=[^/]*(/|$)")
# Writing the file takes well under a second: a temporary copy this old was left by a killed process.
KILLED_WRITE_AGE_S = 600

# The characters the longest file written beside the DuckDB file adds to its name: the views are written
# to `.<name>.<8 hex>.tmp`, whose journal DuckDB names `<that>.wal`; a journal left without its file is
# set aside as `<name>.wal.<time>.orphaned` (`_set_orphaned_log_aside`).
NAME_WRITTEN_BESIDE = max(
    len(".") + len(".12345678.tmp") + len(".wal"), len(".wal") + len(".20260101T000000") + len(".orphaned")
)


def view_statements(root: Root, pinned_by: duckdb.DuckDBPyConnection | None = None) -> list[str]:
    """`CREATE VIEW` (and `COMMENT ON`) statements for every table, reading the tree at `root`.

    Args:
        root: the tree.
        pinned_by: a connection that reads the objects' commit records now, for views that read the
            files they name (see `_event_source`); None for views that find them when each query runs.
    """
    statements: list[str] = []
    # The moment whose commits a query reads: its own start, or the moment a pinned reader was opened.
    as_of = "now()" if pinned_by is None else _moment(pinned_by)
    for stream in EVENT_STREAMS.values():
        hive_key, computed = _key_read(root, stream.key_column)
        ctes, source = _event_source(root, stream, pinned_by, as_of, hive_key)
        statements += table_view(
            stream.table, stream.columns, source, stream.description, ctes=ctes, computed=computed
        )
    for table in CATALOG_TABLES:
        source = read_parquet(sql_literal(root.uri(catalog_file(table))), "union_by_name = true")
        statements += table_view(table.table, table.columns, source, table.description)
    statements += _sync_state_view(root, as_of)
    return statements


def _moment(con: duckdb.DuckDBPyConnection) -> str:
    """The current time of `con`, as a SQL literal."""
    (moment,) = con.execute("SELECT now()::VARCHAR").fetchall()[0]
    return f"TIMESTAMPTZ {sql_literal(moment)}"


def fingerprint(statements: list[str]) -> str:
    """A short digest of the views: equal digests, equal views."""
    return hashlib.sha256("\n".join(statements).encode()).hexdigest()[:16]


def reader(root: Root, *, pinned: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with every table as a view: it never touches the analysts' file.

    Args:
        root: the tree.
        pinned: read the commits current now, whole, in every query (see `_event_source`).

    Raises:
        WarehouseError: nothing was synced to `root` yet, or its files cannot be read.
    """
    # A query too large for memory spills into the system's temporary directory, not into `.tmp` in the
    # user's working directory (DuckDB's default), which may not be writable.
    con = connect(temp_directory=str(spill_directory()))
    con.execute("SET TimeZone = 'UTC'")
    try:
        for statement in view_statements(root, pinned_by=con if pinned else None):
            con.execute(statement)
    except duckdb.Error as error:
        con.close()
        if "No files found" in str(error) and f"/{VERSIONS}/" in str(error):
            raise WarehouseError(_MISSING_FILE.format(first_line(error).rsplit(" ", 1)[-1])) from None
        if "No files found" in str(error):
            raise WarehouseError(_nothing_found(root)) from None
        if _DAMAGED_RECORD_REMEDY in str(error) or _MISSING_FILE.partition("{}")[0] in str(error):
            raise WarehouseError(first_line(error).partition(": ")[2]) from None
        if _httpfs_missing(error):
            raise WarehouseError(
                f"cannot read the tables at {root.display}: {HTTPFS_MISSING}; run {INSTALL_HTTPFS}"
            ) from None
        if damaged := damaged_files(root, whole=False):
            raise WarehouseError("; ".join(damaged)) from None
        raise WarehouseError(f"cannot read the tables at {root.display}: {first_line(error)}") from None
    return con


def _nothing_found(root: Root) -> str:
    """Why a view's files matched nothing: nothing synced yet, or, in a tree a sync wrote (some of the
    files every sync makes sure of), one of those deleted by hand (an event table's `__schema__`
    directory, which looks like junk, or a catalog table's directory), or not yet written by a first sync
    stopped early (Ctrl-C): it said nothing was synced."""
    written = [
        *(schema_record(stream) for stream in EVENT_STREAMS.values()),
        *(catalog_file(table) for table in CATALOG_TABLES),
    ]
    missing = [path for path in written if not root.exists(path)]
    if missing and len(missing) < len(written):
        lost = root.shown(missing[0].removesuffix(f"/{STATE_FILE}"))
        return (
            f"the synced tables at {root.display} lack {lost}, which every sync writes (deleted by hand, or "
            "a first sync stopped before writing it?): the next `bt-sync sync` writes it again"
        )
    return f"no synced tables at {root.display} yet: run `bt-sync sync` first"


def damaged_files(root: Root, *, whole: bool) -> list[str]:
    """A line for each Parquet file of the tree that cannot be read, naming it and the remedy: DuckDB's
    error does not name it. Looked for once a query failed: its footer (which fails every query of its
    table, and making the views), or (`whole`) any of its pages, which fail the queries reading them."""
    # On a local disk the views read the versions and the catalog files; on object storage, the tree's files.
    catalog = [catalog_file(table) for table in CATALOG_TABLES]
    files = (
        [*root.files_under(VERSIONS), *filter(root.exists, catalog)]
        if root.is_local
        else root.files_under("")
    )
    return [
        (_DAMAGED_CATALOG_FILE if path in catalog else _DAMAGED_FILE).format(f"{root.uri(path)}: {reason}")
        for path in files
        if path.endswith(".parquet") and (reason := why_unreadable(root, path, whole=whole)) is not None
    ]


@dataclass(frozen=True)
class ViewsFileFound:
    """The analysts' DuckDB file as a sync found it, before writing anything.

    Args:
        path: the file, links followed.
        exists: whether it exists.
        current: the fingerprint of its views ("" when they are not bt-sync's current ones); None when
            another process holds it open for writing.
        identity: its inode, size, time and log's size then (`_identity`; None where it was not there).
    """

    path: Path
    exists: bool
    current: str | None
    identity: tuple[int, int, int, int] | None = None

    def changed(self) -> bool:
        """Whether the file is no longer as found (a session wrote it since): it is looked at again."""
        return _identity(self.path) != self.identity


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    """What changes when a session writes the file or another replaces it: its inode, size and time (and
    its write-ahead log's, which a session's writes fill first)."""
    try:
        stat, log = path.stat(), _log_of(path)
    except OSError:
        return None
    logged = log.stat().st_size if log.exists() else -1
    return stat.st_ino, stat.st_size, stat.st_mtime_ns, logged


def check_views_file(path: Path) -> ViewsFileFound:
    """The DuckDB file at `path`, refused if its views could not be written: checked before a sync writes
    anything (refused only once the tables' directory was written, which `sql` and `status` then read
    as an empty warehouse).

    Raises:
        WarehouseError: the file exists and holds tables or views bt-sync did not make, or `path` is a
            loop of symbolic links.
    """
    path = _through_links(path)
    if not path.exists():
        return ViewsFileFound(path, exists=False, current="")
    identity = _identity(path)
    return ViewsFileFound(path, exists=True, current=_current_fingerprint(path), identity=identity)


def ensure_views_file(found: ViewsFileFound, root: Root) -> bool:
    """Create or update the analysts' DuckDB file `check_views_file` found; returns whether it was
    (re)written.

    Raises:
        WarehouseError: the file, written since it was found, now holds tables or views bt-sync did not
            make (a session's, which writing the file afresh would lose).
    """
    if found.changed():
        found = check_views_file(found.path)
    path = found.path
    _sweep_killed_writes(path)
    statements = view_statements(root)
    # The marker's own comments too: a file written before it had them is written again, once.
    wanted = fingerprint([*statements, *_MARKER_COMMENTS])
    if found.exists:
        if found.current is None:
            # Not replaced under a process that may be writing it: the views are refreshed next time.
            logger.warning(
                "%s is open for writing in another process, so its views were not checked or refreshed "
                "(a first sync leaves it without them); the next sync does it. The tables are synced, and "
                "`bt-sync sql` reads them; open the file read-only (duckdb -readonly) to let syncs refresh "
                "it",
                path,
            )
            return False
        if found.current == wanted:
            return False
    else:
        _set_orphaned_log_aside(path)
    _write_views_file(path, statements, wanted)
    return True


def _log_of(path: Path) -> Path:
    """The write-ahead log DuckDB keeps beside the file `path` while a session writes it."""
    return path.with_name(f"{path.name}.wal")


def _set_orphaned_log_aside(path: Path) -> None:
    """Move away a write-ahead log left where no file is: a file written there afresh would replay it,
    and no DuckDB could open that file again.

    A session killed while writing the file leaves its log, and the file may have been moved away
    since (as an error of ours advises); the log holds what that session wrote, so it is kept.
    """
    log = _log_of(path)
    if not log.exists():
        return
    aside = log.with_name(f"{log.name}.{time.strftime('%Y%m%dT%H%M%S')}.orphaned")
    try:
        log.rename(aside)
    except OSError as error:
        raise WarehouseError(
            f"{log} is left from a DuckDB file no longer at {path}, and a file written there would replay "
            f"it: move it away ({error.strerror})"
        ) from None
    logger.warning(
        "%s was left by a session killed while writing the DuckDB file once at %s; moved to %s. To keep "
        "what it wrote, put it beside that file (if you moved it away), named as the file with .wal",
        log,
        path,
        aside,
    )


def _through_links(path: Path) -> Path:
    """The file `path` names: a link's target, even one not made yet.

    The file is written in full and renamed over the old one: renamed over a link, it would replace the
    link (one to a file on another disk, say) with a file of its own.
    """
    try:
        path.stat()
    except OSError as error:
        # A loop, in the last part or a directory's: `realpath` would leave it as it is.
        if error.errno == errno.ELOOP:
            raise WarehouseError(f"{path} leads into a loop of symbolic links: name a file") from None
    return Path(os.path.realpath(path))


def holds_only_views(path: Path) -> bool:
    """Whether the DuckDB file at `path` holds bt-sync's views and nothing else (no table of anyone's)."""
    try:
        return _current_fingerprint(path) is not None
    except WarehouseError:  # not DuckDB, or foreign tables or views
        return False


def another_tree_shown(path: Path, root: Root) -> str | None:
    """The tree the bt-sync views of the DuckDB file at `path` read, when it is not `root` (its path or
    URI, or "an unknown one" if no catalog view names it); None when they read `root`, or none.

    A file that cannot be opened (locked, not DuckDB) is not judged here: `ensure_views_file` says why.
    A view of ours that a session replaced by one reading no file (`SELECT 1`) tells nothing: the sync
    puts it back.
    """
    # Every view bt-sync writes names its tree's files by their full path or URI, as the root followed by
    # one of its entries: a parent of the root (`--parquet data` for `data/parquet`) names none of them.
    entries = (VERSIONS, "*", *_OUR_VIEWS)
    in_root = [sql_literal(root.uri(f"{entry}/x"))[:-2] for entry in entries]
    try:
        alias = _attach(path, "READ_ONLY")
    except duckdb.Error:
        return None
    with _using(alias) as con:
        sources = con.execute(
            "SELECT view_name, sql FROM duckdb_views() WHERE database_name = current_database() "
            "AND NOT internal AND schema_name = 'main'"
        ).fetchall()
    other = [
        (name, sql)
        for name, sql in sources
        if name in _OUR_VIEWS and _READS_FILES.search(sql) and not any(named in sql for named in in_root)
    ]
    if not other:
        return None
    # A catalog table's view reads `<root>/<table>/data.parquet`.
    # A quote in the path is doubled in the SQL literal.
    found = (re.search(rf"'((?:[^']|'')*)/{re.escape(name)}/data\.parquet'", sql) for name, sql in other)
    return next((match.group(1).replace("''", "'") for match in found if match), UNKNOWN_ROOT)


def _current_fingerprint(path: Path) -> str | None:
    try:
        alias = _attach(path, "READ_ONLY")
    except duckdb.IOException as error:
        if "lock" in str(error).lower():
            return None
        if "WAL does not match" in str(error):
            raise WarehouseError(
                f"cannot open {path}: its write-ahead log {_log_of(path)} is another file's (a session "
                "killed while writing a file once at this path left it): move the log away"
            ) from None
        raise WarehouseError(
            f"cannot open {path}: {first_line(error)}; move it away or {_ANOTHER_FILE}"
        ) from None
    except duckdb.Error as error:
        raise WarehouseError(
            f"{path} is not a DuckDB database bt-sync can read ({first_line(error)}); "
            f"move it away or {_ANOTHER_FILE}"
        ) from None
    with _using(alias) as con:
        objects: list[tuple[str, str, str | None]] = con.execute(_OBJECTS).fetchall()
        marked = ("view", "main", MARKER_VIEW) in objects
        if foreign := _foreign(objects):
            # bt-sync 0.1 wrote its tables inside the file, and no marker; anything else is a session's own.
            if not marked and all(kind == "base table" and name in _OUR_VIEWS for kind, _, name in foreign):
                remedy = (
                    "a file written by bt-sync 0.1 (tables inside the file): move it away and run "
                    f"`bt-sync sync --full`, or {_ANOTHER_FILE}"
                )
            else:
                remedy = (
                    "drop what a session made there, or move it into a DuckDB file of its own (which a "
                    f"session ATTACHes), or {_ANOTHER_FILE}"
                )
            named = ", ".join(map(_named, foreign))
            raise WarehouseError(
                f"{path} holds {named}, which bt-sync did not make (it keeps only views of the synced tables "
                f"there, and writes the file afresh): {remedy}"
            )
        if not marked:
            return ""
        marker = con.execute(f"SELECT * FROM {MARKER_VIEW}").fetchone()
        # A view dropped or replaced by a session that wrote the file, or a marker from before the digest.
        if marker is None or len(marker) != 2 or marker[1] != _stored_views(con):
            return ""
    return str(marker[0])


# Every object of the file a session may have made, by its kind and name (`schema.name` outside `main`).
# The sync writes the file afresh, and an object it did not make would be lost: a schema with its
# tables, a macro, a sequence, a type.
_OBJECTS = """
    SELECT 'schema', schema_name, NULL FROM duckdb_schemas()
        WHERE database_name = current_database() AND NOT internal AND schema_name <> 'main'
    UNION ALL SELECT lower(table_type), table_schema, table_name FROM information_schema.tables
        WHERE table_catalog = current_database()
    UNION ALL SELECT DISTINCT replace(function_type, '_', ' '), schema_name, function_name
        FROM duckdb_functions() WHERE database_name = current_database() AND NOT internal
    UNION ALL SELECT 'sequence', schema_name, sequence_name FROM duckdb_sequences()
        WHERE database_name = current_database()
    UNION ALL SELECT 'type', schema_name, type_name FROM duckdb_types()
        WHERE database_name = current_database() AND NOT internal
"""


def _foreign(objects: list[tuple[str, str, str | None]]) -> list[tuple[str, str, str | None]]:
    """Those of the file's `objects` (`_OBJECTS`: kind, schema, name) bt-sync did not make, in the order
    of their names (`_named`)."""
    ours = {("view", "main", name) for name in (*_OUR_VIEWS, MARKER_VIEW)}
    return sorted((found for found in objects if found not in ours), key=_named)


def _named(found: tuple[str, str, str | None]) -> str:
    """An object of the file as "kind name" (`schema.name` outside `main`)."""
    kind, schema, name = found
    return f"{kind} {schema if name is None else name if schema == 'main' else f'{schema}.{name}'}"


def _stored_views(con: duckdb.DuckDBPyConnection) -> str:
    """A digest of the views of the file `con` uses, but the marker, as DuckDB keeps them."""
    views = con.execute(
        "SELECT view_name, sql, comment FROM duckdb_views() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND NOT internal AND view_name <> ? ORDER BY view_name",
        [MARKER_VIEW],
    ).fetchall()
    columns = con.execute(
        "SELECT table_name, column_name, comment FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'main' AND table_name <> ? "
        "ORDER BY table_name, column_index",
        [MARKER_VIEW],
    ).fetchall()
    return hashlib.sha256(repr((views, columns)).encode()).hexdigest()[:16]


def _attach(path: Path, options: str) -> str:
    """Attach the DuckDB file `path` with `options` to the process's scratch DuckDB; the name it has there.

    Opening a database of its own for the file costs 20-35 ms, attaching it about 2 ms: a sync looks at
    the views file twice before it starts, and writes it on its first run.
    """
    alias = f"views_{uuid.uuid4().hex[:8]}"
    with scratch_connection() as con:
        con.execute(f"ATTACH {sql_literal(str(path))} AS {alias} ({options})")
    return alias


@contextmanager
def _using(alias: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection whose current database is the attached file `alias`, detached (so closed) after it."""
    try:
        with scratch_connection() as con:
            con.execute(f"USE {alias}")
            yield con
    finally:
        # From a connection of its own: closing the one used rolled back a transaction a failure left open.
        with scratch_connection() as con:
            con.execute(f"DETACH {alias}")


def _sweep_killed_writes(path: Path) -> None:
    """Delete what a process killed while writing the file left beside it (not another's write in flight)."""
    oldest_kept = time.time() - KILLED_WRITE_AGE_S
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
        with suppress(OSError):  # gone meanwhile, or not ours to delete
            if leftover.stat().st_mtime < oldest_kept:
                leftover.unlink()


def _write_views_file(path: Path, statements: list[str], wanted: str) -> None:
    """Write the views and the marker: the fingerprint `wanted` of their statements, and the digest of
    the views as stored, by which a sync tells that a session changed them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")  # see NAME_WRITTEN_BESIDE
    try:
        with _using(_attach(temporary, f"STORAGE_VERSION '{STORAGE_VERSION}'")) as con:
            # One transaction: a commit per statement (a few hundred, with the comments) costs ten times more.
            con.execute("BEGIN")
            for statement in statements:
                con.execute(statement)
            marker = f"SELECT {sql_literal(wanted)} AS views, {sql_literal(_stored_views(con))} AS stored"
            con.execute(f"CREATE VIEW {MARKER_VIEW} AS {marker}")
            for comment in _MARKER_COMMENTS:
                con.execute(comment)
            con.execute("COMMIT")
        # The log of a session killed while writing the file: read (and checked) with the file, but
        # replayed into the new file it would make that one unreadable.
        _log_of(path).unlink(missing_ok=True)
        os.replace(temporary, path)
    except (OSError, duckdb.Error) as error:
        # Its log too: left by a write that failed as it detached (a full disk), it took the rerun's room.
        for left in (temporary, _log_of(temporary)):
            left.unlink(missing_ok=True)
        if _httpfs_missing(error):
            raise WarehouseError(f"cannot write {path}: {HTTPFS_MISSING}") from None
        reason = first_line(error)
        if "CHECKPOINT during DETACH failed" in reason:
            # DuckDB's words name its own attachment (`views_8abab243`), nothing the user knows, and no cause.
            reason = "DuckDB could not write it out as it closed it"
        for_want_of_room = not any(other in reason for other in _NOT_FOR_WANT_OF_ROOM)
        if isinstance(error, OSError | duckdb.IOException):
            if for_want_of_room:
                # DuckDB's error for a disk that filled as the file was detached names neither.
                with suppress(OSError):
                    reason += f" ({shutil.disk_usage(path.parent).free:,} bytes free on its disk)"
            reason += file_size_limit()
        else:  # a commit's write refused (`TransactionContext Error: … File too large`)
            reason = noting_file_size_limit(reason)
        raise WarehouseError(f"cannot write {path}: {reason}") from None


# The system's reasons a file cannot be written that say it is no matter of room: the disk's free bytes
# beside them misled (`/proc` has none).
_NOT_FOR_WANT_OF_ROOM = (
    "Permission denied",
    "Operation not permitted",
    "Read-only file system",
    "No such file or directory",
    "Not a directory",
    "Is a directory",
    "File too large",
)


def _httpfs_missing(error: BaseException) -> bool:
    """Whether DuckDB failed for want of httpfs (object storage, offline): its own error ends its first
    line before its reason."""
    return "extension 'httpfs" in str(error)


def _event_source(
    root: Root,
    stream: EventStream,
    pinned_by: duckdb.DuckDBPyConnection | None,
    as_of: str,
    hive_key: str | None,
) -> tuple[str, str]:
    """The rows of an event table (the common table expressions they read, and their source): on a local
    disk, the versions of its files current when a query starts. `hive_key` is the column read by Hive
    partitioning, if any (`_key_read`).

    DuckDB reads a file's footer and its data through separate opens, so it must not
    read a file that a sync replaces meanwhile: it reads the immutable versions, keeping
    those the objects' commit records name. A query lists the versions when it is planned
    and reads the records when it runs, after a sync may have committed new versions the
    listing lacks. So it keeps the versions that were current at its start (DuckDB's
    `now()`, which is before the listing): each record names when its versions became
    current and when the replaced ones stopped being so, and a replaced version stays an
    hour (`RETIRED_GRACE`). Every query thus sees one whole commit of every object, the one
    current when it started (when its transaction did, in an explicit transaction). A
    pinned reader (`pinned_by`) names the files of the commits current when it was opened
    (`as_of`, the moment its `sync_state` view reads too). A version named and not found
    fails the query (with the next sync's remedy), where DuckDB would leave its rows out.
    """
    options = ("union_by_name = true", "filename = true")
    if not root.is_local:
        # On object storage the tree's files are replaced by a single PUT each, and read over HTTP.
        files = sql_literal(root.uri(stream.table) + "/*/*.parquet")
        return "", read_parquet(files, *options, hive_key=hive_key)
    versions = root.uri(f"{VERSIONS}/{stream.table}")
    version = 'STRUCT(version VARCHAR, since TIMESTAMPTZ, "at" TIMESTAMPTZ)[]'
    pattern = root.uri(stream.table) + "/*/" + STATE_FILE
    records = _records(
        pattern,
        {
            "state": "STRUCT(object_id VARCHAR)",
            "files": version,
            "retired": version,
            "removed_at": "TIMESTAMPTZ",
        },
    )
    path = f"{sql_literal(versions + '/' + stream.key_column + '=')} || state.object_id || '/' || f.version"
    listed = f"SELECT file FROM glob({sql_literal(versions + '/*/*.parquet')})"
    # A version the tree lacks, or one its record names wrongly, fails the query, where reading the others
    # would leave its rows out unseen. (A record naming no object fails it in `_unread_records`.)
    checked = (
        "CASE WHEN state.object_id IS NULL THEN NULL "
        f"WHEN f.version IS NULL THEN error({_damaged_record(sql_literal(_LISTS_FILES_WRONGLY))}) "
        f"WHEN path IN ({listed}) THEN path "
        f"ELSE error(replace({sql_literal(_MISSING_FILE)}, '{{}}', path)) END"
    )
    ctes = f"records AS ({records})"
    committed = (
        f"SELECT {checked} FROM (SELECT filename, state, f, {path} AS path "
        "FROM (SELECT filename, state, unnest(list_concat(files, retired)) AS f FROM records "
        f"WHERE removed_at IS NULL OR removed_at > {as_of}) "
        f'WHERE (f.since IS NULL OR f.since <= {as_of}) AND (f."at" IS NULL OR f."at" > {as_of})) '
        f"UNION ALL {_unread_records(pattern, lists_files=True)}"
    )
    if pinned_by is not None:
        # The empty schema file gives the columns when no object has rows.
        schema = f"{versions}/{stream.key_column}={SCHEMA_OBJECT}/{SCHEMA_FILE}"
        named = [schema, *(path for (path,) in pinned_by.execute(f"WITH {ctes} {committed}").fetchall())]
        return "", read_parquet(sql_path_list(named), *options, hive_key=hive_key)
    files = read_parquet(sql_literal(versions + "/*/*.parquet"), *options, hive_key=hive_key)
    return ctes, f"{files} WHERE filename IN ({committed})"


def _key_read(root: Root, key_column: str) -> tuple[str | None, dict[str, str]]:
    """How an event view reads its object id (`key_column`), which the files do not hold but their
    directories name (`…/project_id=<id>/<version>.parquet`): the column DuckDB's Hive partitioning reads
    (None if none), and the view's columns computed instead (by name).

    Hive partitioning, which skips the files a query's filter on the key rules out (a join's too), unless
    the tree's path holds a `name=value` directory (`lake/org_id=acme/`), which it would take for a column
    of every row (`org_id` read `acme`): the key is then read from each file's own directory, and such a
    filter no longer skips the files of other objects.
    """
    if _NAME_VALUE_DIRECTORY.search(root.uri()) is None:
        return key_column, {}
    pattern = sql_literal("/" + re.escape(key_column) + "=([^/]*)/[^/]*$")
    return None, {key_column: f"regexp_extract(filename, {pattern}, 1)"}


def _records(pattern: str, fields: dict[str, str]) -> str:
    """A query of the commit records matching `pattern`: each one's path (`filename`), text (`content`)
    and `fields` (name: DuckDB type), absent ones NULL.

    One row per file whatever it holds (`read_blob`), for `_unread_records` to tell: `read_json` gives
    none for a file holding `[]`, nothing or blanks, so such a record left its object out unseen. Anything
    but a JSON object (cut short, an array, a string) reads as a record of NULLs; in one, a value not of
    its field's type reads as NULL (`from_json`), where `read_json` failed: bt-sync writes none such.
    Bytes that are no UTF-8 are a NULL text (`read_text` failed the query on them, naming no record).
    A record in another directory than its object's is a copy (`cp -r x=id x=id.bak`, or `old_x=id`),
    left out: its object's rows were read twice, and once its versions were deleted every query failed.
    `fields` holds `state`, with `object_id`.
    """
    structure = sql_literal(json.dumps(fields))
    parsed = f"CASE WHEN json_valid(content) THEN from_json(content, {structure}) END"
    # Named whole, under its table (`/experiment_events/experiment_id=<id>/`): a copy `old_experiment_id=<id>`
    # ends as its object's does, and `dataset_id=<id>` among the experiments is no directory of theirs.
    record = sql_literal("/" + STATE_FILE)
    directories = [sql_literal(f"/{stream.table}/{stream.key_column}=") for stream in EVENT_STREAMS.values()]
    own_directory = " OR ".join(
        f"ends_with(filename, {directory} || parsed.state.object_id || {record})" for directory in directories
    )
    return (
        f"SELECT filename, content, parsed.* FROM (SELECT filename, content, {parsed} AS parsed FROM "
        f"(SELECT filename, try(decode(content)) AS content FROM read_blob({sql_literal(pattern)}))) "
        f"WHERE parsed.state.object_id IS NULL OR {own_directory}"
    )


def _unread_records(pattern: str, *, lists_files: bool = False) -> str:
    """SQL failing the query, in one line, if the `records` a view reads (see `_records`) would leave
    rows out of it without a word.

    Either one names no object (emptied, cut short or overwritten: `{}`, `[]`, `null`, nothing), or,
    where the records are read for their `files` (`lists_files`), holds something else than a list there
    (a value of another type reads as NULL; a record without the key, which bt-sync never writes, is read
    as a sync reads it, an object without files), and the error names it (the schema object's record is
    `{}` by design); or none matches `pattern` at all
    (`read_blob` finds none without a word, while every synced tree holds the schema object's), and the
    error is the one `read_json` gave, by which `reader` tells that nothing was synced yet. Told from
    the same listing the view reads, so that an object a sync adds meanwhile is never taken for a
    damaged one (a record is whole once listed: it is written under another name, then renamed). One
    SELECT: DuckDB writes a view's third UNION ALL back with other parentheses than it read it with,
    so that the analysts' file would never look current.
    """
    none = sql_literal(f'No files found that match the pattern "{pattern}"')
    wrongly = sql_literal(_LISTS_FILES_WRONGLY)
    # Said as `status` and a sync say it: a record cut short is no JSON, not one that names no object.
    fault = (
        "CASE WHEN regexp_full_match(content, '\\s*') THEN ' is empty' "
        "WHEN content IS NULL OR NOT json_valid(content) THEN ' is not JSON (cut short or overwritten)' "
        f"WHEN state.object_id IS NULL THEN ' names no object' ELSE {wrongly} END"
    )
    # Text that is no JSON is damaged already (its `state` reads as NULL): not read again (`json_exists`
    # would fail on it).
    present = "json_exists(CASE WHEN json_valid(content) THEN content END, '$.files')"
    wrong_files = f" OR (files IS NULL AND {present})" if lists_files else ""
    damaged = f"state.object_id IS NULL{wrong_files}"
    schema_record = sql_literal(f"={SCHEMA_OBJECT}/{STATE_FILE}")
    return (
        f"SELECT error(CASE WHEN filename IS NULL THEN {none} ELSE {_damaged_record(fault)} END) "
        "FROM (SELECT 1 AS one) LEFT JOIN records ON true WHERE filename IS NULL OR "
        f"(({damaged}) AND NOT ends_with(filename, {schema_record}))"
    )


def _damaged_record(fault: str) -> str:
    """SQL of the error for the commit record `filename`; `fault` is the SQL of what is wrong with it."""
    return f"'the commit record ' || filename || {fault} || {sql_literal(_DAMAGED_RECORD_REMEDY)}"


def table_view(
    name: str,
    columns: tuple[Column, ...],
    source: str,
    description: str,
    *,
    ctes: str = "",
    computed: dict[str, str] | None = None,
) -> list[str]:
    """A view `name` selecting `columns` from `source`, and the comments describing it and its columns.

    `ctes` are the common table expressions `source` reads (`records AS (...)`), made at the view's top:
    DuckDB 1.4.0 and 1.4.1 cannot read a view DuckDB 2 wrote holding one in a subquery. `computed` gives
    the SQL of the columns `source` does not hold, by name.
    """
    made = computed or {}
    selected = ", ".join(
        f"{made[c.name]} AS {sql_identifier(c.name)}" if c.name in made else sql_identifier(c.name)
        for c in columns
    )
    with_ctes = f"WITH {ctes} " if ctes else ""
    statements = [
        f"CREATE OR REPLACE VIEW {sql_identifier(name)} AS {with_ctes}SELECT {selected} FROM {source}"
    ]
    statements.append(f"COMMENT ON VIEW {sql_identifier(name)} IS {sql_literal(description)}")
    statements += [
        f"COMMENT ON COLUMN {sql_identifier(name)}.{sql_identifier(c.name)} IS {sql_literal(c.description)}"
        for c in columns
    ]
    return statements


def _sync_state_view(root: Root, as_of: str) -> list[str]:
    """The objects' states as of `as_of` (a query's start), as the event views read files (`_event_source`).

    A record names its state and when it was committed (`since`), its removal (`removed_at`), and the
    states it replaced, each until when (`superseded`): every query sees the state of the commit
    whose rows it reads. Records written before bt-sync kept `since` are read as current.
    """
    fields = ", ".join(f"{sql_identifier(c.name)} {c.duckdb_type}" for c in SYNC_STATE_COLUMNS)
    state = f"STRUCT({fields})"
    pattern = root.uri() + "/*/*/" + STATE_FILE
    records = _records(
        pattern,
        {
            "state": state,
            "since": "TIMESTAMPTZ",
            "removed_at": "TIMESTAMPTZ",
            "superseded": f'STRUCT(state {state}, since TIMESTAMPTZ, "at" TIMESTAMPTZ)[]',
        },
    )
    every_state = (
        "SELECT unnest(list_concat([{'state': state, 'since': since, 'at': removed_at}], superseded)) AS s "
        # The failing branch's value is the error, so that no plan can leave it unevaluated.
        f"FROM records UNION ALL {_unread_records(pattern)}"
    )
    selected = ", ".join(
        f"s.state.{sql_identifier(c.name)} AS {sql_identifier(c.name)}" for c in SYNC_STATE_COLUMNS
    )
    statements = [
        f"CREATE OR REPLACE VIEW sync_state AS WITH records AS ({records}) SELECT {selected} "
        f"FROM ({every_state}) WHERE s.state IS NOT "
        f'NULL AND (s.since IS NULL OR s.since <= {as_of}) AND (s."at" IS NULL OR s."at" > {as_of})'
    ]
    statements.append(f"COMMENT ON VIEW sync_state IS {sql_literal(SYNC_STATE_DESCRIPTION)}")
    statements += [
        f"COMMENT ON COLUMN sync_state.{sql_identifier(c.name)} IS {sql_literal(c.description)}"
        for c in SYNC_STATE_COLUMNS
    ]
    return statements
