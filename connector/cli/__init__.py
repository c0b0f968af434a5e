"""The `bt-sync` command line: thin shells over the connector functions.

User mistakes and API failures surface as one line on stderr and a non-zero
exit code; a traceback only with `--debug`.
"""

from __future__ import annotations

import sys
import traceback

from pydantic import ValidationError

from connector.cli import catalog, demo, emulator, push, sync
from connector.cli.app import app
from connector.errors import BtSyncError, ConfigError

__all__ = ["app", "main"]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_COMMAND_MODULES = (catalog, demo, emulator, push, sync)  # importing a module registers its commands on `app`


def main() -> None:
    """Entry point of the `bt-sync` console script."""
    debug = "--debug" in sys.argv[1:]
    try:
        # Typer reports usage errors itself and exits; our own errors propagate to here.
        app()
    except KeyboardInterrupt:
        print("bt-sync: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except (BtSyncError, ValidationError) as error:
        if debug:
            traceback.print_exc()
        print(f"bt-sync: error: {_one_line(error)}", file=sys.stderr)
        sys.exit(EXIT_USAGE if isinstance(error, ConfigError | ValidationError) else EXIT_FAILURE)


def _one_line(error: Exception) -> str:
    if isinstance(error, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in issue['loc']) or 'value'}: {issue['msg']}" for issue in error.errors()
        )
        return f"invalid setting: {problems}"
    return " ".join(str(error).split())
