"""Group serialised dataset events into insert requests under the size and row caps.

Batches are a pure function of the event stream and the caps, so the same file
pushed with the same options always yields the same numbered batches; that is
what lets a checkpoint of acknowledged batch numbers resume a push.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from connector.push.options import MAX_REQUEST_BYTES

_HEAD = b'{"events":['
_TAIL = b"]}"
MAX_EVENT_BYTES = MAX_REQUEST_BYTES - len(_HEAD) - len(_TAIL)


@dataclass(frozen=True, slots=True)
class Batch:
    """Events for one insert request.

    Args:
        number: position of the batch in the file, from 0; halves of a split batch keep it.
        rows: the file row number of each event.
        events: each event serialised as a JSON object.
    """

    number: int
    rows: list[int]
    events: list[bytes]

    def body(self) -> bytes:
        """The request body `{"events": [...]}`."""
        return _HEAD + b",".join(self.events) + _TAIL

    def halves(self) -> tuple[Batch, Batch]:
        """Split in two for a server that refused the whole batch as too large."""
        middle = len(self.events) // 2
        return (
            Batch(self.number, self.rows[:middle], self.events[:middle]),
            Batch(self.number, self.rows[middle:], self.events[middle:]),
        )


def batches(
    events: Iterable[tuple[int, bytes]], max_rows: int, max_bytes: int = MAX_REQUEST_BYTES
) -> Iterator[Batch]:
    """Group `(row number, event)` pairs into batches of at most `max_rows` events and `max_bytes` of body.

    Args:
        events: serialised events in file order, each at most `max_bytes` minus the envelope.
        max_rows: the most events in one request.
        max_bytes: the largest request body.
    """
    number = 0
    rows: list[int] = []
    pending: list[bytes] = []
    size = len(_HEAD) + len(_TAIL)
    for row, event in events:
        if pending and (len(pending) >= max_rows or size + 1 + len(event) > max_bytes):
            yield Batch(number, rows, pending)
            number, rows, pending, size = number + 1, [], [], len(_HEAD) + len(_TAIL)
        rows.append(row)
        pending.append(event)
        size += len(event) + (1 if len(pending) > 1 else 0)
    if pending:
        yield Batch(number, rows, pending)
