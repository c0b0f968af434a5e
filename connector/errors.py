"""Errors raised by bt-sync.

Every error a user can cause or fix derives from :class:`BtSyncError` and carries
a one-line message that says what to do. The marker mixins tell retry logic
(ours and Dagster's ``RetryPolicy``) whether trying again can help.

    BtSyncError
    ├── ConfigError            bad flag, environment variable or path        (terminal)
    │   └── MissingApiKey      no API key given or in the environment        (terminal)
    ├── ApiError               the Braintrust API answered with an error
    │   ├── AuthError          401/403: key missing, wrong or not allowed    (terminal)
    │   ├── NotFoundError      404: the project/experiment/dataset is gone   (terminal)
    │   ├── RequestError       other 4xx: the request itself is wrong        (terminal)
    │   ├── PayloadTooLarge    413: split the request and send again         (terminal)
    │   ├── MalformedResponse  a response bt-sync cannot trust (null ids...) (terminal)
    │   └── ServerUnavailable  429/5xx/timeouts/connection errors, retries exhausted (transient)
    ├── PaginationError        a cursor repeated or stopped advancing       (transient)
    ├── WarehouseError         the warehouse files cannot be read or written (terminal)
    ├── WarehouseLocked        another process is syncing the same object  (transient)
    ├── StateError             the sync state is unreadable or inconsistent  (terminal)
    ├── PushError              a push input file is invalid                  (terminal)
    ├── QueryError             a SQL query over the tables failed            (terminal)
    ├── SyncIncomplete         some objects failed; the others were synced   (terminal)
    └── Interrupted            stopped by the user (Ctrl-C)                 (transient)
"""

from __future__ import annotations

import errno
import os
import resource
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class TransientError:
    """Marker: the same call may succeed if retried later."""


class TerminalError:
    """Marker: retrying the same call cannot succeed; something must change first."""


class BtSyncError(Exception):
    """Base class of every error bt-sync raises on purpose."""


class ConfigError(BtSyncError, TerminalError):
    """A flag, environment variable or path is missing or invalid."""


class MissingApiKey(ConfigError):
    """No API key was given and `BRAINTRUST_API_KEY` is unset or blank: each caller says where to give one."""


class ApiMisdirected(ConfigError):
    """The API URL leads nowhere bt-sync can talk to: a redirect, or TLS that cannot be set up."""


class ApiError(BtSyncError):
    """The Braintrust API answered with an error status.

    Args:
        message: what went wrong and what to do, never containing the API key.
        status: the HTTP status, or None when no response arrived.
        said: what the server's answer said, the key hidden ("" if nothing), for a message of its own.
    """

    def __init__(self, message: str, status: int | None = None, *, said: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.said = said


class AuthError(ApiError, TerminalError):
    """The API key is missing, wrong, or lacks permission (401/403)."""


class NotFoundError(ApiError, TerminalError):
    """The requested object does not exist (404)."""


class RequestError(ApiError, TerminalError):
    """The API rejected the request itself (a 4xx other than 401/403/404/413/429)."""


class PayloadTooLarge(ApiError, TerminalError):
    """The request body was over the server's size limit (413)."""


class MalformedResponse(ApiError, TerminalError):
    """A response breaks the API's contract (an event without an id, a `_xact_id` that is not a number)."""


class ServerUnavailable(ApiError, TransientError):
    """The API kept failing with 429/5xx, timeouts or dropped connections after all retries."""


class PaginationError(BtSyncError, TransientError):
    """The fetch cursor repeated or did not advance: stopping instead of looping."""


class WarehouseError(BtSyncError, TerminalError):
    """The DuckDB file, the Parquet root or the Iceberg catalog cannot be opened, read or written."""


class TableChanged(WarehouseError):
    """A table's columns were changed outside bt-sync: an event table's objects each fail, and the run
    goes on (its other tables are writable); a catalog table's fails the sync."""


class UnreadableFiles(WarehouseError):
    """Files of an object's rows cannot be read (damaged on disk): set aside, for a sync to rebuild it."""


class WarehouseLocked(BtSyncError, TransientError):
    """Another process is syncing the same object; it still held the object's lock after waiting."""


class StateError(BtSyncError, TerminalError):
    """The stored sync state is unreadable or inconsistent with the warehouse."""


class PushError(BtSyncError, TerminalError):
    """A push cannot go on: its input or mapping is invalid, the file changed, or its rows have no room."""


class QueryError(BtSyncError, TerminalError):
    """A SQL query over the synced tables is invalid, writes, or failed."""


class SyncIncomplete(BtSyncError, TerminalError):
    """Some objects could not be synced (each is named); every other object was synced and committed."""


class OutputError(BtSyncError, TerminalError):
    """Standard output cannot be written (its disk is full)."""


class Interrupted(BtSyncError, TransientError):
    """The user stopped the command (Ctrl-C); the message says what was kept."""


def validation_problems(error: ValidationError, names: Mapping[str, str] | None = None) -> str:
    """A pydantic error's problems on one line: `where: what; …`.

    Args:
        error: the error.
        names: how to spell a field in the message (a flag for its field name), where it differs.
    """
    spelled = names or {}
    problems = []
    for issue in error.errors():
        # A problem of no one field (a model's validator) names its fields itself.
        where = ".".join(spelled.get(str(part), str(part)) for part in issue["loc"])
        # pydantic's prefix for a validator's own ValueError says nothing to a user.
        what = issue["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {what}" if where else what)
    return "; ".join(problems)


def first_line(error: BaseException) -> str:
    """An error's message up to its first line break, or its type's name if it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def one_line_reason(error: BaseException) -> str:
    """A library error's cause on one line (`No space left on device` out of DuckDB's JSON-wrapped errors)."""
    text = str(error).strip()
    marker = '"exception_message":"'
    if marker in text:
        # DuckDB wraps the failing operation's own error as JSON inside its message.
        text = text.split(marker, 1)[1].split('","', 1)[0].replace('\\"', '"')
    if not text:
        return type(error).__name__
    return noting_file_size_limit(" ".join(text.splitlines()[0].split()))


def os_reason(error: OSError) -> str:
    """The system's reason an `OSError` gives (`strerror`, else the whole error), noting the file-size
    limit (`noting_file_size_limit`)."""
    return noting_file_size_limit(error.strerror or str(error))


def noting_file_size_limit(reason: str) -> str:
    """`reason`, and the process's file-size limit where it is the system's "File too large": `ulimit -f`'s
    refusal said that alone (staging a page, writing the rejects or a query's result), the cause left to
    guess."""
    return reason + file_size_limit() if os.strerror(errno.EFBIG) in reason else reason


def file_size_limit() -> str:
    """The process's limit on a file's size, when it has one, for a write that failed: DuckDB reports the
    EFBIG of `ulimit -f` as it reports a full disk, and the disk's free bytes then pointed elsewhere."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit == resource.RLIM_INFINITY:
        return ""
    return f"; this process may write files of at most {limit:,} bytes (its file-size limit, `ulimit -f`)"


# A write that found no room: a full disk, a quota spent, the file-size limit (`ulimit -f`).
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def for_want_of_room(error: BaseException) -> bool:
    """Whether `error`, or an error that caused it, is a write that found no room (DuckDB's and Arrow's
    say so in their text only)."""
    reasons = [os.strerror(code) for code in _NO_ROOM]
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in _NO_ROOM:
            return True
        if any(reason in str(cause) for reason in reasons):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def in_the_way(error: OSError) -> str | None:
    """What to say when a file stands where the path an `OSError` names needs a directory, if that is its
    cause: `mkdir` of such a path says only "File exists" or "Not a directory", naming the path."""
    if error.errno not in (errno.EEXIST, errno.ENOTDIR) or not error.filename:
        return None
    return in_the_way_of(Path(os.fsdecode(error.filename)))


def loops(path: Path) -> bool:
    """Whether `path`, or a directory on it, is a loop of symbolic links (`Path.exists` says False)."""
    try:
        path.stat()
    except OSError as error:
        return error.errno == errno.ELOOP
    return False


def in_the_way_of(directory: Path) -> str | None:
    """What to say when a file stands at `directory` or at one of its parents, if one does."""
    file = next((part for part in (directory, *directory.parents) if part.is_file()), None)
    return None if file is None else f"{file} is a file where a directory is needed"
