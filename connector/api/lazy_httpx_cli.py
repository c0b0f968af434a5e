"""Import httpx without its command line.

httpx 0.28 imports its own command line (`httpx._main`, with click, rich and pygments) on
`import httpx` whenever those are installed, as they are beside typer: about 0.09 s of every
bt-sync command's start, for a command line bt-sync never runs. Until httpx imports it lazily, a
stand-in takes its place and imports the real one only if `httpx.main` is called.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_CLI_MODULE = "httpx._main"


def defer_httpx_cli() -> None:
    """Have the next `import httpx` leave its command line unimported; nothing if httpx is imported."""
    if "httpx" in sys.modules or _CLI_MODULE in sys.modules:
        return
    stand_in = types.ModuleType(_CLI_MODULE)
    stand_in.main = _main  # type: ignore[attr-defined]  # a module of our making
    sys.modules[_CLI_MODULE] = stand_in


def _main(*args: Any, **kwargs: Any) -> Any:
    """httpx's `main`, imported now that it is called."""
    if getattr(sys.modules.get(_CLI_MODULE), "main", None) is _main:
        del sys.modules[_CLI_MODULE]
    return importlib.import_module(_CLI_MODULE).main(*args, **kwargs)
