"""How a push's messages name its options: as `bt-sync push`'s flags, or as the push job's run config.

The same checks run under both; a message that tells the user what to change names the option
as they gave it. The command line's spelling is the default: the Dagster push job switches to its
run config's for the time of its run (`run_config_spelling`). A context variable carries it, so the
modules that read, map and send rows need not pass it along.
"""

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# The argument the command line takes without a flag, as its usage line names it.
_ARGUMENTS = {"file": "FILE"}
_IN_RUN_CONFIG: ContextVar[bool] = ContextVar("bt_sync_push_run_config", default=False)


def flag_of(name: str) -> str:
    """The command line's flag for the field `name` (`sql_file` is `--sql-file`)."""
    return "--" + name.replace("_", "-")


def option(name: str, value: str | bool | list[str] | None = None) -> str:
    """The option named `name` as the user gives it, with `value` if one is given.

    On the command line `option("rejects")` is `--rejects`, `option("on_error", "skip")` is
    `--on-error skip`, `option("parse_json", False)` is `--no-parse-json` and `option("input", ["a",
    "b"])` is `--input a --input b`; in the run config they are `rejects`, `on_error: skip`,
    `parse_json: false` and `input: [a, b]`.
    """
    if _IN_RUN_CONFIG.get():
        if value is None:
            return name
        if isinstance(value, list):
            return f"{name}: [{', '.join(value)}]"
        return f"{name}: {str(value).lower() if isinstance(value, bool) else value}"
    if name in _ARGUMENTS:
        return _ARGUMENTS[name]
    if isinstance(value, bool):
        return flag_of(name) if value else flag_of(f"no_{name}")
    if isinstance(value, list):
        return " ".join(f"{flag_of(name)} {each}" for each in value)
    return flag_of(name) if value is None else f"{flag_of(name)} {value}"


def options(given: dict[str, str | list[str]]) -> str:
    """Options with their values as the user gives them (`option`): `--id-column ID --input Input` on the
    command line, each value quoted for the shell; `id_column: ID, input: [Input]` in the run config."""
    if _IN_RUN_CONFIG.get():
        return ", ".join(option(name, value) for name, value in given.items())
    quoted = {
        name: [shlex.quote(each) for each in value] if isinstance(value, list) else shlex.quote(value)
        for name, value in given.items()
    }
    return " ".join(option(name, value) for name, value in quoted.items())


@contextmanager
def run_config_spelling() -> Iterator[None]:
    """Within the block, messages name options as the push job's run config does."""
    token = _IN_RUN_CONFIG.set(True)
    try:
        yield
    finally:
        _IN_RUN_CONFIG.reset(token)
