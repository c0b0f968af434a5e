"""What a push takes and reports: the options of `bt-sync push` (and of the Dagster push job) and its summary.

Kept apart from the push itself so the command line can read them without
loading the machinery that reads files and sends batches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from connector.defaults import DEFAULT_BATCH_ROWS, DEFAULT_CONCURRENCY, DEFAULT_STATE_DIR
from connector.push.choices import FileFormat, OnError

# The gateway in front of the API refuses bodies over 6 MiB; keep headroom for what proxies add.
MAX_REQUEST_BYTES = 5_632 * 1024


class PushOptions(BaseModel):
    """What to push where, and how: the options of `bt-sync push`.

    Args:
        file: the CSV, Parquet, JSON Lines or JSON file (optionally compressed).
        project: the project name; created if missing.
        dataset: the dataset name; created if missing.
        format: the file format, or None to infer it from the content, then the extension.
        id_column: the column holding row ids; None derives ids from each row's content.
        input: columns combined into `input` (default: a column named `input`).
        expected: columns combined into `expected` (default: a column named `expected`).
        metadata: columns combined into `metadata` (default: a column named `metadata`).
        tags: the column holding tags (default: a column named `tags`).
        parse_json: parse text that looks like a JSON object or array.
        batch_rows: the most rows in one insert request.
        concurrency: the most insert requests in flight.
        on_error: `fail` sends nothing if any row is invalid; `skip` sends the valid rows
            and writes the invalid ones to `rejects`.
        rejects: where `skip` writes rejected rows (JSON Lines).
        dry_run: validate and count, without creating or sending anything.
        force: forget the checkpoint of an earlier push of the same file and send everything again.
        state_dir: this machine's scratch; push checkpoints live in its `push/` directory.
    """

    model_config = ConfigDict(frozen=True)

    file: Path
    project: str = Field(min_length=1)
    dataset: str = Field(min_length=1)
    format: FileFormat | None = None
    id_column: str | None = None
    input: tuple[str, ...] = ()
    expected: tuple[str, ...] = ()
    metadata: tuple[str, ...] = ()
    tags: str | None = None
    parse_json: bool = True
    batch_rows: int = Field(default=DEFAULT_BATCH_ROWS, ge=1, le=10_000)
    concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1, le=32)
    on_error: OnError = OnError.FAIL
    rejects: Path | None = Field(default=None, validate_default=True)
    dry_run: bool = False
    force: bool = False
    state_dir: Path = DEFAULT_STATE_DIR

    @field_validator("rejects")
    @classmethod
    def _rejects_go_with_skip(cls, rejects: Path | None, info: ValidationInfo) -> Path | None:
        skip = info.data.get("on_error") is OnError.SKIP
        if skip and rejects is None:
            raise PydanticCustomError(
                "rejects", "--on-error skip needs --rejects FILE, so skipped rows are kept"
            )
        if not skip and rejects is not None:
            raise PydanticCustomError("rejects", "--rejects only applies with --on-error skip")
        return rejects

    @property
    def checkpoint_dir(self) -> Path:
        """Where this push's checkpoints are kept."""
        return self.state_dir / "push"

    def batch_shaping(self) -> dict[str, Any]:
        """The options that decide which events land in which batch (part of the checkpoint key)."""
        # `rows` names how rows become batches: checkpoints written before duplicate ids were left
        # out (and before late JSON keys were mapped) numbered other rows, so they must not be reused.
        return self.model_dump(
            mode="json", exclude={"file", "concurrency", "rejects", "dry_run", "force", "state_dir"}
        ) | {"max_request_bytes": MAX_REQUEST_BYTES, "rows": "valid, last of each id"}


class PushSummary(BaseModel):
    """What a push did (or, with `dry_run`, would do).

    Args:
        file: the input file.
        project: the project name.
        dataset: the dataset name.
        dataset_id: the dataset's id; None in a dry run of a dataset that does not exist yet.
        rows_read: rows in the file.
        rows_sent: rows acknowledged by the API in this run.
        rows_resumed: valid rows in batches an earlier run already had acknowledged.
        rows_skipped: invalid rows written to the rejects file.
        rows_duplicate: valid rows not sent because a later row of the file has the same id.
        batches: batches the file makes.
        batches_sent: batches acknowledged in this run.
        retries: requests the client retried (429, 5xx, dropped connections).
        splits: batches split in two after a 413.
        seconds: wall time.
        unmapped_columns: file columns no event field reads.
        id_column: the column ids come from; None when they are hashes of each row's content.
        already_complete: an earlier run pushed this file completely; nothing was read or sent.
        dry_run: nothing was created or sent.
        rejects: the rejects file, if any row was rejected.
        warnings: what the push did that a user may not expect, one line each.
    """

    file: str
    project: str
    dataset: str
    dataset_id: str | None
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
    already_complete: bool = False
    dry_run: bool = False
    rejects: str | None = None
    warnings: list[str] = []
