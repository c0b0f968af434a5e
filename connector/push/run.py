"""Push a CSV, Parquet, JSON Lines or JSON file, or the result of a SQL query, into a Braintrust dataset.

Dagster calls `push`; the CLI calls its two steps, `open_push` then
`PushRun.run`, opening the API client in between. Every path is checked
before anything is created or opened for writing. Then a first pass, before
anything is created, reads every row once: it validates it (with
`on_error="fail"` a bad row stops the push; with "skip" it goes to the rejects
file), learns every column of JSON rows, maps it to an event with a
deterministic id and indexes the id, so that of rows sharing an id only the
last is sent; it groups the events into numbered batches under the
request-size limit and spools them to a temporary file (for a large JSON Lines
file, a helper process decides meanwhile which lines already are their events:
`lines_ahead`). A file that changed meanwhile is refused. The second pass reads
the batches back (grouping the events afresh if rows shared an id) and sends
them with bounded concurrency, checkpointing each acknowledged batch so a rerun
resumes where a crashed push stopped. A 413 or a 400 splits the batch in half, down to the
row the API refuses, which stops the push, or with "skip" goes to the rejects file.

With `validate_first` off, a file's batches are sent as soon as they are checked, in
one pass without a spool (`PushRun._send_as_checked`): rows sharing an id are then all
sent, kept in order, and a bad row stops the push after the batches before it.

A file's checkpoint is known by the file's path, inode, size, modification and change
times (`file_identity`), so a rerun of a file already pushed reads nothing. A query's
result has none of these: its checkpoint is known by a digest of the events the first
pass made (each row's number and JSON, in the result's sorted order) with the options
and the dataset. So a rerun whose query returns the same rows, however it is spelled,
resumes or sends nothing; any change to the rows (a span re-scored upstream, then synced)
pushes the result afresh, replacing records by id.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shlex
import stat
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, ExitStack, closing, contextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal
from itertools import chain
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Self, cast

import orjson

from connector import interrupts
from connector.config import check_state_dir, setting_named
from connector.display import (
    LOCALE_REMEDY,
    as_given,
    counted,
    holds_invisible,
    locale_cannot_read,
    printable,
    read_as,
)
from connector.errors import (
    ApiError,
    ConfigError,
    NotFoundError,
    PayloadTooLarge,
    PushError,
    RequestError,
    ServerUnavailable,
    in_the_way_of,
    os_reason,
)
from connector.progress import ProgressReporter, ProgressTask
from connector.push.batch import Batch, batches
from connector.push.checkpoint import PushCheckpoint, checkpoint_key, file_identity, locked_checkpoint
from connector.push.choices import OnError
from connector.push.ids import IdIndex, RefusedLast
from connector.push.lines_ahead import LinesAhead, helps
from connector.push.map import (
    ColumnMapping,
    MappedChunk,
    RowMapper,
    alike_columns,
    big_ints_replaced,
    fields_whose_column_feeds_another,
    flags_mapping,
    resolve_mapping,
)
from connector.push.options import PushOptions, PushOutcome, PushSummary
from connector.push.origin import ORIGIN_COLUMN, find_origin
from connector.push.read import RowChunk, RowProblem, RowSource, SourceFile
from connector.push.spelling import option
from connector.push.spool import EventSpool
from schemas.api import Dataset, ObjectType, Project

if TYPE_CHECKING:
    # Only for types: the client's and the settings' modules take 0.3 s to import, which a push
    # spends reading its file meanwhile (`open_push`).
    from connector.api.client import BraintrustClient
    from connector.config import WarehouseSettings
    from connector.push.read_sql import QuerySource

__all__ = ["PushRun", "open_push", "push", "push_file"]

# How long an interrupted push waits for the batches in flight to be acknowledged (and checkpointed).
INTERRUPTED_WAIT_S = 5.0


def push(
    client: BraintrustClient | None,
    options: PushOptions,
    progress: ProgressReporter,
    warehouse: WarehouseSettings | None = None,
) -> PushSummary:
    """Push a file, or the result of a query over the synced tables, into a dataset.

    Creates the project and dataset if missing.

    Args:
        client: the API client; may be None only for a dry run, which never calls the API.
        options: what to push where.
        progress: shows rows validated, then rows acknowledged and rows/s.
        warehouse: the tables `options.sql` reads; None reads the environment's (`BT_SYNC_PARQUET`...).

    Raises:
        ConfigError: the rejects file, the state directory or the query's file cannot be used.
        QueryError: the query is not one SELECT, or DuckDB refused it.
        PushError: the input or a row is invalid (with `on_error="fail"`), or a single row is too large.
        ApiError: the API refused or kept failing; acknowledged batches stay checkpointed.
    """
    with open_push(options, progress, warehouse) as run:
        return run.run(client)


@contextmanager
def open_push(
    options: PushOptions, progress: ProgressReporter, warehouse: WarehouseSettings | None = None
) -> Iterator[PushRun]:
    """`push` in two steps: open the rows (and start a large JSON Lines file's helper), then `PushRun.run`.

    So that a caller may open its API client in between: the command line imports the client's
    modules (0.3 s) while the helper decides the file's first lines.

    Args and Raises: as `push`'s, but for ApiError, which only `PushRun.run` raises.
    """
    started = time.monotonic()
    _check_paths(options)
    with ExitStack() as stack:
        source: RowSource
        if options.file is not None:
            source = SourceFile(options.file, options.format, options.delimiter)
        else:
            # Imported here: DuckDB, which reads the query, would add 0.1 s to every push of a file, and
            # the settings' module 0.1 s before a large file's helper starts.
            from connector.config import WarehouseSettings
            from connector.push.read_sql import QuerySource

            query = _query_text(options)
            source = stack.enter_context(QuerySource(warehouse or WarehouseSettings(), query, progress))
        yield PushRun(options, source, progress, started, stack)


def push_file(
    client: BraintrustClient | None, options: PushOptions, progress: ProgressReporter
) -> PushSummary:
    """Push `options.file` into a dataset: `push` without a warehouse, the entry point of bt-sync 0.2."""
    return push(client, options, progress)


def _query_text(options: PushOptions) -> str:
    if options.sql is not None:
        return options.sql
    assert options.sql_file is not None, "PushOptions names exactly one source"
    named = f"{option('sql_file')} {options.sql_file}"
    if options.sql_file == Path("-") and not options.sql_file.exists():
        # It was "No such file or directory", where other tools read standard input.
        raise ConfigError(
            f"{named}: names no file, not standard input: give the query's file, or the query in --sql"
        )
    try:
        return options.sql_file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{named}: not UTF-8 text ({error.reason})") from None
    except OSError as error:
        raise ConfigError(f"{named}: {error.strerror}") from None


def _check_paths(options: PushOptions) -> None:
    """Refuse a rejects file or state directory that cannot work, before anything is created or written.

    Raises:
        ConfigError: naming the path and what is wrong with it.
    """
    # A dry run uses no state directory, but refuses one the push it rehearses would refuse.
    named = {
        "file": options.input_file,
        "rejects": options.rejects,
        "state_dir": options.checkpoint_dir.parent,
    }
    for name, path in named.items():
        if path is not None:
            _check_utf8_name(option(name), path)
    if options.rejects is not None:
        _check_rejects(options.rejects, options.input_file, dry_run=options.dry_run)
    check_state_dir(
        options.checkpoint_dir.parent, setting_named("state_dir", option("state_dir"), options.state_dir)
    )


def _check_utf8_name(flag: str, path: Path) -> None:
    # pyarrow opens files by UTF-8 names, and checkpoints record them in JSON: neither takes other bytes.
    try:
        str(path).encode()
    except UnicodeEncodeError:
        why = LOCALE_REMEDY if locale_cannot_read(str(path)) else "the name is not valid UTF-8; rename it"
        raise ConfigError(f"{flag} {as_given(str(path))}: {why}") from None


def _check_rejects(rejects: Path, input_file: Path | None, *, dry_run: bool) -> None:
    if rejects.is_dir():
        raise ConfigError(f"{option('rejects')} {rejects} is a directory; name a file")
    # samefile compares device and inode: it sees through symlinks, hard links and `./x` vs `x`.
    if input_file and rejects.exists() and input_file.exists() and os.path.samefile(rejects, input_file):
        raise ConfigError(
            f"{option('rejects')} {rejects} is the input file; writing rejects there would destroy it"
        )
    if (output := _output_stream(rejects)) is not None:
        # Replaced as the push starts, then the summary written over it from the start (or, through a pipe,
        # the rejects mixed into `--json`'s one document).
        raise ConfigError(
            f"{option('rejects')} {rejects} is this command's {output}, which the push would replace: name a "
            "file of its own"
        )
    folder = rejects.parent
    if not folder.is_dir():
        missing = in_the_way_of(folder) or f"no such directory {folder}"
        raise ConfigError(f"{option('rejects')} {rejects}: {missing}")
    if not os.access(folder, os.W_OK | os.X_OK) or (rejects.exists() and not os.access(rejects, os.W_OK)):
        raise ConfigError(f"{option('rejects')} {rejects}: permission denied")
    if rejects.is_file() and not _holds_rejects(rejects):
        # The push replaces it whole as it starts: a DuckDB file given there (the warehouse's) was emptied.
        raise ConfigError(
            f"{option('rejects')} {rejects} holds something else than the rejects of a push, which it would "
            "replace: name a new file, or delete it first"
        )
    if dry_run and rejects.is_file() and _holds_rows_not_sent(rejects):  # a FIFO's read waits for a writer
        # The only list of the rows a push did not send, which a rerun of it does not write again.
        raise ConfigError(
            f"{option('rejects')} {rejects} holds the rows a push did not send, which a dry run would "
            "replace: name another file for the dry run"
        )


def _output_stream(path: Path) -> str | None:
    """ "standard output" or "standard error" if `path` is this process's (`/dev/stdout`, a link to the file
    either is redirected to), else None."""
    try:
        target = path.stat()
    except OSError:
        return None
    if not (stat.S_ISREG(target.st_mode) or stat.S_ISFIFO(target.st_mode)):
        return None  # a device (/dev/null, a terminal) replaced or written to by both loses nothing
    for descriptor, name in ((1, "standard output"), (2, "standard error")):
        with suppress(OSError):  # closed
            stream = os.fstat(descriptor)
            if (stream.st_dev, stream.st_ino) == (target.st_dev, target.st_ino):
                return name
    return None


def _holds_rows_not_sent(path: Path) -> bool:
    """Whether a file holds the rejects of a push that was not a dry run (whose records end saying so)."""
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - len(_DRY_RUN_END)))
            end = file.read()
    except OSError:
        return False
    return bool(end) and end != _DRY_RUN_END


def _holds_rejects(path: Path) -> bool:
    """Whether a file is empty or an earlier push's rejects: each line a record, its `file` first."""
    with path.open("rb") as file:
        head = file.read(len(_REJECTS_START))
    return not head or head == _REJECTS_START


class PushRun:
    """One push of a file or of a query's result, opened by `open_push`.

    Args:
        options: what to push where.
        source: the rows.
        progress: where to show them being validated and sent.
        started: when the push started (`time.monotonic`).
        stack: stops the helper deciding a large JSON Lines file's lines, which starts now.
    """

    def __init__(
        self,
        options: PushOptions,
        source: RowSource,
        progress: ProgressReporter,
        started: float,
        stack: ExitStack,
    ) -> None:
        self.options = options
        self.source = source
        self.progress = progress
        # A source is a file or a query's result (`RowSource`).
        result = None if isinstance(source, SourceFile) else cast("QuerySource", source)
        self.query = None if result is None else result.sql
        # A query's result links its records to the spans its rows came from; a file's rows never do.
        self.origin = None if result is None else find_origin(source.columns)
        unlinked = self._links_to_nothing(result)
        # The dataset pushed into, once the API (`_push`) or, in a dry run, the warehouse said: a record
        # read from it and pushed under its id keeps no link to itself.
        self._into_dataset: str | None = None
        if not (options.validate_first or source.columns):
            flag = option("validate_first", False)
            raise PushError(
                f"{source.name}: none of its first lines is a JSON object that parses, and {flag} maps a "
                f"file by its first row; without {flag} the whole file is checked first (with "
                f"{option('on_error', OnError.SKIP)} its bad rows go to the rejects file)"
            )
        # Sending as it checks, a push maps JSON rows by the keys of the first: it cannot read them all first.
        self.mapper = self._mapper(self._mapping(check=source.columns_complete or not options.validate_first))
        # A column the mapping never sends is listed as not sent; its values must not refuse a row.
        source.read_only(self.mapper.mapping.columns())
        self.summary = PushSummary(
            file=None if options.file is None else str(options.file),
            query=self.query,
            project=options.project,
            dataset=options.dataset,
            dataset_id=None,
            dry_run=options.dry_run,
            validate_first=options.validate_first,
            warnings=unlinked,
        )
        self._opened = None if options.file is None else file_identity(options.file)
        # What names a query's rows for its checkpoint: a digest of the events the scan makes.
        self._digest = None if self.query is None else hashlib.sha256()
        self._record = str(options.file) if self.query is None else self.query
        self._started = started
        self._ahead = self._lines_ahead(stack)
        # The rows the API refused, set aside with `on_error="skip"`: their row by their id.
        self._refused_rows: dict[str, int] = {}

    def run(self, client: BraintrustClient | None) -> PushSummary:
        """Push the rows (`push`'s Args and Raises); once only."""
        if self.options.dry_run:
            return self._dry_run()
        if client is None:
            raise PushError("a push that is not a dry run needs an API client")
        return self._push(client)

    def _dry_run(self) -> PushSummary:
        if self.origin is not None:
            # Asked nothing, the API cannot say which dataset records would link to themselves: the
            # warehouse's catalog tables can.
            source = cast("QuerySource", self.source)
            self._into(source.listed_dataset(self.options.project, self.options.dataset))
        with ExitStack() as stack:
            ids, spool, batch_count = self._scan(stack, self._ahead, self._rejects(stack))
            # Rows left out as duplicates shift the batches: only then count them over again. Sending as
            # it checks leaves none out: every row is sent, in the batches the check made.
            left_out = self.summary.rows_duplicate and self.options.validate_first
            self.summary.batches = sum(1 for _ in self._batches(ids, spool)) if left_out else batch_count
        # Asked nothing, it cannot tell whether such a name is an object's: the push refuses it if none is.
        for kind, name in (("project", self.options.project), ("dataset", self.options.dataset)):
            if (spaced := _spaced_name(kind, name)) is not None:
                self.summary.warnings.append(
                    printable(
                        f"{spaced}: the push refuses it unless a {kind} is named so (a dry run asks nothing)"
                    )
                )
        return self._finish()

    def _push(self, client: BraintrustClient) -> PushSummary:
        with ExitStack() as stack:
            dataset = _find_dataset(client, self.options)
            if dataset is not None and self.origin is not None:
                self._into(dataset.id)
            # A file already pushed is known before it is read; a query's rows only once they are.
            known_before_reading = self._digest is None and not self.options.force
            if dataset is not None and known_before_reading and self._already_pushed(dataset):
                return self._finish()
            if not self.options.validate_first:
                self._send_as_checked(client, dataset, stack)
                return self._finish()
            rejects = self._rejects(stack)
            ids, spool, _ = self._scan(stack, self._ahead, rejects)
            summary = self.summary
            # No row to send (each refused, or left out for a later row of its id): nothing is created.
            if summary.rows_read - summary.rows_skipped - summary.rows_duplicate <= 0:
                return self._finish()
            if dataset is None:
                dataset, self.summary.created = _create_dataset(client, self.options)
            self.summary.dataset_id = dataset.id
            checkpoint = stack.enter_context(self._checkpoint(dataset, force=self.options.force))
            if checkpoint.complete:
                self._recall(checkpoint)
                return self._finish()
            # Before the first batch: a state directory that cannot hold the checkpoint (a full disk)
            # stops the push before it sends anything.
            checkpoint.save()
            try:
                self._send(client, dataset.id, checkpoint, self._batches(ids, spool), rejects)
            except _RowRefused as error:  # say what landed before it
                said = _sent_so_far(self.summary, self._source_kind, refused=True)
                raise PushError(f"{error} ({said})") from None
            if rejects:
                rejects.flush()  # the rows the API refused: a full disk fails the push here, not silently
            self._report_refused_last_rows(ids)
            checkpoint.mark_complete(self._outcome())
        return self._finish()

    def _report_refused_last_rows(self, ids: IdIndex) -> None:
        """Warn of rows the API refused that were the last of their ids: the earlier rows of those ids were
        left out for them, so the dataset holds no row of the ids (a row the checks refuse never is last)."""
        if not (self._refused_rows and self.summary.rows_duplicate):
            return
        orphaned = ids.left_out_for(self._refused_rows.keys())
        if not orphaned:
            return
        example = min(orphaned, key=self._refused_rows.__getitem__)
        self.summary.warnings.append(
            printable(
                f"{counted(len(orphaned), 'rows')} of {self.source.name} that the API refused (in the "
                "rejects file) had the same id as earlier rows, which were left out for them: no row of "
                f'those ids was stored (e.g. id "{example}", row {self._refused_rows[example]}); mend the '
                f"refused rows and push the {self._source_kind} again"
            )
        )

    def _send_as_checked(self, client: BraintrustClient, dataset: Dataset | None, stack: ExitStack) -> None:
        """Send each batch as soon as its rows are checked (`validate_first` off); only for a file.

        The dataset is created once the first batch is checked, so a bad first row creates nothing.
        A bad row later stops the push once the batches in flight are acknowledged, saying how many
        rows were sent: they are checkpointed, and their ids are deterministic, so pushing the mended
        file again replaces them rather than duplicating them. Rows sharing an id are all sent, in
        file order (`_Sender.submit`), so the API keeps the last one, as when validating first.
        """
        # A row refused after earlier rows of its id were sent cannot keep them from the dataset.
        ids = stack.enter_context(IdIndex(refused_replace=False))
        # Its failure is one of the push's, whose message says what was sent.
        rejects = self._rejects(stack, says_what_was_sent=False)
        row_ids: dict[int, str] = {}
        with _older_objects_frozen(), closing(self.progress.task(f"validate {self.source.name}")) as task:
            indexed = self._indexed(ids, rejects.write if rejects else self._fail, task, ahead=None)
            checked = batches(_remembering_ids(indexed, row_ids), max_rows=self.options.batch_rows)
            try:
                checkpoint = self._send_checked(client, dataset, stack, checked, row_ids, rejects)
                if rejects:
                    rejects.flush()
            except _FileChanged:
                raise
            except PushError as error:
                said = _sent_so_far(self.summary, self._source_kind, refused=isinstance(error, _RowRefused))
                raise PushError(f"{error} ({said})") from None
        # Outside: a file changed while it was pushed has nothing to mend, and its message says so.
        self._check_unchanged()
        self._report(self.mapper.mapping, ids)
        if checkpoint is not None:
            checkpoint.mark_complete(self._outcome())

    def _send_checked(
        self,
        client: BraintrustClient,
        dataset: Dataset | None,
        stack: ExitStack,
        checked: Iterator[Batch],
        row_ids: dict[int, str],
        rejects: _Rejects | None,
    ) -> PushCheckpoint | None:
        """`_send_as_checked`'s sending, once the first batch is checked; None if no row is valid."""
        first = next(checked, None)
        if first is None:
            return None
        if dataset is None:
            dataset, self.summary.created = _create_dataset(client, self.options)
        self.summary.dataset_id = dataset.id
        checkpoint = stack.enter_context(self._checkpoint(dataset, force=self.options.force))
        checkpoint.save()
        self._send(client, dataset.id, checkpoint, chain([first], checked), rejects, row_ids)
        return checkpoint

    def _links_to_nothing(self, result: QuerySource | None) -> list[str]:
        """Give up the origins of a result whose event columns name rows its event table lacks, saying so."""
        if result is None or self.origin is None:
            return []
        link = self.origin
        missing = result.links_to_nothing(link)
        if not missing:
            return []
        self.origin = None
        return [
            f"the result's {link.object_id} and {link.id} are not those of {link.table} rows ({missing:,} of "
            "their pairs name none): no record links to one; rename them in the query if they are other ids"
        ]

    def _into(self, dataset_id: str | None) -> None:
        """Map with `dataset_id` as the dataset pushed into (`RowMapper`'s `into_dataset`)."""
        self._into_dataset = dataset_id
        self.mapper = self._mapper(self.mapper.mapping)

    def _already_pushed(self, dataset: Dataset) -> bool:
        self.summary.dataset_id = dataset.id
        with self._checkpoint(dataset, force=False) as checkpoint:
            if checkpoint.complete:
                self._recall(checkpoint)
        if checkpoint.complete:
            # Unread, the file still has its columns (a JSON file's first row's): the same as its push's.
            self._describe(self._mapping(check=False))
        return checkpoint.complete

    def _recall(self, checkpoint: PushCheckpoint) -> None:
        """Say that the complete push `checkpoint` records is what this one would do, and what it did."""
        self.summary.already_complete = True
        self.summary.earlier = checkpoint.outcome

    def _outcome(self) -> PushOutcome:
        summary = self.summary
        return PushOutcome(
            rows_sent=summary.rows_sent + summary.rows_resumed,
            rows_skipped=summary.rows_skipped,
            rows_duplicate=summary.rows_duplicate,
            rejects=summary.rejects,
        )

    def _checkpoint(self, dataset: Dataset, *, force: bool) -> AbstractContextManager[PushCheckpoint]:
        options = self.options
        identity: dict[str, Any]
        if self._digest is None:
            assert self._opened is not None, "only a query's rows are known by a digest"
            # The file as it was opened: `_changed` refuses it if it is not that one any more.
            identity = self._opened
        else:
            identity = {"events": self._digest.hexdigest()}
        # As rows are mapped: a JSON file's checkpoint from before its strings stayed strings is not reused.
        shaping = options.batch_shaping() | {"parse_json": self._parses_json}
        key = checkpoint_key(identity, dataset.id, shaping)
        return locked_checkpoint(options.checkpoint_dir, key, self._record, self.source.name, force=force)

    def _scan(
        self, stack: ExitStack, ahead: LinesAhead | None, rejects: _Rejects | None
    ) -> tuple[IdIndex, EventSpool, int]:
        """Read every row once, before anything is created or sent: validate, learn columns, index ids.

        Returns the index of ids, the spooled events and how many batches they make if no id repeats.
        `ahead` decides the JSON lines for the current mapping, if a helper can (`_lines_ahead`).

        With `on_error="fail"` the first invalid row stops the push; with "skip" invalid rows go
        to the rejects file. JSON rows show their keys only as they are read: when keys first
        seen late change the mapping (`--expected k` for a key of row 5,000, say), the file is
        read again with the complete mapping, so no row is checked against a partial one.
        """
        # Sending as it checks, a dry run leaves no row out (`_send_as_checked`).
        ids = stack.enter_context(IdIndex(refused_replace=self.options.validate_first))
        spool = stack.enter_context(EventSpool())
        with _collector_paused():
            while True:
                with closing(self.progress.task(f"validate {self.source.name}")) as task:
                    indexed = self._indexed(ids, rejects.write if rejects else self._fail, task, ahead)
                    batch_count = 0
                    chunks = ((mapped.numbers, mapped.events) for mapped in indexed)
                    # Spooled as they will be sent: unless ids repeat, the sending pass only reads them back.
                    for batch in batches(chunks, max_rows=self.options.batch_rows):
                        spool.append(batch)
                        batch_count += 1
                if ahead is not None:
                    ahead.close()
                if self.summary.rows_read == self.summary.rows_skipped:
                    break  # every row refused (a JSON file's columns are then unknown): nothing to map
                mapping = self._mapping(check=True)
                # A dry run of a push that sends as it checks keeps the mapping that push would use.
                if mapping == self.mapper.mapping or not self.options.validate_first:
                    break
                self.mapper = self._mapper(mapping)
                ahead = self._lines_ahead(stack)
                self.summary.rows_read = self.summary.rows_skipped = 0
                ids.clear()
                spool.restart()
                if rejects:
                    rejects.restart()
        spool.flush()
        if rejects:
            rejects.flush()
        if self._changed():
            raise self._file_changed(sending=False)
        self._report(self.mapper.mapping, ids)
        return ids, spool, batch_count

    def _lines_ahead(self, stack: ExitStack) -> LinesAhead | None:
        """A helper deciding the lines of a large JSON Lines file for the scan, if one saves time; `stack`
        stops it."""
        source, rules = self.source, self.mapper.event_lines
        lines = source.json_lines if isinstance(source, SourceFile) else None
        # Sending as it checks, the push has the API to wait for, not its check: the core is the sender's.
        if lines is None or rules is None or self._sends_as_checked or not helps(lines):
            return None
        helper = LinesAhead(lines, rules)
        stack.callback(helper.close)
        return helper

    def _indexed(
        self,
        ids: IdIndex,
        on_problem: Callable[[int, RowProblem], None],
        task: ProgressTask,
        ahead: LinesAhead | None,
    ) -> Iterator[MappedChunk]:
        digest = self._digest = None if self._digest is None else hashlib.sha256()
        try:
            for mapped in self._events(on_problem, task, ahead):
                ids.extend(mapped.numbers, mapped.ids)
                ids.refuse(mapped.refused_ids)
                if digest is not None:
                    for number, json in zip(mapped.numbers, mapped.events, strict=True):
                        digest.update(b"%d:%d:" % (number, len(json)))
                        digest.update(json)
                yield mapped
        except _FileChanged:
            raise
        except PushError:
            # A file rewritten as it is read fails where the change cut it (a row, a compressed stream):
            # a failure of neither file.
            if self._changed():
                raise self._file_changed(sending=self._sends_as_checked) from None
            raise

    def _describe(self, mapping: ColumnMapping, left_out: Iterable[int] = ()) -> None:
        """The summary's account of the mapping: the columns left unsent, where ids and origins come from
        (of the rows but those `left_out`, replaced by a later row of their id)."""
        summary = self.summary
        summary.unmapped_columns = [
            column for column in self.source.columns if column not in mapping.columns()
        ]
        summary.id_column = mapping.id
        summary.origin = mapping.origin.object_type if mapping.origin else None
        summary.origin_column = mapping.held_origin
        origins = self.mapper.origins - self.mapper.origins_of(left_out)
        summary.origins_held = origins["held"]
        summary.origins_linked = origins["linked"]

    def _report(self, mapping: ColumnMapping, ids: IdIndex) -> None:
        name = self.source.name
        summary = self.summary
        duplicates = ids.duplicates()
        self._describe(mapping, ids.superseded_rows())
        if not self.options.validate_first:
            mapped = mapping.columns()
            late = [column for column in self._mapping(check=False).columns() if column not in mapped]
            if late:
                # Hashed, an id follows the keys sent: the rows pushed again get other ids than these.
                where = (
                    " into a new dataset (without an id column, the rows sent now would stay beside them)"
                    if mapping.id is None
                    else ""
                )
                summary.warnings.append(
                    printable(
                        f"{name}: keys first seen after its first row were not sent ({', '.join(late)}): "
                        f"with {option('validate_first', False)} a JSON file is mapped by its first row's "
                        f"keys; push it again without it{where} to send them"
                    )
                )
        summary.rows_duplicate = duplicates.rows
        if not summary.rows_read:
            # Only a query's result can be empty (an empty file is refused): nothing is created then.
            summary.warnings.append(f"the {name} has no rows; there is nothing to push")
        taken = fields_whose_column_feeds_another(self.source.columns, mapping)
        if mapping.id is None and summary.rows_read > summary.rows_skipped:
            # An `id` column another flag maps (`--metadata id`) is not the rows' ids.
            why = (
                f'{name}\'s "id" column is mapped to another field'
                if "id" in taken
                else f"{name} has no id column"
            )
            remedy = f"name an id column with {option('id_column')}"
            # `ID`, as a spreadsheet's export names it, was left out with the rows' ids hashed.
            if alike := alike_columns(self.source.columns, mapping).get("id"):
                why += f' ("{alike}" is not one: column names are taken as written)'
                remedy = f"pass {flags_mapping({'id': alike})}"
            summary.warnings.append(
                f"{why}, so each row's id is a hash of its content: a row edited "
                f"since an earlier push is stored as a new row beside the old one ({remedy})"
            )
        for field, flag in taken.items():
            if field != "id":  # said above
                summary.warnings.append(
                    f'{name}\'s "{field}" column is mapped by {flag}, so no row has {field}'
                )
        if duplicates.rows:
            rows = ", ".join(map(str, duplicates.example_rows))
            were = "was" if duplicates.rows == 1 else "were"
            fate = "would not be sent" if self.options.dry_run else f"{were} not sent"
            if not self.options.validate_first:
                fate = "would be sent" if self.options.dry_run else f"{were} sent"
                fate += ", then replaced"
            summary.warnings.append(
                printable(
                    f"{counted(duplicates.rows, 'rows')} of {name} {fate}: a later row has the same id, "
                    f'and the last one wins (e.g. id "{duplicates.example_id}" on rows {rows})'
                )
            )
        if (refused := ids.refused_last()).ids:
            summary.warnings.append(printable(self._refused_after_valid(refused)))
        if (unread := self.mapper.refused_unread) and self.options.validate_first:
            # Said, not mended: a line that does not parse has no id to trust.
            sent = "would be sent" if self.options.dry_run else "was sent"
            unknown = "its id is" if len(unread) == 1 else "their ids are"
            summary.warnings.append(
                f"{counted(len(unread), 'rows')} of {self.source.name} could not be read (in the rejects "
                f"file; e.g. row {unread[0]}), so {unknown} unknown: if one repeats an earlier row's id, "
                f"that earlier row {sent}, where a refused row that can be read leaves out the earlier rows "
                "of its id"
            )

    def _refused_after_valid(self, refused: RefusedLast) -> str:
        """What became of the earlier rows of the ids whose last row the checks refused."""
        dry_run = self.options.dry_run
        if self.options.validate_first:
            fate = "which were left out for them: no row of those ids " + (
                "would be stored" if dry_run else "was stored"
            )
        else:
            fate = (
                "which would be sent: the dataset would hold those rows"
                if dry_run
                else "which were sent: the dataset holds those rows"
            ) + ", not the refused ones"
        return (
            f"{counted(refused.ids, 'rows')} of {self.source.name} that the checks refused (in the rejects "
            f'file) had the same id as earlier rows, {fate} (e.g. id "{refused.example_id}", row '
            f"{refused.example_row}); mend the refused rows and push the {self._source_kind} again"
        )

    def _batches(self, ids: IdIndex, spool: EventSpool) -> Iterator[Batch]:
        """The batches to send: the spooled events in file order, each id only from its last row."""
        if self.summary.rows_duplicate:
            # The rows left out shift every later batch: group what is left afresh.
            yield from batches(_last_of_each_id(spool, ids), max_rows=self.options.batch_rows)
        else:
            yield from spool.batches()
        self._check_unchanged()

    def _send(
        self,
        client: BraintrustClient,
        dataset_id: str,
        checkpoint: PushCheckpoint,
        to_push: Iterator[Batch],
        rejects: _Rejects | None,
        row_ids: dict[int, str] | None = None,
    ) -> None:
        """Send the batches, but for those the checkpoint holds.

        `rejects`, with `on_error="skip"`: where a row the API refuses even alone goes, instead of
        stopping the push. `row_ids`, each row's id by row number while the push checks rows as it
        sends them: their batches may hold rows sharing an id, which `_Sender` keeps in order. Each
        batch's rows are taken out of it as the batch goes.
        """
        summary = self.summary
        # Sending as it checks, the push knows how many rows it sends only once it has sent them.
        valid = summary.rows_read - summary.rows_skipped
        to_send = valid - summary.rows_duplicate if row_ids is None else None
        retries_before = client.stats.retries
        with closing(self.progress.task(f"push {self.source.name}", to_send, unit="batches")) as task:
            try:
                with _Sender(
                    client,
                    dataset_id,
                    self.source.name,
                    self.options,
                    checkpoint,
                    self._on_ack(task, rejects),
                ) as sender:
                    for batch in to_push:
                        summary.batches += 1
                        event_ids = None if row_ids is None else list(map(row_ids.pop, batch.rows))
                        if checkpoint.is_acked(batch.number):
                            refused = _refused_before(checkpoint, batch)
                            self._set_aside(rejects, refused)
                            summary.rows_resumed += len(batch.rows) - len(refused)
                            task.advance(rows=len(batch.rows))
                        else:
                            sender.submit(batch, event_ids)
            except ApiError as error:
                acknowledged = summary.rows_sent + summary.rows_resumed
                if not acknowledged:
                    raise
                are = "is" if acknowledged == 1 else "are"
                rerun = (
                    # The dataset was deleted meanwhile, the rows sent with it: a rerun makes it anew.
                    f"The {counted(acknowledged, 'rows')} acknowledged so far went with the dataset: rerun "
                    "the same command to push the whole file into a new one."
                    if isinstance(error, NotFoundError)
                    else f"The {counted(acknowledged, 'rows')} acknowledged so far {are} checkpointed: rerun "
                    "the same command to send the rest."
                )
                said = str(error)
                # A sentence of its own: after the server's question too ("is the API URL ...?").
                said = said if said.endswith(("?", "!")) else f"{said.rstrip('.')}."
                raise type(error)(f"{said} {rerun}", status=error.status) from error
            finally:
                summary.retries = client.stats.retries - retries_before

    def _check_unchanged(self) -> None:
        """Refuse to finish a push of a file rewritten since it was opened: its rows may not be the ones sent.

        Checked once the last batch is handed to the senders, not per batch: a stat call costs
        little, but the GIL it gives up can take milliseconds to win back from the sender threads.
        The push then fails before its checkpoint is marked complete, and a rerun sends the new file
        afresh.
        A query's result is kept apart from the tables, so no sync changes it meanwhile.
        """
        if self._changed():
            raise self._file_changed(sending=True)

    @property
    def _sends_as_checked(self) -> bool:
        return not (self.options.validate_first or self.options.dry_run)

    def _file_changed(self, *, sending: bool) -> _FileChanged:
        """The error of a file rewritten while the push read it, before any batch went or once some
        may have (`sending`)."""
        if not sending:
            return _FileChanged(
                f"{self.source.name} changed while it was read; nothing was sent: push it again"
            )
        return _FileChanged(
            f"{self.source.name} changed while it was pushed; push it again "
            "(rows already sent are replaced by id, not duplicated)"
        )

    def _changed(self) -> bool:
        """Whether the file is not the one opened: rewritten, replaced, grown, cut or removed."""
        if self.options.file is None:
            return False
        try:
            return file_identity(self.options.file) != self._opened
        except OSError:  # removed: all rows sent, the push failed on "No such file or directory"
            return True

    def _on_ack(self, task: ProgressTask, rejects: _Rejects | None) -> Callable[[Batch, _Inserted], None]:
        def on_ack(batch: Batch, inserted: _Inserted) -> None:
            self._set_aside(rejects, inserted.refused)
            self.summary.rows_sent += len(batch.rows) - len(inserted.refused)
            self.summary.batches_sent += 1
            self.summary.splits += inserted.splits
            task.advance(rows=len(batch.rows), pages=1)

        return on_ack

    def _set_aside(self, rejects: _Rejects | None, refused: Iterable[_Refused]) -> None:
        """Write the rows the API refused to the rejects file, and remember their ids."""
        for row in refused:
            assert rejects is not None, "the API's refusals are skipped only into a rejects file"
            # A line sent as written keeps its newline in the event: not in the record.
            rejects.write(row.row, RowProblem(None, row.reason, row.event.decode().rstrip()))
            if (event_id := _event_id(row.event)) is not None:
                self._refused_rows[event_id] = row.row

    def _events(
        self, on_problem: Callable[[int, RowProblem], None], task: ProgressTask, ahead: LinesAhead | None
    ) -> Iterator[MappedChunk]:
        """Yield each chunk's valid rows as events, handing problems to `on_problem`.

        By the chunk, not by the row: what follows (the id index, a query's digest) costs less a chunk at a
        time.
        """
        for chunk in self.source.chunks():
            self.summary.rows_read += len(chunk.rows)
            mapped = self.mapper.chunk(chunk, _decided_ahead(ahead, chunk))
            for number, problem in mapped.problems:
                on_problem(number, problem)
            yield mapped
            task.advance(rows=len(chunk.rows))

    def _fail(self, number: int, problem: RowProblem) -> None:
        raise PushError(problem.describe(self.source.name, number))

    def _rejects(self, stack: ExitStack, *, says_what_was_sent: bool = True) -> _Rejects | None:
        """The rejects file, if any; `says_what_was_sent`: the message of a failed write ends saying it."""
        if self.options.rejects is None:
            return None
        try:
            handle = self.options.rejects.open("wb")
        except OSError as error:
            raise ConfigError(f"{option('rejects')} {self.options.rejects}: {error.strerror}") from None
        rejects = _Rejects(handle, self.summary, self._source_kind, says_what_was_sent=says_what_was_sent)
        stack.callback(rejects.close)
        return rejects

    def _mapping(self, *, check: bool) -> ColumnMapping:
        options = self.options
        return resolve_mapping(
            self.source.name,
            self.source.columns,
            id_column=options.id_column,
            input_columns=options.input,
            expected_columns=options.expected,
            metadata_columns=options.metadata,
            tags_column=options.tags,
            origin=self.origin,
            origin_column=None if self.query is None else ORIGIN_COLUMN,
            check=check,
            holder=self._holder(),
            csv_delimiter=self.source.csv_delimiter if isinstance(self.source, SourceFile) else None,
        )

    def _holder(self) -> str:
        """What has the columns the mapping is checked against, for its messages."""
        if self.query is not None:
            return "the result"
        return "the file" if self.options.validate_first or self.source.columns_complete else "the first row"

    def _mapper(self, mapping: ColumnMapping) -> RowMapper:
        options = self.options
        return RowMapper(
            mapping,
            project=options.project,
            dataset=options.dataset,
            parse_json=self._parses_json,
            json_columns=self.source.json_columns,
            known_columns=self.source.columns,
            into_dataset=self._into_dataset,
            stored_ids=self.query is not None,
        )

    @property
    def _parses_json(self) -> bool:
        """`--parse-json`, but for a JSON file, whose strings are strings: parsed, `sql --format json`'s
        export of a dataset came back with its JSON-looking text made objects, and "[1] Smith" was refused
        as invalid JSON."""
        typed = isinstance(self.source, SourceFile) and self.source.typed_as_json
        return self.options.parse_json and not typed

    @property
    def _source_kind(self) -> str:
        """What the rows come from, as messages name it."""
        return "query" if self.query is not None else "file"

    def _finish(self) -> PushSummary:
        # Rows the API refused are no records: nor are their origins.
        refused = self.mapper.origins_of(sorted(self._refused_rows.values()))
        self.summary.origins_held -= refused["held"]
        self.summary.origins_linked -= refused["linked"]
        self.summary.seconds = round(time.monotonic() - self._started, 3)
        return self.summary


# How each line of a rejects file starts (`_Rejects.write`).
_REJECTS_START = b'{"file":'
# How each line of a dry run's rejects file ends.
_DRY_RUN_END = b',"dry_run":true}\n'


class _Rejects:
    """The rejects file: one JSON line per invalid row, with where and why (`file` is null for a query)."""

    def __init__(
        self, handle: IO[bytes], summary: PushSummary, source: str, *, says_what_was_sent: bool
    ) -> None:
        self._handle = handle
        self._file = summary.file
        self._source = source
        self._summary = summary
        self._says_what_was_sent = says_what_was_sent
        summary.rejects = str(handle.name)

    def write(self, number: int, problem: RowProblem) -> None:
        self._summary.rows_skipped += 1
        record = {
            "file": self._file,
            "row": number,
            "column": problem.column,
            "reason": problem.reason,
            "values": problem.values,
        }
        if self._summary.dry_run:  # last: a later dry run may replace it (`_holds_rows_not_sent`)
            record["dry_run"] = True
        with self._writing():
            self._handle.write(_rejects_line(record) + b"\n")

    def flush(self) -> None:
        """Write out what the buffer holds: a full disk stops the push before it sends anything (or, for
        the rows the API refused, before it is complete)."""
        with self._writing():
            self._handle.flush()

    def close(self) -> None:
        # The scan flushed the file (`flush`): closing fails only after a write did, whose error is raised.
        with suppress(OSError):
            self._handle.close()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except OSError as error:
            # A failed write names no file: a full disk says only "No space left on device". Rows the API
            # refused are written while batches are sent.
            sent = f" ({_sent_so_far(self._summary, self._source)})" if self._says_what_was_sent else ""
            raise PushError(f"{option('rejects')} {self._handle.name}: {os_reason(error)}{sent}") from None

    def restart(self) -> None:
        """Empty the file, for a scan that starts over."""
        self._handle.seek(0)
        self._handle.truncate()


def _rejects_line(record: dict[str, Any]) -> bytes:
    """A rejects file's record as one line of JSON, however deep the row's values nest.

    A row rejected because it has no JSON form must still reach the file: such a value is written as text
    (`_as_read`).
    """
    try:
        return orjson.dumps(record, default=_as_read)
    except TypeError as error:
        if "Integer" in str(error):  # beyond 64 bits: written as its digits, the row's other values too
            with suppress(TypeError, RecursionError):
                exact = big_ints_replaced(record, lambda integer: orjson.Fragment(str(integer)))
                return orjson.dumps(exact, default=_as_read)
    # Deeper than orjson writes (255 levels): the standard library goes further.
    try:
        return json.dumps(record, default=str, ensure_ascii=False, separators=(",", ":")).encode()
    except RecursionError:
        unwritten = {**record, "values": None, "reason": f"{record['reason']} (too deep to copy here)"}
        return orjson.dumps(unwritten, default=str)


def _as_read(value: Any) -> Any:
    """A value orjson cannot write, for the rejects file: a number a JSON file wrote with a fraction (read as
    a `Decimal`) as that number, whose mended row would otherwise send text; anything else as text."""
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(str(value))
    return str(value)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector, e.g. while the scan parses rows.

    Parsed rows are plain dicts and lists, with no cycles to find, but each chunk's thousands of new
    containers trigger collections that walk them all again: about a seventh of the scan's CPU.
    Reference counting still frees every row. The collector is back once the scan is over.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def _older_objects_frozen() -> Iterator[None]:
    """Keep the objects alive now out of Python's cycle collections until the block ends (`gc.freeze`).

    For a push that sends as it checks, whose collector cannot be paused as the scan's is: sending
    leaves reference cycles holding request bodies (an httpx response and its stream), which only
    the collector frees; paused, a 185 MB file's push peaked at 260 MB rather than 90 MB. But each
    full collection walks every object alive, the modules' among them: 0.3 s of that push's CPU,
    0.01 s with them frozen.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _decided_ahead(ahead: LinesAhead | None, chunk: RowChunk) -> list[str | None] | None:
    """Which JSON lines of the chunk are their events, if the helper decided it; if not, the scan decides,
    and the helper skips the chunk."""
    if ahead is None or chunk.texts is None:
        return None
    decided = ahead.ids(chunk.first_row, chunk.texts)
    if decided is None:
        ahead.decided_here(chunk.first_row)
    return decided


def _remembering_ids(
    indexed: Iterator[MappedChunk], row_ids: dict[int, str]
) -> Iterator[tuple[list[int], list[bytes]]]:
    """Each chunk's rows and events, for `batches`, putting each row's id in `row_ids` (`PushRun._send`)."""
    for mapped in indexed:
        row_ids.update(zip(mapped.numbers, mapped.ids, strict=True))
        yield mapped.numbers, mapped.events


def _sent_so_far(summary: PushSummary, source: str, *, refused: bool = False) -> str:
    """What a push of a `source` ("file", "query") had sent when it stopped; `refused`: it stopped at a row
    the API refused alone, after halving its batch."""
    sent = summary.rows_sent + summary.rows_resumed
    if sent:
        were, are, them = ("was", "is", "it") if sent == 1 else ("were", "are", "them")
        # The halves the API took were stored, but only a whole batch is acknowledged.
        beside = ", and rows of that row's batch may have reached the dataset too" if refused else ""
        return (
            f"{counted(sent, 'rows')} {were} sent and {are} checkpointed{beside}: the same {source} pushed "
            f"again resumes after {them}, and the {source} mended replaces {them} by id rather than "
            f"duplicating {them}"
        )
    if summary.batches:
        # A batch goes as several requests when it is split (a 413, a 400) or holds an id twice: some
        # may have landed before the one that failed, and only a whole batch is acknowledged.
        return (
            "no batch was acknowledged whole, but rows of those sent may have reached the dataset: the "
            f"{source} mended and pushed again replaces them by id rather than duplicating them"
        )
    return "nothing was sent"


def _last_of_each_id(spool: EventSpool, ids: IdIndex) -> Iterator[tuple[list[int], list[bytes]]]:
    """The spooled batches' rows and events in file order, but for the rows a later row with the same id
    supersedes."""
    superseded = ids.superseded_rows()
    next_superseded = next(superseded, None)
    for batch in spool.batches():
        rows: list[int] = []
        events: list[bytes] = []
        for number, event in zip(batch.rows, batch.events, strict=True):
            if number == next_superseded:
                next_superseded = next(superseded, None)
            else:
                rows.append(number)
                events.append(event)
        yield rows, events


# The API refusing a request's content: `_Sender` halves the batch to find the row it refuses.
_BAD_REQUEST = 400
# Rows refused even sent alone, with none stored, past which a push skipping refused rows stops: an API (or
# a proxy before it) answering 400 to every insert had each row sent alone, two requests a row (5,000
# rows took 15 s; a million would have taken about an hour) before the push said none was stored.
EVERY_ROW_REFUSED_AFTER = 100


@dataclass(frozen=True)
class _Refused:
    """A row the API refused even when sent alone, left out (`on_error="skip"`).

    Args:
        row: its row number.
        event: the event as sent.
        reason: what the API said.
    """

    row: int
    event: bytes
    reason: str


@dataclass(frozen=True)
class _Inserted:
    """What inserting a batch took: splits (on 413 and 400) and the rows the API refused, left out."""

    splits: int = 0
    refused: tuple[_Refused, ...] = ()

    def __add__(self, other: _Inserted) -> _Inserted:
        return _Inserted(self.splits + other.splits, self.refused + other.refused)


class _Sender:
    """Sends batches with at most `concurrency` in flight, checkpointing each one on its acknowledgement.

    Only the calling thread touches the checkpoint and the summary; worker
    threads only send (httpx.Client is thread-safe). Leaving the block waits
    for every batch in flight; if the block failed, batches acknowledged
    meanwhile are still checkpointed, so a rerun resends only the rest.
    """

    def __init__(
        self,
        client: BraintrustClient,
        dataset_id: str,
        source_name: str,
        options: PushOptions,
        checkpoint: PushCheckpoint,
        on_ack: Callable[[Batch, _Inserted], None],
    ) -> None:
        self._client = client
        self._dataset_id = dataset_id
        self._source_name = source_name
        self._concurrency = options.concurrency
        self._checkpoint = checkpoint
        self._on_ack = on_ack
        # A row the API refuses is then a bad row like any other: `on_ack` writes it to the rejects file.
        self._skip_refused = options.on_error is OnError.SKIP
        self._pool = ThreadPoolExecutor(max_workers=options.concurrency, thread_name_prefix="bt-sync-push")
        self._in_flight: dict[Future[_Inserted], Batch] = {}
        self._ids_in_flight: dict[Future[_Inserted], frozenset[str]] = {}
        # Counted by the sending threads: see `EVERY_ROW_REFUSED_AFTER`.
        self._counting = threading.Lock()
        self._refused_alone = 0
        self._stored_any = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Interrupted (Ctrl-C, or a scheduler's SIGTERM, which it follows with SIGKILL 10-30 s later):
        # the batches in flight are waited for a few seconds at most, then left to land or not.
        interrupted = exc_type is KeyboardInterrupt
        timeout = INTERRUPTED_WAIT_S if interrupted else None
        try:
            self._acknowledge(wait(self._in_flight, timeout=timeout).done, raise_failure=exc is None)
        finally:
            self._pool.shutdown(wait=not interrupted, cancel_futures=True)

    def submit(self, batch: Batch, event_ids: list[str] | None = None) -> None:
        """Send `batch`, first waiting for a slot if `concurrency` batches are in flight.

        `event_ids`, its rows' ids, when rows may share ids (a push sending as it checks): so that the
        API keeps the last of rows sharing an id, a batch holding an id of a batch in flight waits for
        every batch in flight, and one holding an id twice is sent in parts, one after the other.
        """
        ids = frozenset(event_ids or ())
        if not all(map(ids.isdisjoint, self._ids_in_flight.values())):
            self._acknowledge(wait(self._in_flight).done, raise_failure=True)
        while len(self._in_flight) >= self._concurrency:
            self._acknowledge(wait(self._in_flight, return_when=FIRST_COMPLETED).done, raise_failure=True)
        parts = [batch]
        if event_ids is not None and len(ids) < len(event_ids):
            parts = _parts_in_order(batch, event_ids)
        future = self._pool.submit(self._insert_parts, parts)
        self._in_flight[future] = batch
        self._ids_in_flight[future] = ids

    def _acknowledge(self, done: set[Future[_Inserted]], *, raise_failure: bool) -> None:
        failure: BaseException | None = None
        for future in sorted(done, key=lambda f: self._in_flight[f].number):
            batch = self._in_flight.pop(future)
            del self._ids_in_flight[future]
            error = future.exception()
            if error is None:
                inserted = future.result()
                # Ctrl-C waits for both: the message of an interrupted push counts what was checkpointed.
                with interrupts.deferred():
                    # Before the rejects file is written: a push killed in between writes them on its rerun.
                    self._checkpoint.ack(
                        batch.number, {refused.row: refused.reason for refused in inserted.refused}
                    )
                    self._on_ack(batch, inserted)
            else:
                failure = failure or error
        if failure is not None and raise_failure:
            raise failure

    def _insert_parts(self, parts: list[Batch]) -> _Inserted:
        """Insert a batch's parts one after the other."""
        return sum(map(self._insert, parts), _Inserted())

    def _insert(self, batch: Batch) -> _Inserted:
        """Insert one batch, halving it on 413 or 400 until the row the API refuses is found.

        A 400 is the API refusing what the checks let through (a number beyond a double's range, in a
        line sent as written, say): halving finds the row, so the error names it, or, when refused
        rows are skipped, the rejects file holds it and the rest is sent.
        """
        try:
            response = self._client.insert_events(ObjectType.DATASET, self._dataset_id, batch.body)
        except (PayloadTooLarge, RequestError) as error:
            too_large = isinstance(error, PayloadTooLarge)
            if not too_large and error.status != _BAD_REQUEST:
                raise
            if len(batch.rows) == 1:
                refused = "the API refused the row " + (
                    "as too large (HTTP 413) even when sent alone"
                    if too_large
                    else f"even when sent alone ({error})"
                )
                if self._skip_refused:
                    self._count_refused_alone(refused)
                    return _Inserted(refused=(_Refused(batch.rows[0], batch.events[0], refused),))
                mend = "" if too_large else "; mend or remove it"
                raise _RowRefused(f"{self._source_name} row {batch.rows[0]}: {refused}{mend}") from None
            first, second = batch.halves()
            return _Inserted(splits=1) + self._insert(first) + self._insert(second)
        if len(response.row_ids) != len(batch.rows):
            raise ServerUnavailable(
                f"insert of batch {batch.number} returned {len(response.row_ids)} row ids "
                f"for {len(batch.rows)} rows (the API, or a proxy before it, answered for other rows): the "
                "batch is not checkpointed, and a rerun sends it again"
            )
        # Aligned one to one with the events sent: other ids are an answer to another request (a proxy's
        # mix-up), and the batch's rows would be checkpointed as sent without being stored. The first and
        # last only: parsing every event again cost 3-7 ms a batch.
        for at, event in zip((0, -1), batch.first_and_last, strict=True):
            sent, stored = _event_id(event), response.row_ids[at]
            if sent is not None and stored != sent:
                raise ServerUnavailable(
                    f"insert of batch {batch.number} returned the row id {stored!r} for row "
                    f"{batch.rows[at]}, sent with the id {sent!r}"
                )
        self._stored_any = True
        return _Inserted()

    def _count_refused_alone(self, refused: str) -> None:
        """Count a row refused even sent alone.

        Raises:
            PushError: `EVERY_ROW_REFUSED_AFTER` rows were, and none was stored.
        """
        with self._counting:
            self._refused_alone += 1
            every = not self._stored_any and self._refused_alone >= EVERY_ROW_REFUSED_AFTER
        if every:
            raise PushError(
                f"{self._source_name}: stopped after {EVERY_ROW_REFUSED_AFTER} rows, each sent alone, were "
                f"refused, and none was stored (the last: {refused}): the API refuses every row, not a few "
                "bad ones; check what it says, then push again"
            )


class _RowRefused(PushError):
    """The API refused a row even sent alone, and refused rows are not skipped."""


class _FileChanged(PushError):
    """The file was rewritten while the push read it: its message needs nothing of what was sent."""


def _refused_before(checkpoint: PushCheckpoint, batch: Batch) -> list[_Refused]:
    """The rows of an acknowledged batch that the API refused when an earlier run sent it."""
    reasons = checkpoint.refused(batch.rows)
    if not reasons:
        return []
    return [
        _Refused(row, event, reasons[row])
        for row, event in zip(batch.rows, batch.events, strict=True)
        if row in reasons
    ]


def _event_id(event: bytes) -> str | None:
    """The id of an event the API refused; None if even the standard library's parser cannot read it.

    Not orjson's: what the API refuses is often what it refuses too (a number beyond a double's range).
    """
    try:
        event_id = json.loads(event).get("id")
    except (ValueError, RecursionError):
        return None
    return event_id if isinstance(event_id, str) else None


def _parts_in_order(batch: Batch, event_ids: list[str]) -> list[Batch]:
    """`batch` cut before each row whose id an earlier row of its part holds: no request holds an id twice."""
    parts: list[Batch] = []
    events = batch.events
    start = 0
    seen: set[str] = set()
    for index, event_id in enumerate(event_ids):
        if event_id in seen:
            parts.append(Batch.of(batch.number, batch.rows[start:index], events[start:index]))
            start, seen = index, set()
        seen.add(event_id)
    parts.append(Batch.of(batch.number, batch.rows[start:], events[start:]))
    return parts


def _find_dataset(client: BraintrustClient, options: PushOptions) -> Dataset | None:
    """The dataset to push into, if it exists.

    Raises:
        ConfigError: a project or dataset the push would create is named like a slip: by the id of one
            that exists, or with a space at an end.
    """
    project = _project_named(client, options.project)
    if project is None:
        _check_new_name("project", options.project, client.list_projects())
        _check_new_name("dataset", options.dataset, ())
        return None
    dataset = next(
        (d for d in client.list_datasets(project.id, name=options.dataset) if d.name == options.dataset), None
    )
    if dataset is None:
        _check_new_name("dataset", options.dataset, client.list_datasets(project.id))
    return dataset


def _project_named(client: BraintrustClient, name: str) -> Project | None:
    """The project called exactly `name` (the API's filter may match others too), if one is."""
    return next((p for p in client.list_projects(name=name) if p.name == name), None)


def _check_new_name(kind: str, name: str, existing: Iterable[Project | Dataset]) -> None:
    """Refuse to create a `kind` called `name` when the name is one of the `existing` objects' ids (as
    `sync --project` takes), reads as one of their names, or has a space at an end, an invisible or a
    control character (a copy and paste's): each creates an object beside the one meant, silently."""
    flag = option(kind)
    if (spaced := _spaced_name(kind, name)) is not None:
        raise ConfigError(printable(f"{spaced}, and no {kind} is named so; give the name without it"))
    for found in existing:
        if found.id == name:
            raise ConfigError(
                printable(
                    f"{flag} takes a name, and {name} is the id of the {kind} {found.name!r}: "
                    f"pass {flag} {shlex.quote(found.name)}"
                )
            )
        # `café` typed, `café` listed: the same letters, the accent a character of its own in one. Or the
        # name as messages show it, its invisible characters escaped (`p1\u200b`), copied from one.
        if read_as(found.name) == read_as(name) or printable(found.name) == name:
            raise ConfigError(
                printable(
                    f"{flag} {name!r} reads as the name of the {kind} {found.name!r}, and differs from it "
                    "in characters that show alike or not at all, or in how its accents are encoded: pass "
                    "the name as the API has it (copied from `bt-sync projects --json`, or in the shell's "
                    "$'…' with its \\u escapes), or choose another"
                )
            )


def _spaced_name(kind: str, name: str) -> str | None:
    """What to say of a `kind`'s name with a space at an end, an invisible or a control character (a copy
    and paste's), None of another name."""
    if name != name.strip():
        return f"{option(kind)} {name!r} begins or ends with a space"
    if holds_invisible(name):
        return f"{option(kind)} {name!r} holds an invisible character"
    # A line break or a tab pasted with the name (`$'a\nb'`): as a second object beside the one meant.
    if any(unicodedata.category(character) == "Cc" for character in name):
        return f"{option(kind)} {name!r} holds a control character"
    return None


def _create_dataset(client: BraintrustClient, options: PushOptions) -> tuple[Dataset, list[str]]:
    """Create the dataset, and its project if missing; returns it and what was created (`project`,
    `dataset`). Each creation returns the existing object if another push won the race."""
    # Asked again: the check of every row, since `_find_dataset`, may have taken minutes.
    existing = _project_named(client, options.project)
    project = existing or client.create_project(options.project)
    created = ["dataset"] if existing else ["project", "dataset"]
    return client.create_dataset(project.id, options.dataset), created
