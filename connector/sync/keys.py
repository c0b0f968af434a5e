"""Readable, stable keys naming synced objects: `project` (its logs), `project/experiment`, `project/dataset`.

A key is what Dagster partitions an event table by and what `bt-sync status`
shows. It is the object's name (`ObjectRef.name`) whenever that name is
unambiguous, and the name with `~<object id>` appended otherwise, so no two
objects of one type ever share a key:

- a project or object name holding `/` (`a/b` + `c` and `a` + `b/c` both read `a/b/c`) or `~`;
- a name holding what Dagster forbids in a partition key (`...`, control characters), which the key
  spells with stand-ins (`…`, a space);
- two objects with the same name (projects of one name in two organizations), or names that read
  alike (`é` composed or not, a no-break space for a space, a zero-width space).

A key follows the name: a renamed object gets a new key, and the key of a
deleted object is never reused by another unless that one takes the same name.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from schemas.api import ObjectType

ID_SEPARATOR = "~"
# Dagster rejects partition keys holding "..." or a control character (it lists \a \b \f \n \r \t \v \0).
_FORBIDDEN = re.compile(r"\.\.\.|[\x00-\x1f\x7f]")


class Named(Protocol):
    """An object with a readable name: an `ObjectRef` or a `SyncState`."""

    @property
    def object_type(self) -> ObjectType: ...

    @property
    def object_id(self) -> str: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class KeyParts:
    """What a key says about its object.

    Args:
        object_id: the object's id, for a key ending in `~<id>`; None for a plain name.
        names: the project's name, then the object's (for experiments and datasets); empty with an id.
    """

    object_id: str | None
    names: tuple[str, ...]


def object_key(object_type: ObjectType, name: str, object_id: str) -> str:
    """The key of one object, assuming no other object of its type has the same name (see `object_keys`)."""
    return name if _is_plain(object_type, name) else key_with_id(name, object_id)


def key_with_id(name: str, object_id: str) -> str:
    """The key naming an object by its (readable) name and its id: `name~id`."""
    readable = _FORBIDDEN.sub(lambda match: "…" if match.group() == "..." else " ", name)
    return f"{readable}{ID_SEPARATOR}{object_id}"


def object_keys(objects: Iterable[Named]) -> dict[tuple[ObjectType, str], str]:
    """The keys of many objects by (type, id); objects of one type with equal names get their ids appended."""
    listed = list(objects)
    plain = Counter((o.object_type, _as_read(o.name)) for o in listed if _is_plain(o.object_type, o.name))
    return {
        (o.object_type, o.object_id): (
            o.name if plain[(o.object_type, _as_read(o.name))] == 1 else key_with_id(o.name, o.object_id)
        )
        for o in listed
    }


def _as_read(name: str) -> str:
    """`name` as a reader sees it: names that differ only in how their characters are composed (`é` as
    one code point or as `e` and an accent), in a space's kind (a no-break space) or by an invisible
    character (a zero-width space) read alike, and each showed as the other's key."""
    return "".join(c for c in unicodedata.normalize("NFKC", name) if unicodedata.category(c) != "Cf")


def parse_key(object_type: ObjectType, key: str) -> KeyParts:
    """Split a key into the object's id, or its project's and its own names."""
    if ID_SEPARATOR in key:
        return KeyParts(key.rpartition(ID_SEPARATOR)[2], ())
    return KeyParts(None, tuple(key.split("/", _depth(object_type))))


def _is_plain(object_type: ObjectType, name: str) -> bool:
    parts = name.split("/")
    return (
        len(parts) == _depth(object_type) + 1
        and all(parts)
        and ID_SEPARATOR not in name
        and not _FORBIDDEN.search(name)
    )


def _depth(object_type: ObjectType) -> int:
    """How many `/` a plain name holds: none for a project's logs, one for `project/object`."""
    return 0 if object_type is ObjectType.PROJECT_LOGS else 1


def keys_as_listed(
    synced: Sequence[Named], listed: Iterable[Named] | None
) -> dict[tuple[ObjectType, str], str | None]:
    """The key of each synced object as Dagster's partitions name it, from the objects `listed` upstream
    (as the catalog tables hold them): None for one no longer listed (deleted upstream; its rows stay
    until `sync --reconcile`). From the synced objects when `listed` is None (unknown)."""
    if listed is None:
        return dict(object_keys(synced))
    keys = object_keys(listed)
    return {(o.object_type, o.object_id): keys.get((o.object_type, o.object_id)) for o in synced}
