"""`bt-sync push`: bulk-insert a dataset from a CSV, Parquet, JSON Lines or JSON file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from connector.cli.app import app
from connector.cli.options import ApiKeyOption, ApiUrlOption, JsonOption, api_settings
from connector.defaults import DEFAULT_BATCH_ROWS, DEFAULT_CONCURRENCY, DEFAULT_STATE_DIR
from connector.push.choices import FileFormat, OnError

if TYPE_CHECKING:
    from connector.push.options import PushSummary


@app.command()
def push(
    file: Path = typer.Argument(
        ..., help="CSV, Parquet, JSONL or JSON (an array) file; gzip, bz2, zstd or lz4 compressed too."
    ),
    project: str = typer.Option(..., "--project", help="Project name; created if missing."),
    dataset: str = typer.Option(..., "--dataset", help="Dataset name; created if missing."),
    file_format: FileFormat | None = typer.Option(
        None, "--format", help="File format (default: from the content, then the extension)."
    ),
    id_column: str | None = typer.Option(
        None, "--id-column", help="Column of row ids (default: `id` if present, else a hash of the row)."
    ),
    input_columns: list[str] = typer.Option(
        [],
        "--input",
        help="Column for `input`; repeat to make an object of several (default: a column named input).",
    ),
    expected_columns: list[str] = typer.Option(
        [], "--expected", help="Column for `expected`; repeatable (default: a column named expected)."
    ),
    metadata_columns: list[str] = typer.Option(
        [], "--metadata", help="Column for `metadata`; repeatable (default: a column named metadata)."
    ),
    tags_column: str | None = typer.Option(
        None,
        "--tags",
        help="Column of tags: a JSON array or comma-separated text (default: a column named tags).",
    ),
    parse_json: bool = typer.Option(
        True, "--parse-json/--no-parse-json", help="Parse text that looks like a JSON object or array."
    ),
    batch_rows: int = typer.Option(DEFAULT_BATCH_ROWS, "--batch-rows", help="Most rows per insert request."),
    concurrency: int = typer.Option(DEFAULT_CONCURRENCY, "--concurrency", help="Most requests in flight."),
    on_error: OnError = typer.Option(
        OnError.FAIL,
        "--on-error",
        help="fail: send nothing if any row is invalid; skip: send the valid rows.",
    ),
    rejects: Path | None = typer.Option(
        None, "--rejects", help="With --on-error skip: JSONL file receiving rejected rows and why."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and count; create and send nothing."),
    force: bool = typer.Option(
        False, "--force", help="Ignore the checkpoint of an earlier push; send it all again."
    ),
    state_dir: Path = typer.Option(DEFAULT_STATE_DIR, "--state-dir", help="Where push checkpoints are kept."),
    api_url: str | None = ApiUrlOption,
    api_key: str | None = ApiKeyOption,
    as_json: bool = JsonOption,
) -> None:
    """Insert a file's rows into a dataset; rerunning never duplicates rows and resumes a crashed push.

    Warnings (no id column, rows sharing an id) go to stderr, one line each, and into the `--json` summary.
    """
    from connector.progress import terminal_progress
    from connector.push.options import PushOptions
    from connector.push.run import push_file
    from connector.wiring import open_client

    options = PushOptions(
        file=file,
        project=project,
        dataset=dataset,
        format=file_format,
        id_column=id_column,
        input=tuple(input_columns),
        expected=tuple(expected_columns),
        metadata=tuple(metadata_columns),
        tags=tags_column,
        parse_json=parse_json,
        batch_rows=batch_rows,
        concurrency=concurrency,
        on_error=on_error,
        rejects=rejects,
        dry_run=dry_run,
        force=force,
        state_dir=state_dir,
    )
    with terminal_progress(quiet=as_json) as progress:
        if dry_run:
            summary = push_file(None, options, progress)
        else:
            with open_client(api_settings(api_url, api_key)) as client:
                summary = push_file(client, options, progress)
    for warning in summary.warnings:
        typer.echo(f"bt-sync: warning: {warning}", err=True)
    typer.echo(summary.model_dump_json(indent=2) if as_json else describe(summary))


def describe(summary: PushSummary) -> str:
    """One line saying what a push did, for people.

    Args:
        summary: the result of `push_file`.
    """
    target = f"dataset {summary.dataset!r} in project {summary.project!r}"
    name = Path(summary.file).name
    if summary.already_complete:
        return f"{name} was already pushed to {target}; nothing sent (use --force to send it again)."
    valid = summary.rows_read - summary.rows_skipped
    if summary.dry_run:
        line = f"dry run: {valid:,} of {summary.rows_read:,} rows of {name} are valid"
        line += f", {_batches(summary.batches)}"
    else:
        line = (
            f"pushed {summary.rows_sent:,} rows of {name} to {target} ({summary.dataset_id}) "
            f"in {_batches(summary.batches_sent)}, {summary.seconds:.1f}s"
        )
        if summary.rows_resumed:
            line += f"; {summary.rows_resumed:,} rows were already sent by an earlier run"
    if summary.rows_skipped:
        line += f"; {summary.rows_skipped:,} invalid rows written to {summary.rejects}"
    if summary.rows_duplicate:
        line += f"; {summary.rows_duplicate:,} rows left out: a later row has the same id"
    if summary.unmapped_columns:
        line += f"; columns not sent: {', '.join(summary.unmapped_columns)}"
    return line + "."


def _batches(count: int) -> str:
    return f"{count} batch" if count == 1 else f"{count} batches"
