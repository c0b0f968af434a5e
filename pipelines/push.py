"""The push job: `bt-sync push FILE` (a CSV, Parquet, JSONL or JSON file into a dataset) as a Dagster run."""

from pathlib import Path

import dagster as dg
from pydantic import Field, ValidationError

from connector.defaults import DEFAULT_BATCH_ROWS, DEFAULT_CONCURRENCY, DEFAULT_STATE_DIR
from connector.push.choices import OnError
from connector.push.options import PushOptions, PushSummary
from connector.push.run import push_file
from pipelines.assets import TRANSIENT_RETRY
from pipelines.failures import terminal_errors_fail_without_retry
from pipelines.progress import LogProgress
from pipelines.resources import BraintrustResource

PUSH_JOB_NAME = "braintrust_push_job"


class PushConfig(dg.Config):
    """Run config of the push job: the options of `bt-sync push`, one field per flag.

    Choices are plain strings spelled as on the command line (Dagster would
    want enum member names instead); `connector.push.PushOptions` validates them.

    Args:
        file: the CSV, Parquet, JSONL or JSON file (optionally compressed), as the run worker sees it.
        project: the project name; created if missing.
        dataset: the dataset name; created if missing.
        format: `csv`, `parquet`, `jsonl` or `json`; None infers it from the content, then the extension.
        id_column: the column of row ids; None uses `id` if present, else a hash of the row.
        input: columns combined into `input` (default: a column named `input`).
        expected: columns combined into `expected` (default: a column named `expected`).
        metadata: columns combined into `metadata` (default: a column named `metadata`).
        tags: the column of tags (default: a column named `tags`).
        parse_json: parse text that looks like a JSON object or array.
        batch_rows: the most rows in one insert request.
        concurrency: the most insert requests in flight.
        on_error: `fail` sends nothing if any row is invalid; `skip` sends the valid rows.
        rejects: with `skip`, the JSON Lines file receiving rejected rows and why.
        dry_run: validate and count; create and send nothing.
        force: ignore the checkpoint of an earlier push and send everything again.
        state_dir: where push checkpoints are kept.
    """

    file: str
    project: str
    dataset: str
    format: str | None = None
    id_column: str | None = None
    input: list[str] = Field(default_factory=list)
    expected: list[str] = Field(default_factory=list)
    metadata: list[str] = Field(default_factory=list)
    tags: str | None = None
    parse_json: bool = True
    batch_rows: int = DEFAULT_BATCH_ROWS
    concurrency: int = DEFAULT_CONCURRENCY
    on_error: str = OnError.FAIL.value
    rejects: str | None = None
    dry_run: bool = False
    force: bool = False
    state_dir: str = str(DEFAULT_STATE_DIR)

    def push_options(self) -> PushOptions:
        """The same options as `connector` takes them.

        Raises:
            dg.Failure: the options are inconsistent (e.g. `on_error: skip` without `rejects`).
        """
        try:
            return PushOptions(**{name: getattr(self, name) for name in PushOptions.model_fields})
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise dg.Failure(description=f"invalid push config: {problems}", allow_retries=False) from None


def _summary_metadata(summary: PushSummary) -> dict[str, dg.MetadataValue]:
    return {
        "file": dg.MetadataValue.path(Path(summary.file)),
        "dataset": dg.MetadataValue.text(f"{summary.project}/{summary.dataset}"),
        "dataset_id": dg.MetadataValue.text(summary.dataset_id or ""),
        "rows_read": dg.MetadataValue.int(summary.rows_read),
        "rows_sent": dg.MetadataValue.int(summary.rows_sent),
        "rows_resumed": dg.MetadataValue.int(summary.rows_resumed),
        "rows_skipped": dg.MetadataValue.int(summary.rows_skipped),
        "rows_duplicate": dg.MetadataValue.int(summary.rows_duplicate),
        "batches_sent": dg.MetadataValue.int(summary.batches_sent),
        "retries": dg.MetadataValue.int(summary.retries),
        "already_complete": dg.MetadataValue.bool(summary.already_complete),
        "dry_run": dg.MetadataValue.bool(summary.dry_run),
        "seconds": dg.MetadataValue.float(summary.seconds),
        "warnings": dg.MetadataValue.json(summary.warnings),
    }


@dg.op(name="push_dataset_file", out=dg.Out(dg.Nothing), retry_policy=TRANSIENT_RETRY)
def push_dataset_file(
    context: dg.OpExecutionContext, config: PushConfig, braintrust: BraintrustResource
) -> None:
    """Push the file; a retried or rerun push resumes from its checkpoint instead of resending."""
    options = config.push_options()
    progress = LogProgress(context.log)
    with terminal_errors_fail_without_retry():
        if options.dry_run:
            summary = push_file(None, options, progress)
        else:
            with braintrust.client() as client:
                summary = push_file(client, options, progress)
    for warning in summary.warnings:
        context.log.warning(warning)
    context.add_output_metadata(_summary_metadata(summary))


@dg.job(
    name=PUSH_JOB_NAME,
    description="Insert a CSV, Parquet, JSONL or JSON file into a dataset (`bt-sync push`).",
)
def push_job() -> None:
    """Run `push_dataset_file`."""
    push_dataset_file()
