"""`PushOptions` is the one declaration of the push options: the CLI and Dagster's run config follow it."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from connector.cli.push import OTHER_PARAMETERS, push_command
from connector.errors import validation_problems
from connector.push.options import PushOptions
from connector.push.spelling import run_config_spelling
from pipelines.push import PushConfig

FIELDS = PushOptions.model_fields


def as_text(value: Any) -> Any:
    """A default as the command line and Dagster show it: choices and paths as text, sequences as lists."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return list(value) if isinstance(value, tuple) else value


def test_the_cli_has_a_flag_per_option_with_its_help_and_default() -> None:
    command = push_command()
    params = {param.name: param for param in command.params}
    assert list(params) == [*FIELDS, *OTHER_PARAMETERS]
    for name, field in FIELDS.items():
        param = params[name]
        assert param.help == field.description, name
        assert param.required == field.is_required(), name
        if not field.is_required():
            assert as_text(param.default) == as_text(field.default), name
        assert param.multiple == isinstance(field.default, tuple), name
    assert params["file"].param_type_name == "argument"
    assert params["parse_json"].opts == ["--parse-json"] and params["parse_json"].secondary_opts == [
        "--no-parse-json"
    ]
    assert params["id_column"].opts == ["--id-column"]


def test_the_dagster_config_has_a_field_per_option_with_its_description_and_default() -> None:
    config = PushConfig.model_fields
    assert list(config) == list(FIELDS)
    for name, field in FIELDS.items():
        assert config[name].description == field.description, name
        assert config[name].is_required() == field.is_required(), name
        if not field.is_required():
            assert as_text(config[name].get_default(call_default_factory=True)) == as_text(field.default), (
                name
            )


def test_the_cli_and_dagster_make_the_same_options() -> None:
    given = {
        "sql": "SELECT 1 AS input",
        "project": "p",
        "dataset": "d",
        "input": ["input", "context"],
        "on_error": "skip",
        "rejects": "rejects.jsonl",
        "state_dir": "state",
        "batch_rows": 10,
    }
    from_dagster = PushConfig(**given).push_options()
    made: list[PushOptions] = []
    command = push_command()
    # What the command's own callback does with the parsed flags, stopping short of the push.
    command.callback = lambda **parsed: made.append(PushOptions(**{n: parsed[n] for n in FIELDS}))
    flags = "--sql|SELECT 1 AS input|--project|p|--dataset|d|--input|input|--input|context|--on-error|skip"
    command.main(
        [*flags.split("|"), "--rejects", "rejects.jsonl", "--state-dir", "state", "--batch-rows", "10"],
        standalone_mode=False,
    )
    assert made == [from_dagster] == [PushOptions(**given)]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "give a FILE to push, or a query in --sql or --sql-file"),
        (
            {"file": "a.csv", "sql_file": "q.sql"},
            "give one of FILE, --sql and --sql-file, not FILE and --sql-file",
        ),
        ({"sql": "SELECT 1", "format": "csv"}, "format\n  applies to a FILE, not to a query's result"),
        # The file was blamed: "d.csv is JSON Lines, not CSV".
        (
            {"file": "a.csv", "format": "jsonl", "delimiter": ";"},
            "delimiter\n  applies to CSV, not to --format jsonl",
        ),
        # Written as plain JSON Lines whatever the name: zcat of `.gz` failed, a CSV reader of `.csv` too.
        (
            {"file": "a.csv", "on_error": "skip", "rejects": "r.jsonl.gz"},
            "rejects\n  written as JSON Lines, uncompressed: give it a name ending in .jsonl, not .gz",
        ),
        (
            {"file": "a.csv", "on_error": "skip", "rejects": "r.CSV"},
            "rejects\n  written as JSON Lines, uncompressed: give it a name ending in .jsonl, not .CSV",
        ),
    ],
)
def test_exactly_one_source(given: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PushOptions(project="p", dataset="d", **given)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "give a file to push, or a query in sql or sql_file"),
        ({"file": "a.csv", "sql": "SELECT 1"}, "give one of file, sql and sql_file, not file and sql"),
        ({"file": "a.csv", "rejects": "r.jsonl"}, "rejects only applies with on_error: skip"),
        # Written as the file `r`, the Dagster run a success.
        (
            {"file": "a.csv", "on_error": "skip", "rejects": "r/"},
            "rejects: 'r/' ends with /, so it names a directory: give a file's path",
        ),
        ({"sql_file": "q/."}, "sql_file: 'q/.' ends with ., so it names a directory: give a file's path"),
        # An IndexError, which Dagster retried.
        ({"file": "a.csv", "on_error": "skip", "rejects": ""}, "rejects: is empty: give a file's path"),
        (
            {"file": "a.csv", "format": "json", "delimiter": ";"},
            "delimiter: applies to CSV, not to format: json",
        ),
    ],
)
def test_a_run_config_s_problems_name_its_fields_not_the_flags(given: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as error, run_config_spelling():
        PushOptions.model_validate({"project": "p", "dataset": "d", **given})
    assert validation_problems(error.value).endswith(message) and "--" not in str(error.value)


def test_the_command_line_stub_hands_every_argument_on() -> None:
    from typer.testing import CliRunner

    from connector.cli import app

    done = CliRunner().invoke(
        app, ["push", "--sql", "SELECT 1", "--project", "p", "--dataset", "d", "--bogus"]
    )
    assert done.exit_code == 2 and "No such option: --bogus" in done.output
    done = CliRunner().invoke(app, ["push", "--help"])
    assert done.exit_code == 0
    assert "Usage: bt-sync push [OPTIONS] [file]" in done.output
    assert "--sql-file" in done.output and "--no-parse-json" in done.output


def test_a_delimiter_given_names_other_batches_and_the_default_names_none() -> None:
    def shaping(**given: Any) -> dict[str, Any]:
        return PushOptions(file=Path("a.csv"), project="p", dataset="d", **given).batch_shaping()

    # A checkpoint written before the option existed keys the default as it is keyed now.
    assert "delimiter" not in shaping()
    assert shaping(delimiter=";")["delimiter"] == ";"
    assert shaping(delimiter="\\t") == shaping(delimiter="\t") != shaping(delimiter=";")


def test_skipping_bad_rows_names_other_batches_than_checkpoints_before_a_refused_row_replaced_its_id() -> (
    None
):
    # A row the checks refuse now leaves out the earlier rows of its id: a checkpoint of a push that
    # skipped bad rows before numbered other rows in its batches, and must not be resumed.
    skipping = PushOptions(
        file=Path("a.csv"), project="p", dataset="d", on_error="skip", rejects=Path("r.jsonl")
    )
    failing = PushOptions(file=Path("a.csv"), project="p", dataset="d")
    assert failing.batch_shaping()["rows"] == "valid, last of each id"
    assert skipping.batch_shaping()["rows"] == "valid, last of each id, a refused row's too"
