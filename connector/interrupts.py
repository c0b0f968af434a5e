"""Hold Ctrl-C (and the SIGTERM a scheduler sends) back while a few statements that belong together run;
know it again where DuckDB reported it as an error of its own.

Python raises KeyboardInterrupt between any two bytecodes of the main thread: between a push's
checkpoint of an acknowledged batch and its count of the batch's rows, it made the interrupted push
say one batch less than it had checkpointed, and the rerun's "already sent" then disagreed with it.
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from connector.console import STOPPING

# How DuckDB reports a KeyboardInterrupt raised while it read a Python object registered with it (a
# page's body, a catalog's rows): as an error of its own, naming the object and ending with the
# exception's name (after its traceback, when the exception came from Python code of the object's).
_IN_DUCKDB = re.compile(r"registered as '[^']*' failed: .*\bKeyboardInterrupt:?\s*$", re.DOTALL)


def raise_if_interrupted(error: BaseException) -> None:
    """Raise KeyboardInterrupt if `error` is DuckDB's report of one (Ctrl-C, or SIGTERM, while DuckDB read
    a Python object): taken for a malformed page, it failed one object and the sync went on."""
    if _IN_DUCKDB.search(str(error)):
        raise KeyboardInterrupt from None


@contextmanager
def deferred() -> Iterator[None]:
    """Within the block, a stopping signal only is noted; it is raised again once the block ended.

    Only on the main thread, the one Python gives signals to; elsewhere the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []

    def note(signum: int, _frame: FrameType | None) -> None:
        arrived.append(signum)

    previous = {signum: signal.signal(signum, note) for signum in STOPPING}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if arrived:
            signal.raise_signal(arrived[0])
