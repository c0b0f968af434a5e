"""The `bt-sync` console script: the command line, and Ctrl-C (or SIGTERM, SIGHUP) while it loads.

Loading the command line (typer, pydantic and the commands' modules) takes a tenth of a second, before
`connector.cli.run` can take Ctrl-C as it does at any later moment. So this module, which loads
nothing, starts it, and answers an interrupt during that load the same way.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from types import FrameType
from typing import NoReturn

EXIT_INTERRUPTED = 130


def run() -> NoReturn:
    """Load and run the command line; Ctrl-C while it loads ends the process as `bt-sync: interrupted`."""
    # pydantic looks for plugins among every installed package's entry points when it builds its first
    # validator: 20-30 ms of every command. bt-sync has no use for them; `PYDANTIC_DISABLE_PLUGINS=` (empty)
    # in the environment brings them back.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    take_sigterm_as_ctrl_c()
    try:
        from connector.cli import run as run_command_line
    except KeyboardInterrupt:
        print("bt-sync: interrupted", file=sys.stderr)
        # Under `--json`, the error document a command prints when it stops before its summary.
        if "--json" in before_values(sys.argv[1:]):
            print(error_document("interrupted", EXIT_INTERRUPTED))
        sys.stdout.flush()
        os._exit(EXIT_INTERRUPTED)
    run_command_line()


# A scheduler stops a job with SIGTERM; a terminal closing sends SIGHUP to what runs in it.
TAKEN_AS_CTRL_C = (signal.SIGTERM, signal.SIGHUP)
# The signals that stop a command: Ctrl-C's, and those taken as it.
STOPPING = (signal.SIGINT, *TAKEN_AS_CTRL_C)


def take_sigterm_as_ctrl_c() -> None:
    """SIGTERM (or SIGHUP) stops the command as Ctrl-C does (a push says what it checkpointed, `--json`
    prints its error document), rather than killing it silently. Left alone where ignored (`nohup`)."""
    for signum in TAKEN_AS_CTRL_C:
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, stop_as_at_ctrl_c)


def stop_as_at_ctrl_c(signum: int, frame: FrameType | None) -> NoReturn:
    """A signal handler raising what Ctrl-C raises."""
    raise KeyboardInterrupt


def error_document(message: str, code: int) -> str:
    """What `--json` prints, in place of its summary, for a command that failed."""
    return json.dumps({"error": message, "exit_code": code}, indent=2, ensure_ascii=False)


def before_values(arguments: list[str]) -> list[str]:
    """The arguments before `--`: after it every argument is a value (`bt-sync sql -- "--debug"`), never an
    option."""
    return arguments[: arguments.index("--")] if "--" in arguments else arguments
