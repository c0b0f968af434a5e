"""The spool gives back exactly the events written, in order, whatever their sizes."""

from __future__ import annotations

import random

from connector.push.spool import EventSpool


def test_events_come_back_in_order_across_read_blocks_and_after_a_restart() -> None:
    rng = random.Random(3)
    # Sizes around the 1 MiB read block, and empty ones: records cut at every kind of boundary.
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
    with EventSpool() as spool:
        spool.extend([99], [b"forgotten"])
        spool.restart()
        numbers, payloads = zip(*events, strict=True)
        # In two calls, as a push spools each chunk of rows.
        spool.extend(numbers[:100], payloads[:100])
        spool.extend(numbers[100:], payloads[100:])
        assert list(spool.events()) == events
        assert list(spool.events()) == events
