"""Hold Ctrl-C (and the SIGTERM a scheduler sends) back while a few statements that belong together run.

Python raises KeyboardInterrupt between any two bytecodes of the main thread: between a push's
checkpoint of an acknowledged batch and its count of the batch's rows, it made the interrupted push
say one batch less than it had checkpointed, and the rerun's "already sent" then disagreed with it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_STOPPING = (signal.SIGINT, signal.SIGTERM)


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

    previous = {signum: signal.signal(signum, note) for signum in _STOPPING}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if arrived:
            signal.raise_signal(arrived[0])
