"""Tell which JSON lines already are the dataset events a push would make, without parsing their values.

A JSON Lines file written for a dataset usually holds on each line exactly the event a push sends:
an `id` string and the fields under their own names. Such a line is sent as its own text, so its
values are never needed as Python objects; deciding that it is one takes its top-level keys and the
first bytes of each value. msgspec reads each value as its raw JSON text, checking its syntax
without building anything for what is inside: a third of the CPU of parsing the line with orjson,
which was the largest part of a push's first pass.

msgspec checks the syntax and the UTF-8 of the keys and typed values only, so the text of the raw
values is checked for UTF-8 here. A raw value's numbers are not read: a line sent as written keeps
its numbers exactly as written, beyond the range of a double too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Set
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import cast

import msgspec
from msgspec import UNSET, Raw, UnsetType

# The first bytes of raw values: an object, null, and a string.
_OPEN_BRACE = ord("{")
_QUOTE = ord('"')
_NULL = Raw(b"null")
# The second byte of a string whose text may start like JSON, once decoded: a brace or bracket, an
# escape, a space, or a byte of a non-ASCII character (Unicode has spaces `str.lstrip` removes).
_MAY_LOOK_LIKE_JSON = frozenset(b"{[\\ ") | frozenset(range(0x80, 0x100))
_MAY_LOOK_LIKE_JSON_STARTS = frozenset(bytes((_QUOTE, second)) for second in _MAY_LOOK_LIKE_JSON)
# `memoryview` as a function of a raw value, for `map` (typed: the generic `memoryview` confuses mypy there).
_view = cast("Callable[[Raw], memoryview]", memoryview)
_FIRST_BYTE = itemgetter(0)
_FIRST_TWO_BYTES = itemgetter(slice(0, 2))


class _EventFields(msgspec.Struct, forbid_unknown_fields=True):
    """A line's top-level values, when its keys are all fields of an event: the id and tags typed, the
    others as their JSON text."""

    id: str
    input: Raw | UnsetType = UNSET
    expected: Raw | UnsetType = UNSET
    metadata: Raw | UnsetType = UNSET
    tags: list[str] | UnsetType = UNSET


_DECODER = msgspec.json.Decoder(_EventFields)


# Never cycles: left out of Python's cycle collector, which runs while a push sends as it checks.
class _Object(msgspec.Struct, gc=False):
    """Any JSON object, its contents checked and skipped as a raw value's are."""


class _ObjectEventFields(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A line's top-level values when input, expected and metadata are objects, as they usually are.

    Decoding such a line checks in C all that `_EventFields` leaves to Python, value by value: no null,
    metadata an object, no text that may look like JSON. Deciding a run of lines took 40% less CPU.
    """

    id: str
    input: _Object | UnsetType = UNSET
    expected: _Object | UnsetType = UNSET
    metadata: _Object | UnsetType = UNSET
    tags: list[str] | UnsetType = UNSET


_OBJECTS_DECODER = msgspec.json.Decoder(_ObjectEventFields)
# A line nested deeper than the interpreter's recursion allows (about a thousand levels) stopped the push
# with a traceback: it is left to the parsed row, which refuses it in one line.
_UNDECODABLE = (msgspec.DecodeError, RecursionError)
# A line holding this many brackets may nest deeper than the 255 levels a parsed row may (orjson writes
# no deeper, nor does the API take more): it is parsed, and refused if it does. Sent as written, it
# passed the check and `--dry-run`, and the API refused it once the rows before it were sent.
_MAY_BE_TOO_DEEP = 255
_NOT_OPENING_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[{")


class EventLines:
    """Recognises the lines whose text is their event.

    A line is its event when it is an object whose keys are all among `fields` (which holds `id`),
    its id is text that is not blank, no field is null, metadata is an object, tags are a list of
    strings, no text of `parsed_fields` looks like JSON (it would be parsed), and it is at most
    `max_event_bytes` long. `RowMapper` parses and maps any other line.

    Args:
        fields: the event fields fed by a key of their own name, `id` among them.
        parsed_fields: fields whose text is parsed when it looks like a JSON object or array.
        max_event_bytes: the largest event one request carries.
    """

    def __init__(self, fields: Set[str], parsed_fields: Set[str], max_event_bytes: int) -> None:
        assert "id" in fields, "a line's id is in its text only under `id`"
        self.fields = frozenset(fields)
        self.parsed_fields = frozenset(parsed_fields)
        self.max_event_bytes = max_event_bytes
        self._absent = tuple(sorted(set(_EventFields.__struct_fields__) - fields))
        # Until a run shows other values: then a file's runs would pay for both decodings.
        self._values_may_be_objects = True

    def ids(self, lines: Sequence[bytes]) -> list[str | None]:
        """Each line's event id if the line is its event, else None."""
        return cast("list[str | None]", self._all_ids(lines)) or [self._id(line) for line in lines]

    def _all_ids(self, lines: Sequence[bytes]) -> list[str]:
        """The lines' ids if every line is its event, else an empty list.

        The checks of `_id`, each one pass in C over the lines: a Python step per line and check
        cost twice the decoding.
        """
        if (
            not lines
            or max(map(len, lines)) > self.max_event_bytes
            or _most_brackets(lines) >= _MAY_BE_TOO_DEEP
        ):
            return []
        if not (all(map(bytes.isascii, lines)) or all(map(_is_utf8, lines))):
            return []
        if self._values_may_be_objects:
            decoded: list[_ObjectEventFields] = []
            try:
                decoded.extend(map(_OBJECTS_DECODER.decode, lines))
                return self._checked_ids(decoded)
            except _UNDECODABLE:
                pass  # a value of another kind, or a line that is no event: the general decoding says
            try:
                # The line the objects' decoding stopped at (`extend` keeps those before it): if it is no
                # event at all, neither is the run, and decoding every line again would only cost time.
                _DECODER.decode(lines[len(decoded)])
            except _UNDECODABLE:
                return []
        try:
            events = list(map(_DECODER.decode, lines))
        except _UNDECODABLE:
            return []
        # Decoded here and not as objects: values of other kinds, which the file's later runs hold too.
        self._values_may_be_objects = False
        ids = self._checked_ids(events)
        if not ids:
            return []
        metadata = _present(events, "metadata")
        if metadata and set(map(_FIRST_BYTE, map(_view, metadata))) != {_OPEN_BRACE}:
            return []
        for field in ("input", "expected"):
            values = _present(events, field)
            if _NULL in values or (field in self.parsed_fields and _any_may_be_parsed(values)):
                return []
        return ids

    def _checked_ids(self, events: Sequence[_EventFields | _ObjectEventFields]) -> list[str]:
        """The events' ids if none is blank and none has a field outside `fields`, else an empty list."""
        ids = list(map(attrgetter("id"), events))
        if not all(map(str.strip, ids)):
            return []
        for field in self._absent:
            if list(map(attrgetter(field), events)).count(UNSET) != len(events):
                return []
        return ids

    def _id(self, line: bytes) -> str | None:
        if len(line) > self.max_event_bytes or not (line.isascii() or _is_utf8(line)):
            return None
        if _most_brackets([line]) >= _MAY_BE_TOO_DEEP:
            return None
        try:
            event = _DECODER.decode(line)
        except _UNDECODABLE:
            return None
        if not event.id.strip() or any(getattr(event, field) is not UNSET for field in self._absent):
            return None
        metadata = event.metadata
        if metadata is not UNSET and memoryview(metadata)[0] != _OPEN_BRACE:
            return None
        for field, value in (("input", event.input), ("expected", event.expected)):
            if value is UNSET:
                continue
            if value == _NULL or (field in self.parsed_fields and _may_be_parsed(value)):
                return None
        return event.id


def _present(events: list[_EventFields], field: str) -> list[Raw]:
    """The raw values of `field` in the events that have it."""
    values = list(map(attrgetter(field), events))
    return [value for value in values if value is not UNSET] if UNSET in values else values


def _any_may_be_parsed(values: list[Raw]) -> bool:
    """`_may_be_parsed` for any of the values, each step one pass in C."""
    views = list(map(_view, values))
    # Only when some values are text are the first two bytes of each taken.
    if _QUOTE not in set(map(_FIRST_BYTE, views)):
        return False
    return not _MAY_LOOK_LIKE_JSON_STARTS.isdisjoint(map(bytes, map(_FIRST_TWO_BYTES, views)))


def _most_brackets(lines: Sequence[bytes]) -> int:
    """The most brackets opened in any of the lines (their depth's bound), in one pass in C over each line:
    what is left of it without its other bytes (`bytes.count` for each bracket took half as long again)."""
    return max(map(len, map(bytes.translate, lines, repeat(None), repeat(_NOT_OPENING_BRACKETS))))


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode()
    except UnicodeDecodeError:
        return False
    return True


def _may_be_parsed(value: Raw) -> bool:
    """Whether a raw value is text that may start like a JSON object or array once decoded.

    Only text starting with a brace, a bracket, an escape or a space (ASCII or not) may: such a
    value is left to the parsed row, which decides exactly.
    """
    view = memoryview(value)
    return view[0] == _QUOTE and len(view) > 2 and view[1] in _MAY_LOOK_LIKE_JSON
