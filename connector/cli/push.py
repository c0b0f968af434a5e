"""`bt-sync push`: bulk-insert a dataset from a file, or from the result of a query over the synced tables.

The command's parameters are generated from `PushOptions`' fields, so an option is
declared once, in `connector.push.options`: its flag is `--` and the field's name
dashed (`--x/--no-x` for a field true by default, repeatable for a tuple), its help
and default are the field's; only `file` is positional. They are generated when
`bt-sync push` runs, not when `bt-sync` starts: importing pydantic's model machinery
would add ~80 ms to `bt-sync --help`. Until then `push` is a stub taking any arguments.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from types import GenericAlias
from typing import TYPE_CHECKING, Any, get_args, get_origin

import typer
from typer._click.exceptions import UsageError  # Typer's own click, not exported
from typer.core import TyperCommand

from connector.cli.app import KeyHidingCommand, app, json_output, print_output, words_after_key
from connector.cli.options import (
    ApiKeyOption,
    ApiUrlOption,
    DuckDbOption,
    JsonOption,
    NoParquetOption,
    ParquetOption,
    TimeoutOption,
    api_settings,
    path_value,
    warehouse_settings,
)
from connector.display import counted, printable
from connector.errors import Interrupted
from connector.push.spelling import flag_of

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo
    from typer._click.core import Context as ClickContext  # Typer's own click, not exported

    from connector.push.options import PushOptions, PushOutcome, PushSummary

ARGUMENT = "file"
# The command's parameters that are not push options: where the API and the synced tables are, and output.
OTHER_PARAMETERS: dict[str, tuple[Any, Any]] = {
    "api_url": (str | None, ApiUrlOption),
    "api_key": (str | None, ApiKeyOption),
    "timeout": (float | None, TimeoutOption),
    "duckdb": (Path | None, DuckDbOption),
    "parquet": (str | None, ParquetOption),
    "no_parquet": (bool, NoParquetOption),
    "as_json": (bool, JsonOption),
}


# Where the stub `push` command keeps the words it was given (`_KeepingItsArguments`).
_ARGUMENTS = "bt_sync_push_arguments"
# The flags naming the warehouse a `--sql` query reads.
_WAREHOUSE_FLAGS = {"duckdb": "--duckdb", "parquet": "--parquet", "no_parquet": "--no-parquet"}


class _KeepingItsArguments(TyperCommand):
    """The stub `push` command: it hands every word after `push` to the generated command as given. Its
    own parsing drops an end-of-options `--`, so that `push -- -data.csv` took the file for an option."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        ctx.meta[_ARGUMENTS] = list(args)
        return super().parse_args(ctx, args)


@app.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
    cls=_KeepingItsArguments,
)
def push(ctx: typer.Context) -> None:
    """Insert a FILE's rows, or a --sql query's, into a dataset; reruns never duplicate rows and resume.

    --sql runs read-only over the synced tables (--duckdb/--parquet, as for `bt-sync sql`). A query
    returning event rows with their object and id (`id` with `project_id`, `experiment_id` or
    `dataset_id`; `_xact_id` too) fills each record's `origin`, linking it to its span.
    Warnings (no id column, rows sharing an id) go to stderr, one line each, and into the `--json` summary.
    """
    push_command().main(ctx.meta[_ARGUMENTS], prog_name=ctx.command_path)


# The flags naming one column, beside `--input`, `--expected` and `--metadata`, which are repeated.
_ONE_COLUMN_FLAGS = ("--id-column", "--tags")


class _PushCommand(KeyHidingCommand):
    """The generated `push` command, refusing a flag naming one column given two (`_refuse_column_twice`)."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        _refuse_column_twice(ctx, args)
        return super().parse_args(ctx, args)


def _refuse_column_twice(ctx: ClickContext, args: list[str]) -> None:
    """Refuse `--tags` or `--id-column` given two different columns: Click keeps the last, and `--tags tg
    --tags m` (as `--metadata` is repeated) left the column `tg` unsent, with a note alone. (Other flags
    taking one value keep Click's last one: a wrapper script's defaults are overridden so.)

    Raises:
        UsageError: naming the flag.
    """
    given: dict[str, str] = {}
    for at, word in enumerate(args):
        if word == "--":  # the words after it are values
            break
        flag, joined, value = word.partition("=")
        if flag not in _ONE_COLUMN_FLAGS or not (joined or at + 1 < len(args)):
            continue
        column = value if joined else args[at + 1]
        if given.setdefault(flag, column) != column:
            raise UsageError(f"{flag} is given two columns: it takes one", ctx)


def push_command() -> Any:
    """The `push` command: a parameter per `PushOptions` field, and the API, warehouse and output flags."""
    from connector.push.options import PushOptions

    def run(**given: Any) -> None:
        _push(PushOptions(**{name: given[name] for name in PushOptions.model_fields}), given)

    run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [cli_parameter(name, field) for name, field in PushOptions.model_fields.items()]
        + [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)
            for name, (annotation, info) in OTHER_PARAMETERS.items()
        ]
    )
    command = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    command.command(name="push", help=inspect.getdoc(push), cls=_PushCommand)(run)
    return typer.main.get_command(command)


def cli_parameter(name: str, field: FieldInfo) -> inspect.Parameter:
    """The command-line parameter of one `PushOptions` field.

    Args:
        name: the field's name.
        field: the field, with its annotation, default and description.
    """
    annotation: Any = field.annotation
    default = ... if field.is_required() else field.default
    if name == ARGUMENT:
        info = typer.Argument(default, help=field.description, show_default=False)
    else:
        flag = flag_of(name)
        if default is True:
            flag += f"/{flag_of(f'no_{name}')}"
        if get_origin(annotation) is tuple:
            # A tuple option is a flag given once per value; typer collects those in a list.
            annotation, default = GenericAlias(list, get_args(annotation)[0]), list(field.default)
        # Every path but the state directory's names a file.
        is_path = Path in (annotation, *get_args(annotation))
        path = path_value(flag, file=name != "state_dir") if is_path else {}
        info = typer.Option(default, flag, **path, help=field.description)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


def _refuse_warehouse_flags(given: dict[str, Any]) -> None:
    """Refuse the warehouse's flags for a file's push, which reads no warehouse: they went unused without
    a word, as `--format` for a query's would not.

    Raises:
        ConfigError: one was given.
    """
    from connector.errors import ConfigError

    flags = [flag for name, flag in _WAREHOUSE_FLAGS.items() if given[name]]
    if flags:
        named, apply = (" and ".join(flags), "apply") if len(flags) > 1 else (flags[0], "applies")
        raise ConfigError(f"invalid setting: {named}: {apply} to a query's warehouse (--sql), not to a FILE")


def _refuse_key_part_as_file(file: Path) -> None:
    """Refuse a FILE that is not there and is the word given after `--api-key`'s value, without naming it:
    `--api-key sk-abc def data.jsonl` took `def`, the key's second half, for the FILE, and its "no such
    file" put it on the terminal and in a scheduler's log.

    Raises:
        ConfigError: it is such a word.
    """
    from connector.errors import ConfigError

    if not file.exists() and any(Path(word) == file for word in words_after_key()):
        raise ConfigError(
            "invalid setting: FILE: no such file, not shown as it is the word given after --api-key's "
            "value and may be part of the key (a key split at a blank): quote a value holding a blank"
        )


def _push(options: PushOptions, given: dict[str, Any]) -> None:
    from connector.progress import terminal_progress
    from connector.push.run import open_push

    as_json = given["as_json"]
    warehouse = None
    if options.file is not None:
        _refuse_warehouse_flags(given)
        _refuse_key_part_as_file(options.file)
    else:
        warehouse = warehouse_settings(
            duckdb=given["duckdb"],
            parquet=given["parquet"],
            no_parquet=given["no_parquet"],
            takes_destination=False,
        )
    if options.dry_run:
        # Unused by a dry run, and refused by the push it rehearses (`--timeout nan`, `BT_SYNC_TIMEOUT=nan`).
        api_settings(given["api_url"], given["api_key"], given["timeout"])
    with terminal_progress(quiet=as_json) as progress, open_push(options, progress, warehouse) as run:
        try:
            if options.dry_run:
                summary = run.run(None)
            else:
                # Imported once the push is open: a large JSON Lines file's helper reads it meanwhile.
                from connector.wiring import open_client

                with open_client(
                    api_settings(given["api_url"], given["api_key"], given["timeout"])
                ) as client:
                    summary = run.run(client)
        except KeyboardInterrupt:
            # Said as the push ends otherwise: that ids are hashes of the rows (no id column) matters to the
            # rows already sent.
            _print_warnings(run.summary)
            # Once the batches in flight were acknowledged, or a few seconds passed (`_Sender`): the count
            # is what a rerun skips.
            sent = run.summary.rows_sent + run.summary.rows_resumed
            rerun = "rerun the same command"
            if sent:
                were = "was acknowledged and is" if sent == 1 else "were acknowledged and are"
                kept = f"{counted(sent, 'rows')} {were} checkpointed: {rerun} to send the rest"
            elif run.summary.batches:
                # The wait for the batches in flight ended (a second Ctrl-C, or its few seconds): the API
                # may have applied them.
                kept = (
                    "no batch was acknowledged, but those in flight may have reached the dataset: "
                    f"{rerun} (rows are replaced by id, not duplicated)"
                )
            else:
                kept = "nothing was sent"
            raise Interrupted(f"interrupted: {kept}") from None
    _print_warnings(summary)
    failure = summary.nothing_stored()
    if as_json:
        json_output.print(_summary_document(summary, failure))
    else:
        print_output(describe(summary))
    if failure:
        from connector.errors import PushError

        raise PushError(failure)


def _summary_document(summary: PushSummary, failure: str | None) -> str:
    """The summary as `--json` prints it: for a push that fails once it ran to its end, with the error and
    exit code a failed command's document holds (stdout alone read as a success beside exit 1)."""
    if failure is None:
        return summary.model_dump_json(indent=2)
    from connector.cli import EXIT_FAILURE

    document = summary.model_dump(mode="json") | {"error": failure, "exit_code": EXIT_FAILURE}
    return json.dumps(document, indent=2, ensure_ascii=False)


def _print_warnings(summary: PushSummary) -> None:
    for warning in summary.warnings:
        typer.echo(f"bt-sync: warning: {warning}", err=True)


def describe(summary: PushSummary) -> str:
    """One line saying what a push did, for people.

    Args:
        summary: the result of `push`.
    """
    # Quoted as written (a repr would double a backslash), control characters escaped.
    target = f"dataset '{printable(summary.dataset)}' in project '{printable(summary.project)}'"
    name = "the query result" if summary.file is None else printable(Path(summary.file).name)
    if summary.already_complete:
        earlier = _earlier(summary)
        return f"{name} was already pushed to {target}{earlier}; nothing sent (use --force to send it again)."
    if not summary.rows_read:
        return f"{name} has no rows; nothing pushed to {target}."
    valid = summary.rows_read - summary.rows_skipped
    if summary.dry_run:
        are = "is" if valid == 1 else "are"
        line = f"dry run: {valid:,} of {counted(summary.rows_read, 'rows')} of {name} {are} valid"
        line += f", {counted(summary.batches, 'batches')}"
    else:
        created = " with its project" if "project" in summary.created else ""
        new = f", created now{created}" if summary.created else ""
        known = f" ({summary.dataset_id}{new})" if summary.dataset_id else ""
        if summary.batches_sent:
            line = (
                f"pushed {counted(summary.rows_sent, 'rows')} of {name} to {target}{known} "
                f"in {counted(summary.batches_sent, 'batches')}, {summary.seconds:.1f}s"
            )
        elif summary.dataset_id:  # every row rejected, or sent by an earlier run
            line = f"pushed nothing of {name} to {target}{known}, {summary.seconds:.1f}s"
        else:  # every row rejected before a dataset was needed: none was found or created
            line = f"pushed nothing of {name}, and created no {target}, {summary.seconds:.1f}s"
        if summary.rows_resumed:
            were = "was" if summary.rows_resumed == 1 else "were"
            line += f"; {counted(summary.rows_resumed, 'rows')} {were} already sent by an earlier run"
    if origins := _origins(summary):
        line += f"; {origins}"
    line += "".join(f"; {said}" for said in _not_sent(summary, validate_first=summary.validate_first))
    if summary.unmapped_columns:
        # Quoted, as messages name columns: a name's blanks (` input `, not `input`) and an empty name (a
        # spreadsheet's trailing separator) show.
        unsent = ", ".join(f'"{printable(name)}"' for name in summary.unmapped_columns)
        line += f"; columns not sent: {unsent}"
    return line + "."


def _origins(summary: PushSummary) -> str | None:
    """Where the records' `origin` came from, for a query's result that gives them one."""
    held, linked = summary.origins_held, summary.origins_linked
    records = summary.rows_read - summary.rows_skipped
    if not records or (summary.origin is None and summary.origin_column is None):
        return None
    if linked == records:
        return f"each record's origin is its {summary.origin} row"
    if held == records:
        return "each record keeps the origin its row holds"
    if not (held or linked):
        return "no record has an origin"
    said = {
        "kept from their rows": held,
        f"linked to their {summary.origin} rows": linked,
        "none": records - held - linked,
    }
    return "origins: " + ", ".join(f"{count:,} {how}" for how, count in said.items() if count)


def _earlier(summary: PushSummary) -> str:
    """What the complete push a rerun found did, in parentheses; nothing if its checkpoint did not say."""
    if (earlier := summary.earlier) is None:
        return ""
    said = [
        f"{counted(earlier.rows_sent, 'rows')} sent",
        *_not_sent(earlier, validate_first=summary.validate_first),
    ]
    return f" ({'; '.join(said)})"


def _not_sent(counts: PushSummary | PushOutcome, *, validate_first: bool) -> list[str]:
    """The rows `counts` says were rejected, or left out or replaced (`validate_first` or not) by a later
    row with the same id."""
    said = []
    if counts.rows_skipped:
        # Refused by the file's checks or by the API: the rejects file says which, row by row.
        said.append(
            f"{counted(counts.rows_skipped, 'rows')} rejected (written to {printable(str(counts.rejects))})"
        )
    if counts.rows_duplicate:
        fate = "left out" if validate_first else "replaced"
        said.append(f"{counted(counts.rows_duplicate, 'rows')} {fate}: a later row has the same id")
    return said
