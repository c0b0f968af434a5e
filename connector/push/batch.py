"""Group serialised dataset events into insert requests under the size and row caps.

Batches are a pure function of the event stream and the caps, so the same file
pushed with the same options always yields the same numbered batches; that is
what lets a checkpoint of acknowledged batch numbers resume a push.
"""

from __future__ import annotations

import operator
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, repeat

from connector.push.options import MAX_REQUEST_BYTES

_HEAD = b'{"events":['
_TAIL = b"]}"
MAX_EVENT_BYTES = MAX_REQUEST_BYTES - len(_HEAD) - len(_TAIL)
# The envelope's bytes less the comma that `batches` counts after the last event.
_EMPTY_BODY = len(_HEAD) + len(_TAIL) - 1


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
    chunks: Iterable[tuple[Sequence[int], Sequence[bytes]]], max_rows: int, max_bytes: int = MAX_REQUEST_BYTES
) -> Iterator[Batch]:
    """Group events into batches of at most `max_rows` events and `max_bytes` of body.

    A batch is full when the next event would break a cap; the same events make the same batches
    however they are cut into chunks.

    Args:
        chunks: (row numbers, events) in file order, each event serialised, at most `max_bytes` minus
            the envelope.
        max_rows: the most events in one request.
        max_bytes: the largest request body.
    """
    number = 0
    rows: list[int] = []
    pending: list[bytes] = []
    # The body's bytes once `pending` is sent, counting a comma after every event and none after the last.
    size = _EMPTY_BODY
    for chunk_rows, events in chunks:
        # `taken[i]`: the bytes the chunk's first i events add, each with its comma; in C, not per event.
        taken = list(accumulate(map(operator.add, map(len, events), repeat(1)), initial=0))
        start = 0
        while start < len(events):
            most = min(len(events), start + max_rows - len(pending))
            end = max(start, bisect_right(taken, max_bytes - size + taken[start], start, most + 1) - 1)
            if not pending and end == start:
                end += 1  # alone, an event goes out whatever its size
            rows += chunk_rows[start:end]
            pending += events[start:end]
            size += taken[end] - taken[start]
            start = end
            if start < len(events):
                yield Batch(number, rows, pending)
                number, rows, pending, size = number + 1, [], [], _EMPTY_BODY
    if pending:
        yield Batch(number, rows, pending)
