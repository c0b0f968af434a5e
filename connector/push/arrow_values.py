"""Python values with an exact JSON form from Arrow columns, for every Arrow type that has one.

`to_pylist` alone fails on nanosecond timestamps and times ("install pandas"), and turns a map into
a list of pairs. So each column's type is planned once, when a file is opened: a type without a
JSON form is refused, naming why; nanosecond timestamps and every time, however deeply nested, are
cast to integers in Arrow and written as ISO 8601 text, with all nine digits of nanoseconds and DuckDB's
24:00:00 (which `to_pylist` reads as midnight); a zoned timestamp whose zone's offset then has seconds (a
local mean time) is written in UTC, as ISO 8601 offsets are minutes; maps with text keys become objects, and a
map that repeats a key is a bad value rather than a silently dropped entry, and so is a NaN or
infinite float; a 32-bit or 16-bit float is the shortest decimal that is it, not its double. Decimals stay
`Decimal`s, which `map.py` writes as exact JSON numbers, but for those of a type without decimal
places (a HUGEINT): integers, `WholeNumber`s beyond 64 bits. A JSON column's text is parsed: it holds
JSON values, not text.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from functools import cache
from itertools import chain
from typing import Any

import orjson
import pyarrow as pa

from connector.push.map import LARGEST_EXACT_INTEGER, SMALLEST_EXACT_INTEGER, WholeNumber, exact_json

# What reading a value can raise: text that is not UTF-8 (a ValueError), a map repeating a key
# (KeyError), a date outside Python's range (ValueError or OverflowError).
VALUE_ERRORS = (ValueError, KeyError, OverflowError)

_EPOCH = datetime(1970, 1, 1)
# Arrow's canonical extension types whose `to_pylist` values orjson writes: UUIDs, booleans.
_FINAL_EXTENSIONS = frozenset({"arrow.uuid", "arrow.bool8"})
# Arrow's canonical JSON type (Parquet's JSON columns, which DuckDB and bt-sync's own tables write): its
# values are JSON text, sent as the values they hold (`"hello"` as hello, `42` as 42), not as text.
_JSON_EXTENSION = "arrow.json"
_SECONDS_END_IN_TIMESTAMP = len("YYYY-MM-DDTHH:MM:SS")
_SECONDS_END_IN_TIME = len("HH:MM:SS")
_NANOSECONDS_PER_SECOND = 10**9
_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
_DAY_NANOSECONDS = 86_400 * _NANOSECONDS_PER_SECOND

Fix = Callable[[Any], Any]


class NoJsonForm(Exception):
    """A type whose values have no faithful JSON form; the message says what to cast it to."""


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """How to turn one column into Python values.

    Args:
        arrow_type: the type to cast the column to before `to_pylist`.
        fix: applied to each non-null value `to_pylist` returns, or None when they are final.
    """

    arrow_type: pa.DataType
    fix: Fix | None = None


def plan_column(data_type: pa.DataType) -> ColumnPlan:
    """Plan the conversion of a column of `data_type`.

    Raises:
        NoJsonForm: the type has no faithful JSON form.
    """
    if pa.types.is_timestamp(data_type):
        return _plan_timestamp(data_type)
    if pa.types.is_time(data_type):
        return ColumnPlan(time_count(data_type), _time_of_day(data_type.unit))
    if pa.types.is_dictionary(data_type):
        inner = plan_column(data_type.value_type)
        return ColumnPlan(data_type) if _as_is(inner, data_type.value_type) else inner
    for is_list, list_type in _LIST_TYPES:
        if is_list(data_type):
            inner = plan_column(data_type.value_type)
            if _as_is(inner, data_type.value_type):
                return ColumnPlan(data_type)
            value_field = data_type.value_field.with_type(inner.arrow_type)
            return ColumnPlan(list_type(value_field, data_type), _each(inner))
    if pa.types.is_list_view(data_type) or pa.types.is_large_list_view(data_type):
        if not _as_is(plan_column(data_type.value_type), data_type.value_type):
            raise NoJsonForm("Arrow cannot convert the values of a list view; cast it to a list")
        return ColumnPlan(data_type)
    if pa.types.is_struct(data_type):
        return _plan_struct(data_type)
    if pa.types.is_map(data_type):
        return _plan_map(data_type)
    if pa.types.is_float32(data_type):
        # Python widens a FLOAT to its exact double (0.1 as 0.10000000149011612): read from Arrow's text
        # for it, the shortest decimal that is the same FLOAT, as DuckDB and pandas show it.
        return ColumnPlan(pa.string(), _shortest_single)
    if pa.types.is_float16(data_type):
        # Arrow's text for a HALF is its exact value too (0.1 as 0.0999755859375): NumPy's is the shortest.
        return ColumnPlan(data_type, _shortest_half)
    if pa.types.is_floating(data_type):
        return ColumnPlan(data_type, _finite)
    if pa.types.is_decimal(data_type) and data_type.scale <= 0:
        # An integer (a HUGEINT, DuckDB's `sum` of integers): an id, as other integers are.
        return ColumnPlan(data_type, _whole)
    if is_json_column(data_type):
        return ColumnPlan(data_type.storage_type, exact_json)
    if _is_final(data_type):
        return ColumnPlan(data_type)
    raise NoJsonForm(_why_not(data_type))


def time_count(data_type: pa.DataType) -> pa.DataType:
    """The integer type a time of `data_type` is counted in (Arrow casts a time to its own width only)."""
    return pa.int32() if pa.types.is_time32(data_type) else pa.int64()


def is_json_column(data_type: pa.DataType) -> bool:
    """Whether a column's type is Arrow's JSON type: text that is JSON values."""
    return isinstance(data_type, pa.BaseExtensionType) and data_type.extension_name == _JSON_EXTENSION


def python_rows(batch: pa.RecordBatch, plans: list[ColumnPlan]) -> list[dict[str, Any]]:
    """The rows of `batch` as dicts of JSON-ready values, following `plans` (one per column).

    Column by column, and map-aware only where a column holds a map: for 200,000 rows of five text
    and struct columns, a batch's `to_pylist` took 1.1 s, 4.6 s with `maps_as_pydicts`, against 0.6 s.

    Raises:
        ValueError, KeyError, OverflowError: a value cannot be converted (see `VALUE_ERRORS`).
    """
    columns = []
    for column, plan in zip(batch.columns, plans, strict=True):
        values = _python_values(
            column if plan.arrow_type.equals(column.type) else column.cast(plan.arrow_type)
        )
        if plan.fix is not None:
            fix = plan.fix
            values = [None if value is None else fix(value) for value in values]
        columns.append(values)
    if not columns:
        return [{} for _ in range(batch.num_rows)]
    names = batch.schema.names
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _python_values(column: pa.Array) -> list[Any]:
    values: list[Any] = (
        column.to_pylist(maps_as_pydicts="strict") if _holds_map(column.type) else column.to_pylist()
    )
    return values


def _holds_map(data_type: pa.DataType) -> bool:
    if pa.types.is_map(data_type):
        return True
    if pa.types.is_dictionary(data_type):
        return _holds_map(data_type.value_type)
    return any(_holds_map(data_type.field(index).type) for index in range(data_type.num_fields))


def _as_is(plan: ColumnPlan, data_type: pa.DataType) -> bool:
    return plan.fix is None and plan.arrow_type.equals(data_type)


_LIST_TYPES: tuple[tuple[Callable[[pa.DataType], bool], Callable[[pa.Field, Any], pa.DataType]], ...] = (
    (pa.types.is_list, lambda field, _: pa.list_(field)),
    (pa.types.is_large_list, lambda field, _: pa.large_list(field)),
    (pa.types.is_fixed_size_list, lambda field, original: pa.list_(field, original.list_size)),
)


def _each(inner: ColumnPlan) -> Fix | None:
    fix = inner.fix
    if fix is None:
        return None
    return lambda values: [None if value is None else fix(value) for value in values]


def _plan_struct(data_type: pa.StructType) -> ColumnPlan:
    names = [field.name for field in data_type]
    repeated = next((name for name in names if names.count(name) > 1), None)
    if repeated is not None:
        raise NoJsonForm(f'it has two fields named "{repeated}", and a JSON object keeps only one')
    plans = {field.name: plan_column(field.type) for field in data_type}
    if all(_as_is(plans[field.name], field.type) for field in data_type):
        return ColumnPlan(data_type)
    fixes = {name: plan.fix for name, plan in plans.items() if plan.fix is not None}

    def fix(value: dict[str, Any]) -> dict[str, Any]:
        for name, fix_field in fixes.items():
            if value[name] is not None:
                value[name] = fix_field(value[name])
        return value

    fields = [field.with_type(plans[field.name].arrow_type) for field in data_type]
    return ColumnPlan(pa.struct(fields), fix if fixes else None)


def _plan_map(data_type: pa.MapType) -> ColumnPlan:
    key_type = data_type.key_type
    if not (pa.types.is_string(key_type) or pa.types.is_large_string(key_type)):
        raise NoJsonForm(f"a map with {key_type} keys has no JSON object form; cast its keys to string")
    inner = plan_column(data_type.item_type)
    if _as_is(inner, data_type.item_type):
        return ColumnPlan(data_type)
    fix = inner.fix
    arrow_type = pa.map_(data_type.key_field, data_type.item_field.with_type(inner.arrow_type))
    if fix is None:
        return ColumnPlan(arrow_type)
    return ColumnPlan(
        arrow_type, lambda value: {key: None if item is None else fix(item) for key, item in value.items()}
    )


def _is_final(data_type: pa.DataType) -> bool:
    """Whether `to_pylist` gives values orjson writes faithfully (it writes dates, times and UUIDs)."""
    if isinstance(data_type, pa.BaseExtensionType):
        return data_type.extension_name in _FINAL_EXTENSIONS
    return any(
        check(data_type)
        for check in (
            pa.types.is_null,
            pa.types.is_boolean,
            pa.types.is_integer,
            pa.types.is_decimal,
            pa.types.is_string,
            pa.types.is_large_string,
            pa.types.is_string_view,
            pa.types.is_date,
        )
    )


def _why_not(data_type: pa.DataType) -> str:
    if any(
        check(data_type)
        for check in (
            pa.types.is_binary,
            pa.types.is_large_binary,
            pa.types.is_binary_view,
            pa.types.is_fixed_size_binary,
        )
    ):
        return "binary data has no JSON form; cast it to string if it holds text"
    if pa.types.is_duration(data_type) or pa.types.is_interval(data_type):
        return "a duration has no single JSON form; cast it to an integer count of a unit, or to string"
    return "it has no JSON form; cast it to a string or number column"


def _whole(value: Decimal) -> int | Decimal:
    """A whole-number decimal as an integer; beyond 64 bits, as a `WholeNumber`."""
    return int(value) if SMALLEST_EXACT_INTEGER <= value <= LARGEST_EXACT_INTEGER else WholeNumber(value)


def _finite(value: float) -> float:
    """`value`, unless it is NaN or infinite: JSON has no such numbers, and orjson would write null."""
    if math.isfinite(value):
        return value
    raise ValueError(f"{value} is not a number JSON can hold")


def _shortest_single(text: str) -> float:
    """A FLOAT from Arrow's text for it (`0.1`, `nan`), as `_finite` takes it."""
    return _finite(float(text))


def _shortest_half(value: float) -> float:
    """A HALF (a 16-bit float, widened to its exact double) as the shortest decimal that is the same HALF."""
    import numpy as np  # loaded with pyarrow already

    return _finite(float(str(np.float16(value))))


def _plan_timestamp(data_type: pa.TimestampType) -> ColumnPlan:
    """A timestamp: nanoseconds from their count, and a moment whose zone's offset has seconds in UTC.

    Raises:
        NoJsonForm: no time zone database knows its zone (refused here, not as its first value fails).
    """
    # pyarrow's own time zone object, so the text is what `to_pylist` gives a microsecond column.
    zone = None if data_type.tz is None else _zone(data_type.tz)
    if data_type.unit == "ns":
        return ColumnPlan(pa.int64(), _nanosecond_timestamp(zone))
    if zone is not None and _has_offsets_of_seconds(zone):
        return ColumnPlan(data_type, _in_whole_minutes)
    return ColumnPlan(data_type)


def zones_in_utc(data_type: pa.DataType) -> pa.DataType | None:
    """`data_type` with every zoned timestamp in it, at any depth, in UTC instead (the same moments), or
    None if it holds none of another zone. A moment near either end of the years Python holds can fall
    outside them in its zone's local time (`9999-12-31T23:59:59Z` in Tokyo): it is sent in UTC."""
    if pa.types.is_timestamp(data_type):
        return None if data_type.tz in (None, "UTC") else pa.timestamp(data_type.unit, "UTC")
    if pa.types.is_struct(data_type):
        fields = [data_type.field(index) for index in range(data_type.num_fields)]
        inner = [zones_in_utc(field.type) for field in fields]
        if not any(inner):
            return None
        return pa.struct([f.with_type(t or f.type) for f, t in zip(fields, inner, strict=True)])
    if pa.types.is_map(data_type):
        items = zones_in_utc(data_type.item_type)
        return None if items is None else pa.map_(data_type.key_field, data_type.item_field.with_type(items))
    for is_list, list_type in _LIST_TYPES:
        if is_list(data_type) and (values := zones_in_utc(data_type.value_type)) is not None:
            return list_type(data_type.value_field.with_type(values), data_type)
    return None


def _nanosecond_timestamp(zone: tzinfo | None) -> Fix:
    def text(nanoseconds: int) -> str:
        microseconds, rest = divmod(nanoseconds, 1000)
        moment = _EPOCH + timedelta(microseconds=microseconds)
        if zone is not None:
            moment = _in_whole_minutes(moment.replace(tzinfo=UTC).astimezone(zone))
        return _with_nanoseconds(orjson.dumps(moment), _SECONDS_END_IN_TIMESTAMP, rest)

    return text


def _zone(tz: str) -> tzinfo | None:
    """The time zone pyarrow gives the values of a timestamp column of zone `tz`.

    Raises:
        NoJsonForm: no time zone database knows `tz` (pyarrow writes any name: `Mars/Olympus`, `Z`).
    """
    try:
        zone: tzinfo | None = pa.scalar(0, pa.timestamp("us", tz)).as_py().tzinfo
    except (KeyError, ValueError):  # zoneinfo's or pytz's unknown zone (it names only the zone), Arrow's
        raise NoJsonForm(f"its time zone {tz!r} is none this machine knows; cast it to UTC") from None
    return zone


@cache
def _has_offsets_of_seconds(zone: tzinfo) -> bool:
    """Whether `zone` has an offset of seconds at some moment (most do, in their local mean time).

    A zone's offset before 1800 is its local mean time, seen in year 1; every later offset of seconds in
    the tz database lasted months or more (probed monthly, every zone gives what a daily probe gives).
    """
    if isinstance(zone, timezone):
        return _of_seconds(zone.utcoffset(None))
    months = (datetime(year, month, 1) for year in range(1800, 2041) for month in range(1, 13))
    return any(_of_seconds(zone.utcoffset(moment)) for moment in chain([datetime(1, 1, 2)], months))


def _of_seconds(offset: timedelta | None) -> bool:
    return offset is not None and bool(offset.seconds % 60 or offset.microseconds)


def _in_whole_minutes(moment: datetime) -> datetime:
    """`moment`, in UTC where its zone's offset then has seconds (Monrovia's -00:44:30 until 1972): orjson
    writes an offset to the minute, which moved the moment (by 30 s there) without a word."""
    return moment.astimezone(UTC) if _of_seconds(moment.utcoffset()) else moment


def _time_of_day(unit: str) -> Fix:
    """A time column's values, counted in `unit`, as the text orjson writes for a `datetime.time`.

    Read from the count: `to_pylist` turns DuckDB's end of the day, 24:00:00, into midnight.
    """
    nanoseconds_per_unit = _NANOSECONDS_PER_SECOND // _PER_SECOND[unit]

    def text(count: int) -> str:
        nanoseconds = count * nanoseconds_per_unit
        if nanoseconds == _DAY_NANOSECONDS:
            return "24:00:00"
        if not 0 <= nanoseconds < _DAY_NANOSECONDS:
            raise ValueError(f"{count} {unit} is not a time of day")
        microseconds, rest = divmod(nanoseconds, 1000)
        moment = (datetime.min + timedelta(microseconds=microseconds)).time()
        return _with_nanoseconds(orjson.dumps(moment), _SECONDS_END_IN_TIME, rest)

    return text


def _with_nanoseconds(written: bytes, seconds_end: int, rest: int) -> str:
    """Add the digits below a microsecond to a time orjson wrote as a JSON string.

    Without such digits the text is orjson's own, so a nanosecond column holding whole
    microseconds gives exactly what a microsecond column does (and the same derived ids).
    """
    text = written[1:-1].decode()
    if not rest:
        return text
    head, tail = text[:seconds_end], text[seconds_end:]
    microseconds = "000000"
    if tail.startswith("."):
        microseconds, tail = tail[1:7], tail[7:]
    return f"{head}.{microseconds}{rest:03d}{tail}"
