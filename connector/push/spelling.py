"""How a push's messages name its options: as `bt-sync push`'s flags, or as the push job's run config.

The same checks run under both; a message that tells the user what to change names the option
as they gave it. The command line's spelling is the default: the Dagster push job switches to its
run config's for the time of its run (`run_config_spelling`). A context variable carries it, so the
modules that read, map and send rows need not pass it along.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# The argument the command line takes without a flag, as its usage line names it.
_ARGUMENTS = {"file": "FILE"}
_IN_RUN_CONFIG: ContextVar[bool] = ContextVar("bt_sync_push_run_config", default=False)


def flag_of(name: str) -> str:
    """The command line's flag for the field `name` (`sql_file` is `--sql-file`)."""
    return "--" + name.replace("_", "-")


def option(name: str, value: str | bool | None = None) -> str:
    """The option named `name` as the user gives it, with `value` if one is given.

    On the command line `option("rejects")` is `--rejects`, `option("on_error", "skip")` is
    `--on-error skip` and `option("parse_json", False)` is `--no-parse-json`; in the run config
    they are `rejects`, `on_error: skip` and `parse_json: false`.
    """
    if _IN_RUN_CONFIG.get():
        if value is None:
            return name
        return f"{name}: {str(value).lower() if isinstance(value, bool) else value}"
    if name in _ARGUMENTS:
        return _ARGUMENTS[name]
    if isinstance(value, bool):
        return flag_of(name) if value else flag_of(f"no_{name}")
    return flag_of(name) if value is None else f"{flag_of(name)} {value}"


@contextmanager
def run_config_spelling() -> Iterator[None]:
    """Within the block, messages name options as the push job's run config does."""
    token = _IN_RUN_CONFIG.set(True)
    try:
        yield
    finally:
        _IN_RUN_CONFIG.reset(token)
