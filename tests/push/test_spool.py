"""The spool gives back exactly the batches written, in order, whatever the sizes of their events."""

from __future__ import annotations

import random
from itertools import pairwise

from connector.push.batch import Batch
from connector.push.spool import EventSpool


def test_batches_come_back_in_order_across_read_blocks_and_after_a_restart() -> None:
    rng = random.Random(3)
    # Sizes around the 1 MiB buffer, and empty ones: records cut at every kind of boundary.
    sizes = [
        0,
        1,
        5,
        1 << 20,
        (1 << 20) - 3,
        7,
        (1 << 21) + 11,
        *(rng.randrange(0, 70_000) for _ in range(200)),
    ]
    events = [(number * 3 + 1, rng.randbytes(size)) for number, size in enumerate(sizes)]
    # Batches of one event, of none, and of many; numbered as a push numbers them, from 0.
    cuts = [0, 1, 1, 4, 90, len(events)]
    written = [
        Batch.of(number, [row for row, _ in events[start:end]], [event for _, event in events[start:end]])
        for number, (start, end) in enumerate(pairwise(cuts))
    ]
    with EventSpool() as spool:
        spool.append(Batch.of(7, [99], [b"forgotten"]))
        spool.restart()
        for batch in written:
            spool.append(batch)
        assert list(spool.batches()) == written
        # Read again, as a push whose rows repeat an id reads them to regroup them.
        assert list(spool.batches()) == written
