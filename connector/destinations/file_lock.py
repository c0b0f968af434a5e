"""Lock files that keep two bt-sync processes from writing the same thing at once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from connector.errors import WarehouseLocked

logger = logging.getLogger("bt_sync")


@contextmanager
def holding(path: Path, wait_s: float, holder: str, *, wait_setting: str = "") -> Iterator[None]:
    """Hold the lock file `path`, waiting up to `wait_s` for another process holding it.

    Args:
        path: the lock file (its directory is made).
        wait_s: how long to wait for it.
        holder: what the process holding it is doing (`syncing project_logs 'p' (id)`).
        wait_setting: the setting that sets `wait_s`, for long waits a user may shorten: the wait is then
            announced, or a sync waiting up to ten minutes said nothing at all.

    Raises:
        WarehouseLocked: it was still held after `wait_s`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if wait_setting and wait_s > 0:
                logger.warning(
                    "another bt-sync process is %s: waiting for it, up to %gs (%s)",
                    holder,
                    wait_s,
                    wait_setting,
                )
            lock.acquire(timeout=wait_s)
    except Timeout:
        suffix = f" ({wait_setting})" if wait_setting else ""
        raise WarehouseLocked(
            f"another bt-sync process is {holder} and still held it after {wait_s:g}s{suffix}"
        ) from None
    try:
        yield
    finally:
        lock.release()
