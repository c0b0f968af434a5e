"""Let Ctrl-C stop a DuckDB statement that streams its result.

DuckDB looks for Ctrl-C only while it runs a statement whole (`execute`): one read through an
Arrow stream (`bt-sync sql`, `push --sql`) runs in C++ until its batch is done, and Python's own
handler waits for that, however long the query takes (a runaway query went on for minutes after
Ctrl-C). So, while the block runs, the signal's arrival is also written to a pipe (Python writes
it from its C handler, at once), and a thread reading the pipe interrupts the connection's query.
Python's handler then raises KeyboardInterrupt as soon as the interrupted call returns.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from connector.console import STOPPING

_STOP = b"\xff"  # not a signal number: tells the watcher the block ended


@contextmanager
def interruptible(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Within the block, Ctrl-C (or SIGTERM) interrupts the query `con` runs (only from the main thread,
    the one Python gives signals to)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)

    def watch() -> None:
        while (arrived := os.read(read_end, 64)) and _STOP[0] not in arrived:
            if any(signum in arrived for signum in STOPPING):  # SIGTERM stops bt-sync as Ctrl-C does
                con.interrupt()

    watcher = threading.Thread(target=watch, name="bt-sync-interrupt", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        os.write(write_end, _STOP)
        watcher.join()
        os.close(read_end)
        os.close(write_end)
