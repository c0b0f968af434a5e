"""Turning `connector` errors into Dagster failures that are retried only when retrying can help."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from connector.errors import BtSyncError, TerminalError


@contextmanager
def terminal_errors_fail_without_retry() -> Iterator[None]:
    """Re-raise terminal errors (bad key, missing object, bad file) as `dg.Failure(allow_retries=False)`.

    Transient errors (API unavailable, DuckDB file locked) propagate unchanged, so
    the step's `RetryPolicy` tries again.
    """
    try:
        yield
    except BtSyncError as error:
        if isinstance(error, TerminalError):
            raise dg.Failure(description=str(error), allow_retries=False) from error
        raise
