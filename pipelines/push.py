"""The push job: `bt-sync push` (a file, or a query's result, into a dataset) as a Dagster run.

Its run config is generated from `PushOptions`: one field per option, with the option's
description and default, so an option is declared once (`connector.push.options`).
"""

from enum import Enum
from pathlib import Path
from types import GenericAlias, UnionType
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

import dagster as dg
from pydantic import Field, create_model
from pydantic.fields import FieldInfo

from connector.push.options import PushOptions, PushSummary
from connector.push.run import push
from connector.push.spelling import run_config_spelling
from pipelines.assets import TRANSIENT_RETRY
from pipelines.failures import invalid_config_fails_without_retry, terminal_errors_fail_without_retry
from pipelines.progress import LogProgress
from pipelines.resources import BraintrustResource, WarehouseResource

PUSH_JOB_NAME = "braintrust_push_job"


class PushConfigBase(dg.Config):
    """What every push run config does: turn itself into `PushOptions`."""

    def push_options(self) -> PushOptions:
        """The same options as `connector` takes them.

        Raises:
            dg.Failure: the options are inconsistent (e.g. `on_error: skip` without `rejects`).
        """
        with invalid_config_fails_without_retry("push"), run_config_spelling():
            return PushOptions.model_validate(self.model_dump())


def _config_field(field: FieldInfo) -> tuple[Any, Any]:
    """A `PushOptions` field as Dagster's config takes it: paths as text, choices spelled as on the
    command line (Dagster would want enum member names), sequences as lists.

    Args:
        field: the field, with its annotation, default and description.
    """
    annotation = _config_type(field.annotation)
    if field.is_required():
        return annotation, Field(description=field.description)
    default = field.default
    if isinstance(default, tuple):
        return annotation, Field(default_factory=list, description=field.description)
    if isinstance(default, Enum):
        default = default.value
    elif isinstance(default, Path):
        default = str(default)
    return annotation, Field(default=default, description=field.description)


def _config_type(annotation: Any) -> Any:
    if annotation is Path or (isinstance(annotation, type) and issubclass(annotation, Enum)):
        return str
    origin = get_origin(annotation)
    if origin is tuple:
        return GenericAlias(list, get_args(annotation)[0])
    if origin in (Union, UnionType):
        members = tuple(_config_type(member) for member in get_args(annotation))
        return Union[members]  # noqa: UP007 - a union built at run time
    return annotation


# A model made at run time has no fields mypy can see: it checks the op against the base.
if TYPE_CHECKING:
    PushConfig = PushConfigBase
else:
    PushConfig = create_model(
        "PushConfig",
        __base__=PushConfigBase,
        __doc__="Run config of the push job: the options of `bt-sync push`, one field per option.",
        __module__=__name__,
        **{name: _config_field(field) for name, field in PushOptions.model_fields.items()},
    )


def _summary_metadata(summary: PushSummary) -> dict[str, dg.MetadataValue]:
    source: dict[str, dg.MetadataValue] = (
        {"file": dg.MetadataValue.path(Path(summary.file))}
        if summary.file is not None
        else {"query": dg.MetadataValue.md(f"```sql\n{summary.query}\n```")}
    )
    metadata = source | {
        "dataset": dg.MetadataValue.text(f"{summary.project}/{summary.dataset}"),
        "dataset_id": dg.MetadataValue.text(summary.dataset_id or ""),
        # What the run created (`project`, `dataset`): a mistyped name shows at once, as on the command line.
        "created": dg.MetadataValue.json(summary.created),
        "rows_read": dg.MetadataValue.int(summary.rows_read),
        "rows_sent": dg.MetadataValue.int(summary.rows_sent),
        "rows_resumed": dg.MetadataValue.int(summary.rows_resumed),
        "rows_skipped": dg.MetadataValue.int(summary.rows_skipped),
        "rows_duplicate": dg.MetadataValue.int(summary.rows_duplicate),
        "batches_sent": dg.MetadataValue.int(summary.batches_sent),
        "retries": dg.MetadataValue.int(summary.retries),
        "origin": dg.MetadataValue.text(summary.origin or ""),
        "origins_held": dg.MetadataValue.int(summary.origins_held),
        "origins_linked": dg.MetadataValue.int(summary.origins_linked),
        "already_complete": dg.MetadataValue.bool(summary.already_complete),
        "dry_run": dg.MetadataValue.bool(summary.dry_run),
        "seconds": dg.MetadataValue.float(summary.seconds),
        "warnings": dg.MetadataValue.json(summary.warnings),
    }
    # On a rerun of a complete push: what that push landed and rejected.
    earlier = summary.earlier
    return (
        metadata if earlier is None else metadata | {"earlier": dg.MetadataValue.json(earlier.model_dump())}
    )


@dg.op(name="push_dataset_file", out=dg.Out(dg.Nothing), retry_policy=TRANSIENT_RETRY)
def push_dataset_file(
    context: dg.OpExecutionContext,
    config: PushConfig,
    braintrust: BraintrustResource,
    warehouse: WarehouseResource,
) -> None:
    """Push the file or the query's result; a retried or rerun push resumes from its checkpoint."""
    options = config.push_options()
    if options.state_dir is None:
        # Checkpoints live in the warehouse resource's scratch, as the syncs' do.
        options = options.model_copy(update={"state_dir": warehouse.settings().state_dir})
    progress = LogProgress(context.log)
    with terminal_errors_fail_without_retry(), run_config_spelling():
        if options.dry_run:
            summary = push(None, options, progress, warehouse.settings())
        else:
            with braintrust.client() as client:
                summary = push(client, options, progress, warehouse.settings())
    for warning in summary.warnings:
        context.log.warning(warning)
    if failure := summary.nothing_stored():
        # Rerunning would reject the same rows: the file needs mending first.
        raise dg.Failure(description=failure, metadata=_summary_metadata(summary), allow_retries=False)
    context.add_output_metadata(_summary_metadata(summary))


@dg.job(
    name=PUSH_JOB_NAME,
    description="Insert a CSV, Parquet, JSONL or JSON file, or the result of a SQL query over the "
    "synced tables, into a dataset (`bt-sync push`).",
)
def push_job() -> None:
    """Run `push_dataset_file`."""
    push_dataset_file()
