"""Grouping events into insert requests under the row and byte caps."""

from __future__ import annotations

from itertools import cycle, pairwise

import orjson
from hypothesis import given
from hypothesis import strategies as st

from connector.push.batch import Batch, batches

events = st.lists(st.binary(min_size=2, max_size=60).map(lambda b: orjson.dumps({"v": b.hex()})), max_size=80)


def chunked(numbered: list[tuple[int, bytes]], sizes: list[int]) -> list[tuple[list[int], list[bytes]]]:
    """`numbered` cut into chunks of these sizes (cycled), as a push's scan hands them over."""
    chunks, start = [], 0
    for size in cycle(sizes):
        if start >= len(numbered):
            return chunks
        part = numbered[start : start + size]
        chunks.append(([row for row, _ in part], [event for _, event in part]))
        start += size
    raise AssertionError("unreachable: `cycle` never ends")


@given(
    events=events,
    max_rows=st.integers(1, 20),
    max_bytes=st.integers(150, 600),
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=5),
)
def test_batches_respect_both_caps_and_keep_every_event_in_order(
    events: list[bytes], max_rows: int, max_bytes: int, sizes: list[int]
) -> None:
    numbered = list(enumerate(events, start=1))
    made = list(batches(chunked(numbered, sizes), max_rows=max_rows, max_bytes=max_bytes))
    assert [b.number for b in made] == list(range(len(made)))
    assert [(row, event) for b in made for row, event in zip(b.rows, b.events, strict=True)] == numbered
    for batch in made:
        assert 1 <= len(batch.events) <= max_rows
        assert len(batch.body) <= max_bytes
        assert orjson.loads(batch.body) == {"events": [orjson.loads(e) for e in batch.events]}
    for batch, following in pairwise(made):
        # Full: the next event would have broken a cap (fewer, larger requests).
        assert len(batch.events) == max_rows or len(batch.body) + 1 + len(following.events[0]) > max_bytes
    # However the events are cut into chunks, they make the same batches: a checkpoint's numbers depend on it.
    assert made == list(batches(chunked(numbered, [1]), max_rows=max_rows, max_bytes=max_bytes))


def test_a_batch_fills_up_to_the_byte_cap_exactly() -> None:
    # One-byte events too: an envelope or a comma miscounted by one byte, in the first batch or in any
    # after it, would let one more event in.
    for event in (b'{"v":"aa"}', b"1"):
        for count in (1, 2, 3):
            numbered = chunked(list(enumerate([event] * (3 * count))), [2])
            cap = len(Batch.of(0, [], [event] * count).body)
            made = list(batches(numbered, max_rows=10, max_bytes=cap))
            assert [len(batch.events) for batch in made] == [count] * 3
            if count > 1:
                sizes = [len(batch.events) for batch in batches(numbered, max_rows=10, max_bytes=cap - 1)]
                assert sizes[:-1] == [count - 1] * (len(sizes) - 1) and 1 <= sizes[-1] <= count - 1


def test_an_event_over_the_byte_cap_goes_alone() -> None:
    big, small = b'{"v":"' + b"x" * 200 + b'"}', b"1"
    # In chunks of two: a large event ends the first and the last chunk, one starts the third.
    numbered = chunked(list(enumerate([small, big, small, small, big, big])), [2])
    made = list(batches(numbered, max_rows=10, max_bytes=100))
    assert [batch.events for batch in made] == [[small], [big], [small, small], [big], [big]]


def test_halves_keep_the_batch_number_and_rows() -> None:
    batch = Batch.of(7, [10, 11, 12], [b"{}", b"[]", b"1"])
    first, second = batch.halves()
    assert (first, second) == (Batch.of(7, [10], [b"{}"]), Batch.of(7, [11, 12], [b"[]", b"1"]))
    assert (first.events, second.events) == ([b"{}"], [b"[]", b"1"])
    four = Batch.of(2, [1, 2, 3, 4], [b"1", b"2", b"3", b"4"])
    assert four.halves() == (Batch.of(2, [1, 2], [b"1", b"2"]), Batch.of(2, [3, 4], [b"3", b"4"]))


@given(
    st.lists(st.dictionaries(st.text(max_size=3), st.text(max_size=5), max_size=3), min_size=1, max_size=6)
)
def test_first_and_last_are_the_batch_s_first_and_last_events(values: list[dict[str, str]]) -> None:
    events = [orjson.dumps(value) for value in values]
    batch = Batch.of(0, list(range(len(events))), events)
    assert batch.first_and_last == (events[0], events[-1])
