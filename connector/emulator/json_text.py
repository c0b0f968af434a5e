"""JSON for the emulator's rows and bodies: orjson's, but for text holding a lone UTF-16 surrogate.

`"\\ud83d"` (a string cut in the middle of an emoji, as the SDK's `json.dumps` and JavaScript's
`JSON.stringify` write it) is valid JSON. orjson refuses both to read it and to write a string holding
it, so the emulator answered the SDK's batch holding it with a 400, and the SDK dropped the whole batch.
Only such a document goes through the standard library instead, read as orjson reads numbers, and
written with each lone surrogate as its escape again.
"""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn

import orjson

# The integers orjson reads as integers: signed and unsigned 64-bit.
_SMALLEST_INTEGER, _LARGEST_INTEGER = -(2**63), 2**64 - 1
_MOST_DIGITS = len(str(_SMALLEST_INTEGER))


def loads(data: bytes) -> Any:
    """The value of a JSON document.

    Raises:
        json.JSONDecodeError: `data` is not JSON (`NaN` and `Infinity` are not).
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        if "surrogate in string" not in str(error):  # a lone surrogate's escape, not bytes that are not UTF-8
            raise
        failure = error
    try:
        text = data.decode()  # not UTF-8 further on: refused as orjson refuses it
    except UnicodeDecodeError:
        raise failure from None
    try:
        return json.loads(text, parse_constant=_not_json, parse_float=_double, parse_int=_integer)
    except RecursionError:
        raise json.JSONDecodeError("nested too deep", "", 0) from None


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    """`value` as a JSON document.

    Raises:
        TypeError: `value` is not JSON, or nested deeper than orjson writes.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except TypeError as error:
        if "surrogates" not in str(error):
            raise
        return json.dumps(value, separators=(",", ":"), sort_keys=sort_keys, allow_nan=False).encode()


def _not_json(constant: str) -> NoReturn:
    raise json.JSONDecodeError(f"{constant} is not JSON", constant, 0)


def _double(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise json.JSONDecodeError("number is infinity when parsed as double", text, 0)
    return value


def _integer(text: str) -> int | float:
    """An integer as orjson reads it: beyond 64 bits, as the nearest double."""
    if len(text) > _MOST_DIGITS:  # beyond 64 bits, and perhaps beyond what `int` reads
        return _double(text)
    value = int(text)
    return value if _SMALLEST_INTEGER <= value <= _LARGEST_INTEGER else _double(text)
