"""JSON deep merge, shared by `_is_merge` inserts and PATCH of catalog objects."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

KeyPath = tuple[str, ...]


def deep_merge(
    base: Mapping[str, Any], update: Mapping[str, Any], stop_at: Collection[KeyPath] = (), at: KeyPath = ()
) -> dict[str, Any]:
    """Return `base` with `update` merged in: objects merge key by key, anything else replaces.

    The inputs are never modified (callers may hand in their own request data).
    `stop_at` holds paths (Braintrust's `_merge_paths`) below which the merge does
    not descend: the value at such a path is replaced whole.
    """
    merged = dict(base)
    for key, value in update.items():
        path = (*at, key)
        current = merged.get(key)
        if isinstance(value, dict) and isinstance(current, dict) and path not in stop_at:
            merged[key] = deep_merge(current, value, stop_at, path)
        else:
            merged[key] = value
    return merged


def without_values(row: Mapping[str, Any], path: KeyPath, values: list[Any]) -> dict[str, Any]:
    """Return `row` with `values` removed from the array at `path` (Braintrust's `_array_delete`)."""
    copy = dict(row)
    key, rest = path[0], path[1:]
    current = copy.get(key)
    if rest:
        if isinstance(current, dict):
            copy[key] = without_values(current, rest, values)
    elif isinstance(current, list):
        copy[key] = [item for item in current if item not in values]
    return copy
