"""The ids a read has staged: a set of 96-bit hashes, whatever the order and number of additions."""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.sync.seen import RECENT_IDS, SEGMENT_IDS, SeenIds
from tests.helpers import SmallDisk

# Few distinct values of each part, so ids often share the upper 64 bits and differ in the lower 32,
# or the reverse, and often share the top 32 bits kept in memory and differ below them.
uppers = st.tuples(st.integers(0, 3), st.integers(0, 3)).map(lambda n: n[0] * (2**61 + 12345) + n[1] * 2**20)
lowers = st.integers(0, 6).map(lambda n: n * 700_000_001)
ids = st.tuples(uppers, lowers)


def arrays(pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([u for u, _ in pairs], dtype=np.uint64), np.array([v for _, v in pairs], dtype=np.uint32)


# Each example writes files: on a loaded machine some took longer than Hypothesis's 200 ms deadline.
@settings(deadline=None)
@given(
    additions=st.lists(st.lists(ids, max_size=6), max_size=40),
    probes=st.lists(ids, max_size=30),
    # Segments of one or two ids: merges split them, also where ids share an upper half.
    segment_ids=st.sampled_from([1, 2, SEGMENT_IDS]),
    # Merged into the segments after every addition, after a few, or never.
    recent_ids=st.sampled_from([0, 5, 16, RECENT_IDS]),
)
def test_it_holds_exactly_the_ids_added(
    additions: list[list[tuple[int, int]]], probes: list[tuple[int, int]], segment_ids: int, recent_ids: int
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        seen, expected = SeenIds(Path(directory) / "seen", segment_ids, recent_ids), set[tuple[int, int]]()
        for added in additions:
            new = [pair for pair in dict.fromkeys(added) if pair not in expected]
            seen.add(*arrays(new))
            expected.update(new)
            assert len(seen) == len(expected)
        found = seen.contains(*arrays(probes))
        assert found.tolist() == [pair in expected for pair in probes]


# Segments of 100 ids, or of one id, where a 32nd of the set (62 ids) is the piece instead.
@pytest.mark.parametrize("segment_ids", [100, 1])
def test_many_additions_merge_into_segments_and_lose_nothing(segment_ids: int, tmp_path: Path) -> None:
    # Merged past 800 ids: after the 17th and the 34th additions, the second meeting several segments.
    seen = SeenIds(tmp_path / "seen", segment_ids, recent_ids=800)
    rng = np.random.default_rng(1)
    upper = rng.integers(0, 2**63, 2_000, dtype=np.uint64)
    lower = rng.integers(0, 2**32, 2_000, dtype=np.uint32)
    for start in range(0, 2_000, 50):
        seen.add(upper[start : start + 50], lower[start : start + 50])
    assert len(seen) == 2_000
    assert seen.contains(upper, lower).all()
    assert not seen.contains(upper, lower + np.uint32(1)).any()
    assert not seen.contains(upper + np.uint64(1), lower).any()


@pytest.mark.parametrize("uppers", [(5, 7, 9), (5,)])
def test_ids_sharing_an_upper_half_are_found_in_segments_of_one_id(
    uppers: tuple[int, ...], tmp_path: Path
) -> None:
    seen = SeenIds(tmp_path / "seen", segment_ids=1)
    pairs = [(upper, lower) for upper in uppers for lower in range(24 // len(uppers))]
    for pair in pairs:  # 24 additions: 17 merged into segments, cut only where the upper half changes
        seen.add(*arrays([pair]))
    assert seen.contains(*arrays(pairs)).all()
    assert not seen.contains(*arrays([(5, 99), (7, 99), (9, 99), (6, 0)])).any()


def test_memory_holds_four_bytes_an_id_and_the_files_are_removed_on_close(tmp_path: Path) -> None:
    directory = tmp_path / "seen"
    seen = SeenIds(directory)
    rng = np.random.default_rng(2)
    upper = rng.integers(0, 2**64, 300_000, dtype=np.uint64)
    lower = rng.integers(0, 2**32, 300_000, dtype=np.uint32)
    for start in range(0, 300_000, 6_000):
        seen.add(upper[start : start + 6_000], lower[start : start + 6_000])
    recent_upper, recent_lower = seen._recent
    recent = len(recent_upper)
    in_memory = recent_upper.nbytes + recent_lower.nbytes + sum(s.tops.nbytes for s in seen._segments)
    assert 0 < recent <= RECENT_IDS
    assert in_memory == 12 * recent + 4 * (300_000 - recent)
    assert sum(file.stat().st_size for file in directory.iterdir()) == 12 * (300_000 - recent)
    assert seen.contains(upper[::7], lower[::7]).all()
    seen.close()
    assert not directory.exists()


def test_files_a_killed_read_left_are_cleared(tmp_path: Path) -> None:
    directory = tmp_path / "seen"
    directory.mkdir()
    (directory / "segment-000000.ids").write_bytes(b"\0" * 12)
    seen = SeenIds(directory)
    assert not seen.contains(*arrays([(0, 0)])).any()
    assert not directory.exists()


def test_a_full_disk_fails_with_the_systems_reason(small_disk: SmallDisk) -> None:
    seen = SeenIds(small_disk.path / "seen")
    rng = np.random.default_rng(3)
    upper = rng.integers(0, 2**64, 300_000, dtype=np.uint64)  # 3.6 MB of entries: more than the disk
    lower = rng.integers(0, 2**32, 300_000, dtype=np.uint32)
    with pytest.raises(OSError, match="No space left on device") as failure:
        for start in range(0, 300_000, 6_000):
            seen.add(upper[start : start + 6_000], lower[start : start + 6_000])
    assert failure.value.errno == errno.ENOSPC


def test_ids_given_sorted_or_in_any_order_are_found_alike(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    upper = rng.integers(0, 2**64, 5_000, dtype=np.uint64)
    lower = rng.integers(0, 2**32, 5_000, dtype=np.uint32)
    order = np.argsort(upper)
    seen = SeenIds(tmp_path / "seen", recent_ids=3_000)
    seen.add(upper[:2_000], lower[:2_000])  # in any order
    seen.add(upper[order][::2], lower[order][::2])  # sorted: past 3,000 ids, merged into segments
    expected = np.isin(np.arange(5_000), np.concatenate([np.arange(2_000), order[::2]]))
    assert (seen.contains(upper, lower) == expected).all()
    assert (seen.contains(upper[order], lower[order]) == expected[order]).all()
