"""The ids one read has already staged: 4 bytes an id in memory, the rest on disk.

Pages arrive newest version first, so the first version of an id a read sees
is its newest: later ones are dropped as they arrive, and the staged parts can
become the object's files as they are. A Python set of the ids themselves
would grow by about 100 bytes a row; this keeps 96 bits of each id's MD5 (the
upper 64 and 32 more checked on a match). Two ids are taken for one only if all
96 bits agree: for a hundred million ids, a chance of about 6 in 10^14.

The ids of the latest pages are one sorted array in memory, each page's merged
into it, until it holds `RECENT_IDS`; it is then merged into segments, sorted
by the upper 64 bits, each holding one range of them. A segment's 12-byte
entries are a file in the read's scratch directory; memory keeps only each
entry's top 32 bits, in the file's order. An id is looked for on disk only
where those 32 bits match: the ids the read saw before (an updated row's older
version) and about one id in 4,000 at a million ids. So memory grows by 4 bytes
a row, not 12: a million ids held 11.5 MiB when the whole hashes were in
memory, 3.9 MiB now. Merging rewrites one segment at a time, and only the
segments new ids fall in.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from itertools import count, pairwise
from pathlib import Path

import numpy as np
import numpy.typing as npt

Upper = npt.NDArray[np.uint64]
Lower = npt.NDArray[np.uint32]
# A segment file's entry: an id's upper 64 bits and its lowest 32, 12 bytes.
_ENTRY = np.dtype([("upper", "<u8"), ("lower", "<u4")])
# Merge the recent ids into the segments past this many (or at once, when a resumed read adds every id
# staged before): merging stays rare and their memory bounded. One array, not a run per page: a 200k
# sync's lookups, which searched each of up to 16 runs, took 63-68 ms, and take 27-35 ms.
RECENT_IDS = 16 * 8192
# A segment is cut into pieces of this many ids once it holds twice as many: a merge holds a segment's
# entries, read from its file, and their new version, at most 1.5 MB each.
SEGMENT_IDS = 65_536
# Past 32 segments of that size (two million ids), pieces are a 32nd of the set instead: a lookup costs
# a few NumPy calls a segment, which would otherwise grow with the object (at ten million ids, a
# fifth more than one sorted array).
_MAX_SEGMENTS = 32


@dataclass(frozen=True)
class _Segment:
    """Sorted ids on disk, and in memory their first upper half and every entry's top 32 bits."""

    path: Path
    first_upper: int
    tops: npt.NDArray[np.uint32]

    def entries(self) -> npt.NDArray[np.void]:
        return np.fromfile(self.path, dtype=_ENTRY)

    def found(self, upper: Upper, lower: Lower) -> npt.NDArray[np.bool_]:
        """For each sorted id, whether the segment holds it: read from disk where the top 32 bits match."""
        found = np.zeros(len(upper), dtype=bool)
        wanted = _top(upper)
        starts = np.searchsorted(self.tops, wanted, side="left")
        ends = np.searchsorted(self.tops, wanted, side="right")
        matching = np.flatnonzero(ends > starts)
        if not len(matching):
            return found
        size = _ENTRY.itemsize
        descriptor = os.open(self.path, os.O_RDONLY)
        try:
            read = b"".join(
                os.pread(descriptor, size * int(end - start), size * int(start))
                for start, end in zip(starts[matching], ends[matching], strict=True)
            )
        finally:
            os.close(descriptor)
        entries = np.frombuffer(read, dtype=_ENTRY)
        # Each entry read belongs to the id it was read for.
        owner = np.repeat(matching, (ends - starts)[matching])
        same = (entries["upper"] == upper[owner]) & (entries["lower"] == lower[owner])
        found[owner[same]] = True
        return found


class SeenIds:
    """A set of ids, each given as its MD5's upper 64 bits and lowest 32 (from DuckDB's `md5_number`).

    Args:
        directory: where the segment files go (created when needed; removed by `close`, and emptied
            first, since a killed read may have left files behind).
        segment_ids: the fewest ids a segment is cut to, once it holds twice as many.
        recent_ids: the most ids kept in memory whole before they are merged into the segments.
    """

    def __init__(self, directory: Path, segment_ids: int = SEGMENT_IDS, recent_ids: int = RECENT_IDS) -> None:
        self._directory = directory
        shutil.rmtree(directory, ignore_errors=True)
        self._segment_ids = segment_ids
        self._recent_ids = recent_ids
        # The ids added since the last merge, sorted by their upper halves.
        self._recent: tuple[Upper, Lower] = _no_ids()
        # Sorted, and in order: every upper of a segment is below every upper of the next.
        self._segments: list[_Segment] = []
        self._file_numbers = count()

    def __len__(self) -> int:
        return len(self._recent[0]) + sum(len(s.tops) for s in self._segments)

    def close(self) -> None:
        """Remove the segment files."""
        shutil.rmtree(self._directory, ignore_errors=True)

    def contains(self, upper: Upper, lower: Lower) -> npt.NDArray[np.bool_]:
        """For each id, whether it is in the set."""
        # In sorted order each binary search starts where the last one ended and stays in cache: a
        # page of 6,500 ids against a million takes about 2 ms instead of 5-7 ms in page order.
        order = None if _ascending(upper) else np.argsort(upper, kind="quicksort")
        if order is not None:
            upper, lower = upper[order], lower[order]
        found = _found_in(*self._recent, upper, lower)
        # Each id is looked up in the one segment whose range holds it.
        bounds = [0, *self._starts(upper), len(upper)] if self._segments else []
        for segment, (start, end) in zip(self._segments, pairwise(bounds), strict=True):
            if end > start:
                found[start:end] |= segment.found(upper[start:end], lower[start:end])
        if order is None:
            return found
        in_given_order = np.empty_like(found)
        in_given_order[order] = found
        return in_given_order

    def add(self, upper: Upper, lower: Lower) -> None:
        """Add ids (not already in the set)."""
        if not len(upper):
            return
        upper, lower = _sorted_by_upper(upper, lower)
        recent_upper, recent_lower = self._recent
        at = np.searchsorted(recent_upper, upper)
        self._recent = np.insert(recent_upper, at, upper), np.insert(recent_lower, at, lower)
        if len(self._recent[0]) > self._recent_ids:
            recent, self._recent = self._recent, _no_ids()
            self._merge(*recent)

    def _starts(self, upper: Upper) -> list[int]:
        """Where the sorted `upper` reaches each segment but the first."""
        firsts = np.array([segment.first_upper for segment in self._segments[1:]], dtype=np.uint64)
        return np.searchsorted(upper, firsts).tolist()  # type: ignore[no-any-return]

    def _merge(self, upper: Upper, lower: Lower) -> None:
        """Insert sorted ids into the segments, rewriting one segment at a time."""
        bounds = [0, *self._starts(upper), len(upper)]
        piece_ids = max(self._segment_ids, (len(self) + len(upper)) // _MAX_SEGMENTS)
        segments, self._segments = self._segments, []
        for start, end in pairwise(bounds):
            # Taken off the list, so that each old segment's memory is freed once its new version is made.
            segment = segments.pop(0) if segments else None
            if segment is not None and start == end:
                self._segments.append(segment)
                continue
            if segment is None:  # the first merge: one segment takes every id
                new_upper, new_lower = upper, lower
            else:
                old = segment.entries()
                at = np.searchsorted(old["upper"], upper[start:end])
                new_upper = np.insert(old["upper"], at, upper[start:end])
                new_lower = np.insert(old["lower"], at, lower[start:end])
                segment.path.unlink()
                del segment, old
            self._segments += [self._write(*piece) for piece in _split(new_upper, new_lower, piece_ids)]

    def _write(self, upper: Upper, lower: Lower) -> _Segment:
        self._directory.mkdir(parents=True, exist_ok=True)
        path = self._directory / f"segment-{next(self._file_numbers):06d}.ids"
        entries = np.empty(len(upper), dtype=_ENTRY)
        entries["upper"], entries["lower"] = upper, lower
        # Not `tofile`: on a full disk it raises without the system's reason, which is the user's message.
        with path.open("wb") as file:
            file.write(entries.data)
        return _Segment(path, int(upper[0]), _top(upper))


def _top(upper: Upper) -> npt.NDArray[np.uint32]:
    """The top 32 bits of each upper half: sorted where the uppers are."""
    return (upper >> np.uint64(32)).astype(np.uint32)


def _found_in(held_upper: Upper, held_lower: Lower, upper: Upper, lower: Lower) -> npt.NDArray[np.bool_]:
    """For each sorted id, whether the sorted ids `held_upper`, `held_lower` hold it."""
    found = np.zeros(len(upper), dtype=bool)
    if not len(held_upper):
        return found
    at = np.searchsorted(held_upper, upper)
    # Ids can share an upper half (rarely, but one id must not hide another): check each held entry
    # with it, not only the first.
    while True:
        entry = np.minimum(at, len(held_upper) - 1)
        same_upper = (at < len(held_upper)) & (held_upper[entry] == upper)
        if not same_upper.any():
            return found
        found |= same_upper & (held_lower[entry] == lower)
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
        pieces.append((upper[start:end], lower[start:end]))
        start = end
    if start < len(upper):  # none left when the last cut was pushed to the end by equal uppers
        pieces.append((upper[start:], lower[start:]))
    return pieces


def _sorted_by_upper(upper: Upper, lower: Lower) -> tuple[Upper, Lower]:
    if _ascending(upper):
        return upper, lower
    order = np.argsort(upper, kind="quicksort")
    return upper[order], lower[order]


def _no_ids() -> tuple[Upper, Lower]:
    return np.empty(0, np.uint64), np.empty(0, np.uint32)


def _ascending(upper: Upper) -> bool:
    """Whether the uppers are sorted already (staging hands them so): then they need no sorting."""
    return bool((upper[1:] >= upper[:-1]).all())
