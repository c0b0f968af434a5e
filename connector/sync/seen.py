"""The ids one read has already staged, kept in 12 bytes an id.

Pages arrive newest version first, so the first version of an id a read sees
is its newest: later ones are dropped as they arrive, and the staged parts can
become the object's files as they are. A Python set of the ids themselves
would grow by about 100 bytes a row; this keeps 96 bits of each id's MD5 in
sorted NumPy runs (sorted by the upper 64 bits, 32 more checked on a match),
so memory stays flat in the size of the object. Two ids are taken for one only
if all 96 bits agree: for a hundred million ids, a chance of about 6 in 10^14.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Upper = npt.NDArray[np.uint64]
Lower = npt.NDArray[np.uint32]
# Merge the runs into one when there are more: lookups stay cheap and merging stays rare.
_MAX_RUNS = 16


class SeenIds:
    """A set of ids, each given as its MD5's upper 64 bits and lowest 32 (from DuckDB's `md5_number`)."""

    def __init__(self) -> None:
        self._runs: list[tuple[Upper, Lower]] = []

    def __len__(self) -> int:
        return sum(len(upper) for upper, _ in self._runs)

    def contains(self, upper: Upper, lower: Lower) -> npt.NDArray[np.bool_]:
        """For each id, whether it is in the set."""
        # In sorted order each binary search starts where the last one ended and stays in cache: a
        # page of 6,500 ids against a million takes about 2 ms instead of 5-7 ms in page order.
        order = np.argsort(upper, kind="quicksort")
        upper, lower = upper[order], lower[order]
        found = np.zeros(len(upper), dtype=bool)
        for run_upper, run_lower in self._runs:
            at = np.searchsorted(run_upper, upper)
            # Ids can share an upper half (rarely, but one id must not hide another): check each
            # entry of a run holding it, not only the first.
            while True:
                entry = np.minimum(at, len(run_upper) - 1)
                same_upper = (at < len(run_upper)) & (run_upper[entry] == upper)
                if not same_upper.any():
                    break
                found |= same_upper & (run_lower[entry] == lower)
                at = at + same_upper
        in_page_order = np.empty_like(found)
        in_page_order[order] = found
        return in_page_order

    def add(self, upper: Upper, lower: Lower) -> None:
        """Add ids (not already in the set)."""
        if len(upper):
            self._runs.append(_sorted_run(upper, lower))
        if len(self._runs) > _MAX_RUNS:
            runs, self._runs = self._runs, []
            largest_upper, largest_lower = runs.pop(0)
            # The first run holds every id added up to the last merge (before any, the first page's).
            # Sort only the runs added since (a page's ids each) and insert them into it: sorting a
            # million ids again at each merge took 50-120 ms, and held the runs, their merged copy, the
            # sort order and a gathered copy at once (48 MB at a million ids of 16 bytes).
            recent_upper = np.concatenate([u for u, _ in runs])
            recent_lower = np.concatenate([v for _, v in runs])
            upper, lower = _sorted_run(recent_upper, recent_lower)
            del runs
            at = np.searchsorted(largest_upper, upper)
            # One part at a time, each replacing its old array: at most three such arrays are held at once.
            largest_upper = np.insert(largest_upper, at, upper)
            largest_lower = np.insert(largest_lower, at, lower)
            self._runs = [(largest_upper, largest_lower)]


def _sorted_run(upper: Upper, lower: Lower) -> tuple[Upper, Lower]:
    order = np.argsort(upper, kind="quicksort")
    return upper[order], lower[order]
