"""The ids one read has already staged, kept in 12 bytes an id.

Pages arrive newest version first, so the first version of an id a read sees
is its newest: later ones are dropped as they arrive, and the staged parts can
become the object's files as they are. A Python set of the ids themselves
would grow by about 100 bytes a row; this keeps 96 bits of each id's MD5 in
sorted NumPy arrays (sorted by the upper 64 bits, 32 more checked on a match),
so memory stays flat in the size of the object. Two ids are taken for one only
if all 96 bits agree: for a hundred million ids, a chance of about 6 in 10^14.

Each page's ids are a run of their own until there are `_MAX_RUNS`; the runs
are then merged into segments, sorted arrays that each hold one range of the
hashes. Merging rewrites one segment at a time: when each merge rewrote one
array of all the ids, it held the array and its new copy at once (20 bytes an
id), and a million-row sync peaked 7-9 MB higher.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import numpy.typing as npt

Upper = npt.NDArray[np.uint64]
Lower = npt.NDArray[np.uint32]
# Merge the runs into the segments when there are more: lookups stay cheap and merging stays rare.
_MAX_RUNS = 16
# A segment is cut into pieces of this many ids once it holds twice as many: a merge holds at most
# 1.5 MB twice, the segment it rewrites.
SEGMENT_IDS = 65_536
# Past 32 segments of that size (two million ids), pieces are a 32nd of the set instead: a lookup costs
# a few NumPy calls a segment, which would otherwise grow with the object (at ten million ids, a
# fifth more than one sorted array).
_MAX_SEGMENTS = 32


class SeenIds:
    """A set of ids, each given as its MD5's upper 64 bits and lowest 32 (from DuckDB's `md5_number`).

    Args:
        segment_ids: the fewest ids a segment is cut to, once it holds twice as many.
    """

    def __init__(self, segment_ids: int = SEGMENT_IDS) -> None:
        self._segment_ids = segment_ids
        self._runs: list[tuple[Upper, Lower]] = []
        # Sorted, and in order: every upper of a segment is below every upper of the next.
        self._segments: list[tuple[Upper, Lower]] = []

    def __len__(self) -> int:
        return sum(len(upper) for upper, _ in (*self._runs, *self._segments))

    def contains(self, upper: Upper, lower: Lower) -> npt.NDArray[np.bool_]:
        """For each id, whether it is in the set."""
        # In sorted order each binary search starts where the last one ended and stays in cache: a
        # page of 6,500 ids against a million takes about 2 ms instead of 5-7 ms in page order.
        order = np.argsort(upper, kind="quicksort")
        upper, lower = upper[order], lower[order]
        found = np.zeros(len(upper), dtype=bool)
        for run_upper, run_lower in self._runs:
            found |= _found_in(run_upper, run_lower, upper, lower)
        # Each id is looked up in the one segment whose range holds it.
        bounds = [0, *self._starts(upper), len(upper)] if self._segments else []
        for (segment_upper, segment_lower), (start, end) in zip(
            self._segments, pairwise(bounds), strict=True
        ):
            found[start:end] |= _found_in(segment_upper, segment_lower, upper[start:end], lower[start:end])
        in_page_order = np.empty_like(found)
        in_page_order[order] = found
        return in_page_order

    def add(self, upper: Upper, lower: Lower) -> None:
        """Add ids (not already in the set)."""
        if len(upper):
            self._runs.append(_sorted_run(upper, lower))
        if len(self._runs) > _MAX_RUNS:
            runs, self._runs = self._runs, []
            recent = _sorted_run(np.concatenate([u for u, _ in runs]), np.concatenate([v for _, v in runs]))
            del runs
            self._merge(*recent)

    def _starts(self, upper: Upper) -> list[int]:
        """Where the sorted `upper` reaches each segment but the first."""
        firsts = np.array([segment_upper[0] for segment_upper, _ in self._segments[1:]], dtype=np.uint64)
        return np.searchsorted(upper, firsts).tolist()  # type: ignore[no-any-return]

    def _merge(self, upper: Upper, lower: Lower) -> None:
        """Insert sorted ids into the segments, one segment at a time."""
        bounds = [0, *self._starts(upper), len(upper)]
        piece_ids = max(self._segment_ids, (len(self) + len(upper)) // _MAX_SEGMENTS)
        # Before the first merge, one empty segment takes every id.
        segments, self._segments = self._segments or [(upper[:0], lower[:0])], []
        for start, end in pairwise(bounds):
            # Taken off the list, so that each old segment is freed once its new version is made.
            segment_upper, segment_lower = segments.pop(0)
            at = np.searchsorted(segment_upper, upper[start:end])
            new_upper = np.insert(segment_upper, at, upper[start:end])
            new_lower = np.insert(segment_lower, at, lower[start:end])
            del segment_upper, segment_lower
            self._segments += _split(new_upper, new_lower, piece_ids)


def _found_in(run_upper: Upper, run_lower: Lower, upper: Upper, lower: Lower) -> npt.NDArray[np.bool_]:
    """For each sorted id, whether the sorted run holds it."""
    found = np.zeros(len(upper), dtype=bool)
    if not len(run_upper):
        return found
    at = np.searchsorted(run_upper, upper)
    # Ids can share an upper half (rarely, but one id must not hide another): check each entry of a
    # run holding it, not only the first.
    while True:
        entry = np.minimum(at, len(run_upper) - 1)
        same_upper = (at < len(run_upper)) & (run_upper[entry] == upper)
        if not same_upper.any():
            return found
        found |= same_upper & (run_lower[entry] == lower)
        at = at + same_upper


def _split(upper: Upper, lower: Lower, piece_ids: int) -> list[tuple[Upper, Lower]]:
    """A merged segment, or pieces of about `piece_ids` ids when it holds more than twice as many.

    A cut never falls between equal uppers: a lookup searches only the segment where an upper starts.
    """
    if len(upper) <= 2 * piece_ids:
        return [(upper, lower)]
    pieces: list[tuple[Upper, Lower]] = []
    start = 0
    while len(upper) - start > 2 * piece_ids:
        end = start + piece_ids
        while end < len(upper) and upper[end] == upper[end - 1]:
            end += 1
        # Copies, so the merged arrays are freed once the pieces are taken.
        pieces.append((upper[start:end].copy(), lower[start:end].copy()))
        start = end
    if start < len(upper):  # none left when the last cut was pushed to the end by equal uppers
        pieces.append((upper[start:].copy(), lower[start:].copy()))
    return pieces


def _sorted_run(upper: Upper, lower: Lower) -> tuple[Upper, Lower]:
    order = np.argsort(upper, kind="quicksort")
    return upper[order], lower[order]
