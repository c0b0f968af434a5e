"""What a push takes and reports: the options of `bt-sync push` (and of the Dagster push job) and its summary.

`PushOptions` is the one declaration of the push options: the command line's flags
(`connector.cli.push`) and the Dagster job's run config (`pipelines.push`) are generated
from its fields, their descriptions and defaults. Kept apart from the push itself, and
built lazily (`defer_build`), so the command line can read the fields without loading
the machinery that reads files and sends batches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from connector.config import refuse_directory_named
from connector.defaults import DEFAULT_BATCH_ROWS, DEFAULT_CONCURRENCY, DEFAULT_STATE_DIR
from connector.display import counted, printable, shell_text_as_utf8
from connector.push.choices import COMPRESSION_SUFFIXES, FileFormat, OnError
from connector.push.spelling import option

# The gateway in front of the API refuses bodies over 6 MiB; keep headroom for what proxies add.
MAX_REQUEST_BYTES = 5_632 * 1024
# The fields naming what is pushed; exactly one is given.
SOURCE_FIELDS = ("file", "sql", "sql_file")
# What the options that only a file has say when a query is pushed.
_FILE_ONLY = "applies to a {file}, not to a query's result"


def _mapped_columns(field: str) -> str:
    return f"Column for `{field}`, or several, which make an object of it (default: a column named {field})."


class PushOptions(BaseModel):
    """What to push where, and how: the options of `bt-sync push`.

    Each field's description is its help on the command line and in Dagster's run config;
    the source is a file, or a read-only query over the synced tables (`sql` or `sql_file`).
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    file: Path | None = Field(
        default=None,
        description=(
            "CSV, Parquet, JSONL or JSON file; CSV, JSONL and JSON also gzip, bz2, zstd or lz4 compressed."
        ),
    )
    sql: str | None = Field(
        default=None,
        description="Push the result of this read-only query over the synced tables instead of a file.",
    )
    sql_file: Path | None = Field(
        default=None, validate_default=True, description="Push the result of the query in this file."
    )
    project: str = Field(description="Project name; created if missing.")
    dataset: str = Field(description="Dataset name; created if missing.")
    format: FileFormat | None = Field(
        default=None, description="File format (default: Parquet by content, the others by extension)."
    )
    delimiter: str | None = Field(
        default=None,
        description="What separates a CSV file's values: one ASCII character, \\t for a tab (default: a tab "
        "for .tsv files, else a comma).",
    )
    id_column: str | None = Field(
        default=None, description="Column of row ids (default: `id` if present, else a hash of the row)."
    )
    input: tuple[str, ...] = Field(default=(), description=_mapped_columns("input"))
    expected: tuple[str, ...] = Field(default=(), description=_mapped_columns("expected"))
    metadata: tuple[str, ...] = Field(default=(), description=_mapped_columns("metadata"))
    tags: str | None = Field(
        default=None,
        description="Column of tags: a list, a JSON array or comma-separated text "
        "(default: a column named tags).",
    )
    parse_json: bool = Field(
        default=True,
        description="Parse text that looks like a JSON object or array (a JSON file's strings stay strings).",
    )
    batch_rows: int = Field(
        default=DEFAULT_BATCH_ROWS, ge=1, le=10_000, description="Most rows per insert request."
    )
    concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1, le=32, description="Most requests in flight.")
    on_error: OnError = Field(
        default=OnError.FAIL,
        description="fail: stop at the first invalid row (by default before sending any); "
        "skip: send the valid rows.",
    )
    rejects: Path | None = Field(
        default=None,
        validate_default=True,
        description="JSONL file receiving the rows skipped as invalid, and why (required to skip them).",
    )
    validate_first: bool = Field(
        default=True,
        description="Check every row of the file before sending any; if not, each batch is sent once its "
        "rows are checked, and a bad row stops the push after the rows before it were sent.",
    )
    dry_run: bool = Field(default=False, description="Validate and count; create and send nothing.")
    force: bool = Field(
        default=False, description="Ignore the checkpoint of an earlier push; send it all again."
    )
    state_dir: Path | None = Field(
        default=None,
        description="Where push checkpoints are kept, in push/ "
        f"(default: BT_SYNC_STATE_DIR, else ./{DEFAULT_STATE_DIR}).",
    )

    @field_validator("project", "dataset")
    @classmethod
    def _named(cls, name: str) -> str:
        # A name of spaces only would create a project or dataset no one can tell from another.
        if not name.strip():
            raise PydanticCustomError("blank", "names nothing: give a name that is not blank")
        name = shell_text_as_utf8(name)
        try:
            name.encode()
        except UnicodeEncodeError:  # bytes the shell passed that are not UTF-8: the API takes only text
            raise PydanticCustomError("utf8", "is not UTF-8 text") from None
        return name

    @field_validator("sql")
    @classmethod
    def _query_as_utf8(cls, sql: str | None) -> str | None:
        # Given in an ASCII locale, its bytes beyond ASCII came escaped: the query ran (its text read as
        # UTF-8 there), then its checkpoint could not be written, a traceback.
        return None if sql is None else shell_text_as_utf8(sql)

    @field_validator("id_column", "input", "expected", "metadata", "tags")
    @classmethod
    def _columns_named(cls, columns: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
        # Columns without a name (a spreadsheet export's trailing separators) may repeat, so none of them
        # can be told from the others: they are never sent, and no flag names one.
        names = (columns,) if isinstance(columns, str) else columns or ()
        if any(not name for name in names):
            raise PydanticCustomError("unnamed", "names a column without a name: give its header a name")
        # In an ASCII locale, `--input é` came escaped: "no column" named a column the file has.
        if isinstance(columns, str):
            return shell_text_as_utf8(columns)
        return None if columns is None else tuple(map(shell_text_as_utf8, columns))

    @model_validator(mode="after")
    def _one_source(self) -> PushOptions:
        # Of the whole model, not of one field: no flag is at fault alone.
        # An empty `--sql ""` is given too: the query then says it is empty.
        given = [option(name) for name in SOURCE_FIELDS if getattr(self, name) is not None]
        if not given:
            raise PydanticCustomError(
                "source",
                "give a {file} to push, or a query in {sql} or {sql_file}",
                {name: option(name) for name in SOURCE_FIELDS},
            )
        if len(given) > 1:
            raise PydanticCustomError(
                "source",
                "give one of {file}, {sql} and {sql_file}, not {given}",
                {**{name: option(name) for name in SOURCE_FIELDS}, "given": " and ".join(given)},
            )
        return self

    @field_validator("format")
    @classmethod
    def _format_of_a_file(cls, file_format: FileFormat | None, info: ValidationInfo) -> FileFormat | None:
        if file_format is not None and info.data.get("file") is None:
            raise PydanticCustomError("format", _FILE_ONLY, {"file": option("file")})
        return file_format

    @field_validator("delimiter")
    @classmethod
    def _one_separator(cls, delimiter: str | None, info: ValidationInfo) -> str | None:
        if delimiter is None:
            return None
        if info.data.get("file") is None:
            raise PydanticCustomError("delimiter", _FILE_ONLY, {"file": option("file")})
        if (file_format := info.data.get("format")) not in (None, FileFormat.CSV):
            # Not the file's doing: it was said to be of the format given, whatever it holds.
            raise PydanticCustomError(
                "delimiter", "applies to CSV, not to {given}", {"given": option("format", file_format.value)}
            )
        separator = "\t" if delimiter == "\\t" else delimiter
        # A quote or a line break would make every value's boundaries ambiguous; the CSV reader splits
        # bytes, so a character of several bytes in UTF-8 cannot be its delimiter.
        if len(separator) != 1 or separator in '"\r\n' or not separator.isascii():
            raise PydanticCustomError(
                "delimiter",
                "must be one ASCII character other than a quote or a line break (\\t for a tab), not {given}",
                # As typed: a repr doubled the backslash of `'\n'`.
                {"given": f"'{printable(delimiter)}'"},
            )
        return separator

    @field_validator("validate_first")
    @classmethod
    def _sent_as_checked_from_a_file(cls, validate_first: bool, info: ValidationInfo) -> bool:
        # A query's checkpoint is named by a digest of all its events: known only once every row is.
        if not validate_first and info.data.get("file") is None:
            raise PydanticCustomError("validate_first", _FILE_ONLY, {"file": option("file")})
        return validate_first

    @field_validator("rejects", "sql_file", mode="before")
    @classmethod
    def _file_names_no_directory(cls, value: object, info: ValidationInfo) -> object:
        # A run config's `rejects: r/` was written as the file `r` (the command line's are checked as parsed).
        if isinstance(value, str):
            if not value.strip():
                raise PydanticCustomError("empty_path", "is empty: give a file's path")
            try:
                refuse_directory_named(value)
            except ValueError as error:
                raise PydanticCustomError("directory_named", "{reason}", {"reason": str(error)}) from None
        return value

    @field_validator("rejects")
    @classmethod
    def _rejects_go_with_skip(cls, rejects: Path | None, info: ValidationInfo) -> Path | None:
        skip = info.data.get("on_error") is OnError.SKIP
        names = {"skip": option("on_error", OnError.SKIP.value), "rejects": option("rejects")}
        if skip and rejects is None:
            raise PydanticCustomError(
                "rejects", "{skip} needs {rejects} (a file), so skipped rows are kept", names
            )
        if not skip and rejects is not None:
            raise PydanticCustomError("rejects", "{rejects} only applies with {skip}", names)
        if rejects == Path("-"):  # made a file named `-`, as other tools write to standard output
            raise PydanticCustomError("rejects", "- names no file: give the rejects file's path", names)
        # Written as JSON Lines, uncompressed, whatever its name: one named otherwise (`rejects.jsonl.gz`,
        # `rejects.csv`) failed its readers, `bt-sync push` of it mended too.
        other_formats = [f".{name}" for name in FileFormat if name is not FileFormat.JSONL]
        if rejects is not None and rejects.suffix.lower() in (*COMPRESSION_SUFFIXES, *other_formats):
            raise PydanticCustomError(
                "rejects",
                "written as JSON Lines, uncompressed: give it a name ending in .jsonl, not {suffix}",
                {**names, "suffix": rejects.suffix},
            )
        return rejects

    @property
    def checkpoint_dir(self) -> Path:
        """Where this push's checkpoints are kept: under `state_dir`, else the sync's scratch setting."""
        if self.state_dir is not None:
            return self.state_dir / "push"
        from connector.config import WarehouseSettings

        return WarehouseSettings().state_dir / "push"

    @property
    def input_file(self) -> Path | None:
        """The file the push reads from this machine: the data file or the query's file, if any."""
        return self.file or self.sql_file

    def batch_shaping(self) -> dict[str, Any]:
        """The options that decide which events land in which batch (part of the checkpoint key)."""
        # `rows` names how rows become batches: checkpoints written before duplicate ids were left
        # out (and before late JSON keys were mapped) numbered other rows, so they must not be reused.
        # A file's default separator is not named: checkpoints from before `delimiter` stay valid.
        default = {"delimiter"} if self.delimiter is None else set()
        rows = "valid, last of each id"
        if self.on_error is OnError.SKIP:
            rows += ", a refused row's too"  # which leaves out the earlier rows of its id
        return self.model_dump(
            mode="json",
            exclude={*SOURCE_FIELDS, "concurrency", "rejects", "dry_run", "force", "state_dir", *default},
        ) | {"max_request_bytes": MAX_REQUEST_BYTES, "rows": rows}


class PushOutcome(BaseModel):
    """What a complete push landed, kept in its checkpoint for a rerun that sends nothing to report.

    Args:
        rows_sent: rows the API acknowledged, over every run of the push.
        rows_skipped: invalid rows written to the rejects file.
        rows_duplicate: valid rows a later row with the same id replaced.
        rejects: the rejects file, if any row was rejected.
    """

    rows_sent: int
    rows_skipped: int
    rows_duplicate: int
    rejects: str | None


class PushSummary(BaseModel):
    """What a push did (or, with `dry_run`, would do).

    Args:
        file: the input file; None for a query.
        query: the query whose result was pushed; None for a file.
        project: the project name.
        dataset: the dataset name.
        dataset_id: the dataset's id; None in a dry run of a dataset that does not exist yet.
        created: what this push created, `project` and `dataset` or `dataset` alone; empty when the
            dataset existed (or in a dry run).
        rows_read: rows in the file, or in the query's result.
        rows_sent: rows acknowledged by the API in this run.
        rows_resumed: valid rows in batches an earlier run already had acknowledged.
        rows_skipped: invalid rows written to the rejects file.
        rows_duplicate: valid rows a later row with the same id replaces: not sent, or with
            `validate_first` off, sent before it.
        batches: batches the rows make.
        batches_sent: batches acknowledged in this run.
        retries: requests the client retried (429, 5xx, dropped connections).
        splits: batches split in two after a 413.
        seconds: wall time.
        unmapped_columns: columns no event field reads.
        id_column: the column ids come from; None when they are hashes of each row's content.
        origin: for a query returning event rows with their object and id, the rows' object type
            (`project_logs`, `experiment` or `dataset`), which records link to (`origins_linked` counts
            those that do: none of a dataset's own rows pushed back into it); else None.
        origin_column: the result's column of origins its rows hold already (`origin`), which
            records keep; None when the result has none, or a flag maps it.
        origins_held: records whose `origin` is the one their row holds (`origin_column`).
        origins_linked: records whose `origin` links to the row they were read from (`origin`).
        already_complete: an earlier run pushed the same rows completely; nothing was sent.
        earlier: with `already_complete`, what that push landed and rejected; None if its
            checkpoint was written before checkpoints kept it.
        dry_run: nothing was created or sent.
        validate_first: every row was checked before any was sent (`PushOptions.validate_first`).
        rejects: the rejects file, if any row was rejected.
        warnings: what the push did that a user may not expect, one line each.
    """

    model_config = ConfigDict(defer_build=True)

    file: str | None
    query: str | None = None
    project: str
    dataset: str
    dataset_id: str | None
    created: list[str] = []
    rows_read: int = 0
    rows_sent: int = 0
    rows_resumed: int = 0
    rows_skipped: int = 0
    rows_duplicate: int = 0
    batches: int = 0
    batches_sent: int = 0
    retries: int = 0
    splits: int = 0
    seconds: float = 0.0
    unmapped_columns: list[str] = []
    id_column: str | None = None
    origin: str | None = None
    origin_column: str | None = None
    origins_held: int = 0
    origins_linked: int = 0
    already_complete: bool = False
    earlier: PushOutcome | None = None
    dry_run: bool = False
    validate_first: bool = True
    rejects: str | None = None
    warnings: list[str] = []

    def nothing_stored(self) -> str | None:
        """Why the push failed although it ran to its end: it rejected rows and stored none (for a dry run,
        none would be; for a rerun of a complete push, that push stored none); None if it did not. With
        `--on-error skip` such a push exited 0, and a scheduled backfill of a file in the wrong shape
        succeeded with every row set aside."""
        counts: PushSummary | PushOutcome = self.earlier if self.already_complete and self.earlier else self
        if self.dry_run:  # the rows a later row of their id (refused, say) leaves out are not sent either
            stored = self.rows_read - self.rows_skipped - self.rows_duplicate
        else:
            stored = counts.rows_sent + (self.rows_resumed if counts is self else 0)
        if (self.already_complete and counts is self) or not counts.rows_skipped or stored > 0:
            return None
        name = "the query result" if self.file is None else Path(self.file).name
        rejected = f"{counted(counts.rows_skipped, 'rows')} rejected (written to {counts.rejects})"
        if self.dry_run:
            return f"dry run: no row of {name} would be stored: {rejected}; mend them before pushing"
        earlier = " by the push that completed earlier" if counts is not self else ""
        return f"no row of {name} was stored{earlier}: {rejected}; mend them and push again"
