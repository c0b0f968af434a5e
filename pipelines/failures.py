"""Turning `connector` errors into Dagster step failures that are retried only when retrying can help.

A step with a `RetryPolicy` is retried after any exception but `dg.Failure(allow_retries=False)`.
So terminal errors (`TerminalError`: a bad key, a deleted object, a bad file) become such a
failure, and transient ones (`TransientError`: the API unavailable, the object locked by another
process) propagate unchanged for the policy to retry, as do errors bt-sync did not foresee.
"""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import dagster as dg
from pydantic import ValidationError

from connector.errors import BtSyncError, TerminalError, TransientError, validation_problems


@contextmanager
def terminal_errors_fail_without_retry() -> Iterator[None]:
    """Re-raise terminal errors as `dg.Failure(allow_retries=False)`; let everything else through."""
    try:
        yield
    except BtSyncError as error:
        if isinstance(error, TerminalError):
            raise dg.Failure(description=str(error), allow_retries=False) from error
        raise


@contextmanager
def invalid_config_fails_without_retry(what: str) -> Iterator[None]:
    """Re-raise a run config that `connector` refuses as one line, `dg.Failure(allow_retries=False)`.

    Args:
        what: whose config, for the message ("push", "sync").
    """
    try:
        yield
    except ValidationError as error:
        raise dg.Failure(
            description=f"invalid {what} config: {validation_problems(error)}", allow_retries=False
        ) from None


def partition_failures(errors: Mapping[str, Exception], partitions: int) -> Exception:
    """The error of a run some of whose partitions failed (the others were materialized).

    A run of one partition fails with its own error (the run names the partition). A run of several
    fails with one `dg.Failure` naming each failed partition, retried if any of them may succeed on
    retry: a range's run (a reconcile's) said what failed, not where.

    Args:
        errors: the error of each failed partition, by partition key.
        partitions: how many partitions the run materializes.
    """
    if partitions == 1 and len(errors) == 1:
        return next(iter(errors.values()))
    retry = any(isinstance(error, TransientError) for error in errors.values())
    listing = "; ".join(f"{key}: {error}" for key, error in errors.items())
    failed = "1 partition" if len(errors) == 1 else f"{len(errors)} partitions"
    return dg.Failure(description=f"{failed} failed: {listing}", allow_retries=retry)
