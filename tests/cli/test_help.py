"""`--help`, of `bt-sync` and of each command, loads only what printing the help needs.

Checked by what the interpreter imports (`-X importtime`), not by timing: the
benchmarks time `bt-sync --help`; here a module that slows it is named.
"""

from __future__ import annotations

from functools import cache

import pytest
import typer

from connector.cli import app
from tests.helpers import cli_imports

COMMANDS = sorted(typer.main.get_group(app).commands)
HEAVY_LIBRARIES = {"duckdb", "pyarrow", "numpy", "httpx", "dagster"}
# `push`'s options are the fields of a pydantic model (`PushOptions`): its help needs the model.
NEEDS_PYDANTIC_MODELS = {"push"}


@cache  # both tests read the same command's imports: one process each
def modules_imported_by_help(command: str | None) -> frozenset[str]:
    done, modules = cli_imports(*([command, "--help"] if command else ["--help"]), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout
    return modules


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_loads_no_heavy_library(command: str | None) -> None:
    modules = modules_imported_by_help(command)
    assert "typer" in modules  # the probe sees imports at all
    assert not {module.split(".")[0] for module in modules} & HEAVY_LIBRARIES


@pytest.mark.parametrize("command", [None, *(c for c in COMMANDS if c not in NEEDS_PYDANTIC_MODELS)])
def test_help_does_without_pydantic_s_models(command: str | None) -> None:
    # Typer checks a flag's value through pydantic unless it is a bool: the group's `--help`, parsed
    # before every command's, was `None` when not given (`connector.cli.app._CommandGroup`).
    assert "pydantic.main" not in modules_imported_by_help(command)
