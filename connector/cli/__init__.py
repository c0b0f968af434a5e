"""The `bt-sync` command line: thin shells over the connector functions.

User mistakes and API failures surface as one line on stderr and a non-zero
exit code; a traceback only with `--debug`.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from types import TracebackType
from typing import NoReturn

from pydantic import ValidationError

from connector import interrupts
from connector.cli import catalog, demo, emulator, maintain, push, sql, sync
from connector.cli.app import (
    app,
    json_for_stdout,
    json_output,
    stderr_reader_may_leave,
    tolerate_stdout_encoding,
    whole_writes_to_stdout,
)
from connector.cli.secrets import secrets_given
from connector.console import (
    EXIT_INTERRUPTED,
    before_values,
    error_document,
    stop_as_at_ctrl_c,
    take_sigterm_as_ctrl_c,
)
from connector.display import printable
from connector.errors import (
    BtSyncError,
    ConfigError,
    Interrupted,
    MissingApiKey,
    in_the_way,
    one_line_reason,
    os_reason,
    validation_problems,
)
from connector.redaction import scrub

__all__ = ["app", "main", "run"]

# NumPy (loaded by pyarrow) starts one BLAS thread per core at import, a third of a second here;
# bt-sync does no linear algebra. Set before any command imports it; a user's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# DuckDB's allocator (a jemalloc of its own) gives freed pages back to the system within a second,
# and a sync frees and retakes a page's worth of buffers several times a second: each page's parse
# then faults its memory in afresh. Keeping freed pages until the command exits cost 5-12% less CPU
# in 200,000-row syncs (four interleaved pairs), for at most 8 MB more peak memory. Read when
# DuckDB loads, so set before any command imports it; a user's own setting wins.
os.environ.setdefault("DUCKDB_JE_MALLOC_CONF", "dirty_decay_ms:-1,muzzy_decay_ms:-1")

EXIT_FAILURE = 1
EXIT_USAGE = 2
_DUCKDB_INTERRUPTED = "Query interrupted"
# Settings' field names as the command line spells them, for messages (a variable's keeps its name).
_FLAGS = {
    "api_url": "--api-url",
    "api_key": "--api-key",
    "timeout_s": "--timeout",
    "overlap_s": "--overlap-seconds",
    "lock_wait_s": "--lock-wait",
    "page_limit": "--page-limit",
    "duckdb_path": "--duckdb",
    "parquet_root": "--parquet",
    "state_dir": "--state-dir",
    "iceberg_namespace": "--iceberg-namespace",
    "project": "--project",
    "dataset": "--dataset",
    "id_column": "--id-column",
    "input": "--input",
    "expected": "--expected",
    "metadata": "--metadata",
    "tags": "--tags",
    "batch_rows": "--batch-rows",
    "concurrency": "--concurrency",
    "rejects": "--rejects",
    "sql_file": "--sql-file",
    "format": "--format",
    "delimiter": "--delimiter",
    "validate_first": "--no-validate-first",
    "backoff_initial_s": "BT_SYNC_BACKOFF_INITIAL_S",
    "backoff_max_s": "BT_SYNC_BACKOFF_MAX_S",
}

_COMMAND_MODULES = (
    catalog,
    demo,
    emulator,
    maintain,
    push,
    sql,
    sync,
)  # importing a module registers its commands on `app`


def run() -> NoReturn:
    """The `bt-sync` console script and `python -m connector.cli`: `main`, then the process's exit.

    Once `main` has returned, the process exits without the interpreter's shutdown: the exit handlers
    run (logging's flush, file locks released, temporary directories removed), the output streams are
    flushed, and nothing else. Tearing down the modules and the objects they hold, DuckDB's and
    pyarrow's among them, cost 0.18-0.31 s of CPU after a 200,000-row sync, 3-4% of it, and undid
    nothing a command leaves behind: every command closes what it opened before `main` returns.
    It also keeps pyarrow's streaming CSV reader from aborting the process: it parses on threads of
    its own and calls back into Python there (for a malformed row), then releases what it held, which
    takes the GIL again; a thread doing so while the interpreter shuts down was stopped in the middle
    of C++ code ("terminate called without an active exception", exit code -6, after the message was
    printed: 2 pushes in 150 of a CSV file with a malformed row, under load).
    """
    take_sigterm_as_ctrl_c()  # already, when started by the console script
    whole_writes_to_stdout()
    try:
        main()
    except SystemExit as done:
        code = done.code
    except KeyboardInterrupt:
        # Ctrl-C between the command's end and here.
        _interrupted()
        code = EXIT_INTERRUPTED
    else:
        code = 0
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = EXIT_FAILURE
    # The handlers an orderly exit would run; the standard library has no public way to run them early.
    atexit._run_exitfuncs()
    # A stream closed when the command started is None.
    for stream in filter(None, (sys.stdout, sys.stderr)):
        # A reader that went away (`bt-sync push … | head`) is no reason to fail now.
        with contextlib.suppress(OSError):
            stream.flush()
    os._exit(code or 0)


def main() -> None:
    """Run the command line; exits with its exit code (`SystemExit`), as tests expect of it in process."""
    arguments = sys.argv[1:]
    options = before_values(arguments)
    debug = "--debug" in options
    if debug:
        # A global option, wherever it is given: `bt-sync sync --debug` as well as `bt-sync --debug sync`.
        others = (argument for argument in options if argument != "--debug")
        sys.argv = [sys.argv[0], "--debug", *others, *arguments[len(options) :]]
    json_output.reset()
    tolerate_stdout_encoding()
    stderr = sys.stderr
    sys.stderr = stderr_reader_may_leave(stderr)
    try:
        with _swallowed_interrupts_delivered():
            _run(debug)
    finally:
        sys.stderr = stderr


@contextlib.contextmanager
def _swallowed_interrupts_delivered() -> Iterator[None]:
    """Deliver again Ctrl-C that landed where Python discards exceptions (a finalizer, a validator pydantic
    builds on first use: "Exception ignored in ..."), where it stops the command; the command ran on to
    its end otherwise. Other such exceptions go to the hook as before."""
    previous_hook, previous_alarm = sys.unraisablehook, signal.getsignal(signal.SIGALRM)

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and threading.current_thread() is (
            threading.main_thread()
        ):
            # Raised now, it would be discarded again: a millisecond later, from a timer, it lands where
            # the main thread is then (and, should that be such a place again, it comes back here).
            signal.signal(signal.SIGALRM, stop_as_at_ctrl_c)
            signal.setitimer(signal.ITIMER_REAL, 0.001)
            return
        previous_hook(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        if signal.getsignal(signal.SIGALRM) is stop_as_at_ctrl_c:
            # Whether or not the interrupt came again before the command ended: nothing left to stop.
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous_alarm)


def _run(debug: bool) -> None:
    if sys.stdout is None:
        # Started with stdout closed (`bt-sync sync >&-`): the next file opened would take its place, and
        # whatever a library printed would land in it.
        _fail("standard output is closed: redirect it to a file, or to /dev/null", EXIT_USAGE, debug=False)
    # A traceback quotes values (pydantic's `input_value=…`) and messages: never a secret given.
    sys.excepthook = _print_scrubbed_traceback
    warnings = logging.StreamHandler(sys.stderr)
    warnings.setFormatter(_PrintableFormatter("bt-sync: warning: %(message)s"))
    logging.getLogger("bt_sync").addHandler(warnings)
    # pyiceberg warns, through Python's last-resort handler, of what bt-sync handles: a commit it retries
    # because another worker raced it, a replaced metadata file it could not delete. Under --debug only.
    logging.getLogger("pyiceberg").setLevel(logging.NOTSET if debug else logging.ERROR)
    try:
        # Typer reports usage errors itself and exits; our own errors propagate to here.
        app()
    except SystemExit as done:
        # Typer turns Ctrl-C into this exit code, silently.
        if done.code == EXIT_INTERRUPTED:
            _interrupted()
        raise
    except Interrupted as error:
        # `bt-sync: interrupted: …`, as any command stopped says it, with what a push kept.
        _fail(_one_line(error), EXIT_INTERRUPTED, debug, label="")
    except (BtSyncError, ValidationError) as error:
        _stop_if_interrupted(error)
        _fail(
            _one_line(error),
            EXIT_USAGE if isinstance(error, ConfigError | ValidationError) else EXIT_FAILURE,
            debug,
        )
    except RuntimeError as error:
        # DuckDB answers Ctrl-C during a statement with this plain error, not with KeyboardInterrupt.
        if str(error) != _DUCKDB_INTERRUPTED:
            raise
        _interrupted()
        sys.exit(EXIT_INTERRUPTED)
    except OSError as error:
        # Disk full, permissions, a vanished directory: the system's reason, and the file it names.
        where = f": {error.filename}" if error.filename else ""
        _fail(in_the_way(error) or f"{os_reason(error)}{where}", EXIT_FAILURE, debug)
    except Exception as error:
        if "duckdb" not in type(error).__module__:
            raise
        _stop_if_interrupted(error)
        # A DuckDB error that reached here (a full disk, an unreadable file) names its cause.
        _fail(f"DuckDB: {one_line_reason(error)}", EXIT_FAILURE, debug)


def _stop_if_interrupted(error: Exception) -> None:
    """Exit as interrupted if `error` is DuckDB's report of Ctrl-C (in its words, or in a message of ours)."""
    try:
        interrupts.raise_if_interrupted(error)
    except KeyboardInterrupt:
        _interrupted()
        sys.exit(EXIT_INTERRUPTED)


def _interrupted() -> None:
    print("bt-sync: interrupted", file=sys.stderr)
    _print_json_error("interrupted", EXIT_INTERRUPTED)


class _PrintableFormatter(logging.Formatter):
    """A warning quotes what the API or a file said: its control characters are escaped, not obeyed."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def _print_scrubbed_traceback(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    _print_traceback("".join(traceback.format_exception(kind, error, trace)))


def _print_traceback(text: str) -> None:
    """A traceback, without the secrets given and with each line's control characters escaped."""
    for line in scrub(text, secrets_given()).splitlines():
        print(printable(line), file=sys.stderr)


def _fail(message: str, code: int, debug: bool, *, label: str = "error: ") -> None:
    if debug:
        _print_traceback(traceback.format_exc())
    shown = printable(scrub(message, secrets_given()))
    print(f"bt-sync: {label}{shown}", file=sys.stderr)
    _print_json_error(shown, code)
    sys.exit(code)


def _print_json_error(message: str, code: int) -> None:
    """Under `--json`, a command that failed before printing its summary prints its error as the document."""
    if json_output.requested and not json_output.printed:
        # A reader that went away (`bt-sync status --json | head -2`), or the full disk the error was
        # about: the line on stderr has said it, and a traceback would bury it.
        with contextlib.suppress(OSError):
            print(json_for_stdout(error_document(message, code)))


def _one_line(error: Exception) -> str:
    if isinstance(error, MissingApiKey):
        return "No Braintrust API key: set BRAINTRUST_API_KEY or pass --api-key."
    if isinstance(error, ValidationError):
        return f"invalid setting: {validation_problems(error, _setting_names(error))}"
    return " ".join(str(error).split())


def _setting_names(error: ValidationError) -> dict[str, str]:
    """How `error`'s message names each setting: its flag or, for a value the settings read from the
    environment, the variable set (pydantic names a variable's value by the setting's documented one,
    `BT_SYNC_TIMEOUT`, though it was read from the alias `BT_SYNC_TIMEOUT_S`)."""
    # Loaded by the time its settings fail; here, not at the top, to keep `--help` quick.
    from connector.config import ApiSettings, WarehouseSettings, read_from, variable_set

    if error.title not in (ApiSettings.__name__, WarehouseSettings.__name__):
        return _FLAGS
    names = dict(_FLAGS)
    for setting in (*ApiSettings.model_fields.values(), *WarehouseSettings.model_fields.values()):
        if variables := read_from(setting):
            names[variables[0]] = variable_set(setting) or variables[0]
    return names
