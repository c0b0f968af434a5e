"""JSON for the emulator's rows and bodies: orjson's, but for text holding a lone UTF-16 surrogate.

`"\\ud83d"` (a string cut in the middle of an emoji, as JavaScript's `JSON.stringify` and Python's
`json.dumps` write it) is valid JSON, and Braintrust's server takes it and serves it back. orjson refuses
both to read it and to write a string holding it: only such a document goes through the standard
library instead, which writes each lone surrogate as its escape again.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

import orjson


def loads(data: bytes) -> Any:
    """The value of a JSON document.

    Raises:
        json.JSONDecodeError: `data` is not JSON (`NaN` and `Infinity` are not).
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        if "surrogate" not in str(error):
            raise
        return json.loads(data, parse_constant=_not_json)


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
