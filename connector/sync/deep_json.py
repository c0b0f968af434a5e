"""Read in Python a page nested deeper than Python's recursion limit, as DuckDB reads it.

DuckDB reads a JSON value nested to any depth; Python's reader and writer stop at the interpreter's
recursion limit, about 1,000 levels, with a RecursionError, which ended the whole sync with a
traceback. Work on a page that the limit stops is done again on a thread of its own, with a stack
large enough for `DEEPEST` levels (the reader and writer recurse in C, under 1 KB a level) and the
limit raised to match. Deeper still, the work fails as on text that is not JSON (ValueError). From
Python 3.12 the C code's own limit, which no setting raises, stops the reader first: a few
thousand levels.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEEPEST = 200_000
# The stack's address space is reserved, not used: only the levels actually reached take memory.
_STACK_BYTES = 512 << 20
# The recursion limit and the size of new threads' stacks are the process's: one deep read at a time.
_RAISING = threading.Lock()


def with_room_for_depth(work: Callable[[], T]) -> T:
    """`work()`, done again with room for `DEEPEST` levels if Python's recursion limit stops it.

    Raises:
        ValueError: a value nests deeper than Python's reader goes even then.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as error:  # handed to the calling thread, which raises it
            failure.append(error)

    # The first attempt too: on a stack of the usual size, work done while another thread has raised the
    # limit would overflow the stack, a crash, where the usual limit raises RecursionError.
    with _RAISING:
        try:
            return work()
        except RecursionError:
            pass
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, DEEPEST + limit))
        try:
            worker = threading.Thread(target=run, name="bt-sync-deep-json", daemon=True)
            previous = threading.stack_size(_STACK_BYTES)
            try:
                worker.start()
            except RuntimeError:  # no room for such a stack (`ulimit -v`, strict overcommit)
                failure.append(RecursionError())
            finally:
                threading.stack_size(previous)
            if not failure:
                worker.join()
        finally:
            sys.setrecursionlimit(limit)
    if failure:
        if isinstance(failure[0], RecursionError):
            raise ValueError("a value nests deeper than Python's JSON reader goes") from None
        raise failure[0]
    return outcome[0]
