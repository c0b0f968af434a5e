"""The ids a read has staged: a set of 96-bit hashes, whatever the order and number of additions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.sync.seen import SEGMENT_IDS, SeenIds

# Few distinct values of each part, so ids often share the upper 64 bits and differ in the lower 32,
# or the reverse.
uppers = st.integers(0, 6).map(lambda n: n * (2**61 + 12345))
lowers = st.integers(0, 6).map(lambda n: n * 700_000_001)
ids = st.tuples(uppers, lowers)


def arrays(pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([u for u, _ in pairs], dtype=np.uint64), np.array([v for _, v in pairs], dtype=np.uint32)


@given(
    additions=st.lists(st.lists(ids, max_size=6), max_size=40),
    probes=st.lists(ids, max_size=30),
    # Segments of one or two ids: merges split them, also where ids share an upper half.
    segment_ids=st.sampled_from([1, 2, SEGMENT_IDS]),
)
def test_it_holds_exactly_the_ids_added(
    additions: list[list[tuple[int, int]]], probes: list[tuple[int, int]], segment_ids: int
) -> None:
    seen, expected = SeenIds(segment_ids), set[tuple[int, int]]()
    for added in additions:
        new = [pair for pair in dict.fromkeys(added) if pair not in expected]
        seen.add(*arrays(new))
        expected.update(new)
        assert len(seen) == len(expected)
    found = seen.contains(*arrays(probes))
    assert found.tolist() == [pair in expected for pair in probes]


# Segments of 100 ids, or of one id, where a 32nd of the set (62 ids) is the piece instead.
@pytest.mark.parametrize("segment_ids", [100, 1])
def test_many_additions_merge_into_segments_and_lose_nothing(segment_ids: int) -> None:
    seen = SeenIds(segment_ids)
    rng = np.random.default_rng(1)
    upper = rng.integers(0, 2**63, 2_000, dtype=np.uint64)
    lower = rng.integers(0, 2**32, 2_000, dtype=np.uint32)
    # 40 additions: twice more than the runs kept apart, so the second merge meets several segments.
    for start in range(0, 2_000, 50):
        seen.add(upper[start : start + 50], lower[start : start + 50])
    assert len(seen) == 2_000
    assert seen.contains(upper, lower).all()
    assert not seen.contains(upper, lower + np.uint32(1)).any()
    assert not seen.contains(upper + np.uint64(1), lower).any()


@pytest.mark.parametrize("uppers", [(5, 7, 9), (5,)])
def test_ids_sharing_an_upper_half_are_found_in_segments_of_one_id(uppers: tuple[int, ...]) -> None:
    seen = SeenIds(segment_ids=1)
    pairs = [(upper, lower) for upper in uppers for lower in range(24 // len(uppers))]
    for pair in pairs:  # 24 additions: 17 merged into segments, cut only where the upper half changes
        seen.add(*arrays([pair]))
    assert seen.contains(*arrays(pairs)).all()
    assert not seen.contains(*arrays([(5, 99), (7, 99), (9, 99), (6, 0)])).any()
