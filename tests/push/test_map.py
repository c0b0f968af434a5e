"""Column mapping, row validation and deterministic ids for pushed rows."""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.errors import PushError
from connector.push.map import ColumnMapping, Event, RowMapper, exact_json, resolve_mapping
from connector.push.read import RowChunk, RowProblem
from connector.push.spelling import run_config_spelling

# The columns a JSON Lines file of events shows: every field, and one that no field takes.
_KNOWN = ("id", "input", "expected", "metadata", "tags", "note")


def mapper(mapping: ColumnMapping, parse_json: bool = True, **options: Any) -> RowMapper:
    options.setdefault("known_columns", _KNOWN)
    return RowMapper(mapping, project="proj", dataset="ds", parse_json=parse_json, **options)


def from_line(rows_mapper: RowMapper, text: bytes) -> Event | RowProblem:
    """What a JSON line becomes, mapped as the JSON Lines reader hands it over."""
    mapped = rows_mapper.chunk(RowChunk(1, [orjson.loads(text)], [text]))
    return Event(mapped.ids[0], mapped.events[0]) if mapped.ids else mapped.problems[0][1]


def event(mapping: ColumnMapping, row: dict[str, Any], parse_json: bool = True) -> dict[str, Any]:
    result = mapper(mapping, parse_json).event(row)
    assert isinstance(result, Event), result
    decoded: dict[str, Any] = orjson.loads(result.json)
    assert decoded["id"] == result.id
    return decoded


def problem(mapping: ColumnMapping, row: dict[str, Any], parse_json: bool = True) -> RowProblem:
    result = mapper(mapping, parse_json).event(row)
    assert isinstance(result, RowProblem), result
    return result


DEFAULTS = ColumnMapping(
    id="id", input=("input",), expected=("expected",), metadata=("metadata",), tags="tags"
)


def test_defaults_pick_columns_by_name() -> None:
    mapping = resolve_mapping("d.csv", ["id", "input", "expected", "metadata", "tags", "other"])
    assert mapping == DEFAULTS
    assert mapping.columns() == {"id", "input", "expected", "metadata", "tags"}


def test_flags_override_one_field_and_the_others_keep_defaults() -> None:
    mapping = resolve_mapping("d.csv", ["q", "ctx", "input", "expected"], input_columns=["q", "ctx"])
    assert mapping == ColumnMapping(
        id=None, input=("q", "ctx"), expected=("expected",), metadata=(), tags=None
    )


def test_a_column_claimed_by_a_flag_is_not_also_a_default() -> None:
    mapping = resolve_mapping(
        "d.csv", ["input", "answer"], expected_columns=["input"], input_columns=["answer"]
    )
    assert (mapping.input, mapping.expected) == (("answer",), ("input",))


@pytest.mark.parametrize("field", ["input", "expected", "metadata"])
def test_the_column_an_id_is_taken_from_is_still_its_field_s_default(field: str) -> None:
    # `--id-column input` sent records without their input, and said nothing.
    mapping = resolve_mapping("qa.csv", ["question_id", field], id_column=field)
    assert mapping.id == field
    assert mapping.columns() == {field}
    assert getattr(mapping, field) == (field,)


def test_missing_mapped_columns_are_named_with_their_flag() -> None:
    with pytest.raises(PushError) as error:
        resolve_mapping("d.csv", ["a", "b"], input_columns=["a", "question"], id_column="key")
    assert str(error.value) == (
        'd.csv: no column "key" (from --id-column), "question" (from --input); the file has columns: "a", "b"'
    )


@pytest.mark.parametrize("check", [True, False])
def test_a_column_named_twice_by_one_flag_is_refused(check: bool) -> None:
    with pytest.raises(PushError) as error:
        resolve_mapping("d.jsonl", ["a", "b"], input_columns=["a", "b", "a"], check=check)
    assert str(error.value) == '--input names "a" more than once; give each column once'


def test_nothing_to_send_is_an_error() -> None:
    with pytest.raises(
        PushError, match=r'^d\.csv: no column maps to input, expected or metadata.*columns: "a", "id"\)$'
    ):
        resolve_mapping("d.csv", ["a", "id"])


def test_columns_named_as_fields_but_for_case_are_named_with_the_options_as_the_user_gives_them() -> None:
    # In the run config, `input: Input` was told, which Dagster refuses: `input` takes a list.
    columns = ["ID", " Input ", "Expected"]
    with pytest.raises(PushError) as error:
        resolve_mapping("d.csv", columns)
    assert str(error.value).endswith(
        "; pass --id-column ID --input ' Input ' --expected Expected (names are taken as written)"
    )
    with pytest.raises(PushError) as error, run_config_spelling():
        resolve_mapping("d.csv", columns)
    assert str(error.value).endswith(
        "; pass id_column: ID, input: [ Input ], expected: [Expected] (names are taken as written)"
    )
    # Two columns reading as one field: neither is told.
    with pytest.raises(PushError) as error:
        resolve_mapping("d.csv", ["Input", "INPUT"])
    assert "pass" not in str(error.value)


def test_another_separator_in_a_lone_column_is_named_only_for_a_csv_file_s_header() -> None:
    hints = []
    # A CSV header read with a comma, then with `;`, then any other input (a JSON key, a query's
    # column), then a header of two columns.
    for columns, delimiter in ((["a;b"], ","), (["a,b"], ";"), (["a;b"], None), (["a;b", "c"], ",")):
        with pytest.raises(PushError) as error:
            resolve_mapping("d", columns, csv_delimiter=delimiter)
        hint = re.search(r"its header looks separated by '(.)': pass --delimiter '(.)'", str(error.value))
        hints.append(hint and hint.groups())
    assert hints == [(";", ";"), (",", ","), None, None]


def test_single_columns_become_values_and_json_text_is_parsed() -> None:
    row = {
        "id": "r1",
        "input": '{"q": [1, 2]}',
        "expected": "[1, 2]",
        "metadata": '{"m": true}',
        "tags": None,
    }
    assert event(DEFAULTS, row) == {
        "id": "r1",
        "input": {"q": [1, 2]},
        "expected": [1, 2],
        "metadata": {"m": True},
    }


def test_a_json_column_s_integers_beyond_64_bits_are_sent_exactly() -> None:
    # A JSON column of a query or a Parquet file (DuckDB's JSON): orjson read it as 1.2345678901234568e+29.
    text = '{"n": 123456789012345678901234567890, "small": -7, "s": "12345678901234567890123", "f": 1.5}'
    value = exact_json(text)
    assert (value["small"], value["s"], value["f"]) == (-7, "12345678901234567890123", 1.5)
    sent = mapper(DEFAULTS).event({"id": "r1", "input": value})
    assert isinstance(sent, Event) and b'"n":123456789012345678901234567890,' in sent.json
    assert exact_json('{"n": 18446744073709551615}') == {"n": 2**64 - 1}  # read by orjson: 64 bits fit
    assert exact_json("[-9223372036854775809]") == [-(2**63) - 1]  # 19 digits, beyond 64 bits
    wide = "12345678901234567890123"
    for text in (
        f"[{wide}, NaN]",
        f"[{wide}, 1e400]",
        f'[{wide}, "\\ud800"]',
        "[" * 2000 + wide + "]" * 2000,
    ):
        with pytest.raises(ValueError, match="invalid JSON"):
            exact_json(text)


def test_a_row_nested_deeper_than_json_writers_go_is_a_bad_row() -> None:
    deep: list[Any] = []
    for _ in range(600):  # it was a traceback (RecursionError), past Python's limit
        deep = [deep]
    refused = problem(DEFAULTS, {"id": "r1", "input": deep})
    assert refused.reason == "its values nest deeper than the 255 levels JSON writers take"


def test_no_parse_json_keeps_text() -> None:
    row = {"id": "r1", "input": "[not json", "expected": None, "metadata": None, "tags": None}
    assert event(DEFAULTS, row, parse_json=False) == {"id": "r1", "input": "[not json"}


def test_only_objects_and_arrays_are_parsed() -> None:
    row = {"id": 7, "input": "42", "expected": "true", "metadata": None, "tags": None}
    assert event(DEFAULTS, row) == {"id": "7", "input": "42", "expected": "true"}


def test_several_columns_make_an_object() -> None:
    mapping = ColumnMapping(id=None, input=("q", "ctx"), expected=(), metadata=("src", "n"), tags=None)
    mapped = event(mapping, {"q": "why", "ctx": '{"a": 1}', "src": "x", "n": None})
    assert mapped == {
        "id": mapped["id"],
        "input": {"q": "why", "ctx": {"a": 1}},
        "metadata": {"src": "x", "n": None},
    }


def test_a_single_non_object_metadata_column_is_wrapped() -> None:
    mapping = ColumnMapping(id=None, input=("input",), expected=(), metadata=("source",), tags=None)
    assert event(mapping, {"input": "q", "source": "web"})["metadata"] == {"source": "web"}
    assert event(mapping, {"input": "q", "source": '{"k": 1}'})["metadata"] == {"k": 1}


@pytest.mark.parametrize(
    ("value", "tags"),
    [
        ("a, b,,c ", ["a", "b", "c"]),
        ('["x", "y,z"]', ["x", "y,z"]),
        (["p", "q"], ["p", "q"]),
        ("", None),
        (" , ", None),
        (None, None),
        # A list is sent as given, an empty one too: the JSON line's own text carries it so.
        ([], []),
        ("[]", []),
        # Braces that are no JSON object are text.
        ("{draft}, {final}", ["{draft}", "{final}"]),
    ],
)
def test_tags(value: Any, tags: list[str] | None) -> None:
    assert event(DEFAULTS, {"id": "1", "input": "q", "tags": value}).get("tags") == tags


@pytest.mark.parametrize(
    ("value", "tags"),
    [
        # Refused as invalid JSON, whatever --no-parse-json said.
        ("[draft],wip", ["[draft]", "wip"]),
        # A JSON array's text is an array still: `bt-sync sql --format csv` writes tags so.
        ('["q", "r,s"]', ["q", "r,s"]),
        ('{"x": 1, "y": 2}', ['{"x": 1', '"y": 2}']),
        (["p", "q"], ["p", "q"]),
    ],
)
def test_tags_of_text_kept_as_text_are_split_on_commas(value: Any, tags: list[str]) -> None:
    row = {"id": "1", "input": "q", "tags": value}
    assert event(DEFAULTS, row, parse_json=False)["tags"] == tags
    # An array's tags are checked alike: [1, null] was sent, and the API refused it.
    refused = problem(DEFAULTS, {"id": "1", "input": "q", "tags": "[1, null]"}, parse_json=False)
    assert refused.reason == "tags must be strings, found a number 1 at position 1"
    # A JSON column's string is text too (it was parsed as the JSON array it looks like).
    from_json_column = mapper(DEFAULTS, json_columns=frozenset({"tags"})).event(row)
    assert isinstance(from_json_column, Event) and orjson.loads(from_json_column.json)["tags"] == tags


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        (
            {"input": "{oops"},
            "input",
            "invalid JSON (unexpected character, expected a string key at char 1); "
            "pass --no-parse-json to send such values as text",
        ),
        (
            {"input": "q", "tags": 3},
            "tags",
            "tags must be a list of strings or comma-separated text, found a number",
        ),
        ({"input": "q", "tags": ["a", 2]}, "tags", "tags must be strings, found a number 2 at position 2"),
        ({"input": "q", "tags": ["a", None]}, "tags", "tags must be strings, found null at position 2"),
        # An object's text, as JSON Lines' object: split on its commas, it made tags of its pieces.
        (
            {"input": "q", "tags": '{"x": 1, "y": 2}'},
            "tags",
            "tags must be a list of strings or comma-separated text, found an object",
        ),
        (
            {"input": "q", "tags": "[oops"},
            "tags",
            "invalid JSON array of tags (unexpected character, expected a JSON value at char 1); with "
            "--no-parse-json, text that is no JSON array is split on its commas (and other columns' text "
            "kept as text)",
        ),
        ({"input": "q", "id": None}, "id", "empty id; every row needs a value in the id column"),
        (
            {"input": "q", "id": "  "},
            "id",
            "an id of 2 blank characters alone (U+0020); every row needs a value in the id column",
        ),
        # A line separator: "empty id" named nothing the row shows.
        (
            {"input": "q", "id": "\u2028"},
            "id",
            "an id of 1 blank character alone (U+2028); every row needs a value in the id column",
        ),
        ({"input": "q", "id": 1.5}, "id", "an id must be text or an integer, found a number 1.5"),
        (
            {"input": "q", "id": float(2**64 + 1)},
            "id",
            "an id must be text or an integer, found a number 1.8446744073709552e+19 (an integer beyond 64 "
            "bits is read so, not exactly: give the id as text)",
        ),
        # Written as a float: it was said to be an integer, read "not exactly".
        (
            {"input": "q", "id": 1e19},
            "id",
            "an id must be text or an integer, found a number 1e+19 (an integer beyond 64 bits is read so, "
            "not exactly: give the id as text)",
        ),
        ({"input": "q", "id": True}, "id", "an id must be text or an integer, found a boolean true"),
        ({"input": "q", "id": {"a": 1}}, "id", 'an id must be text or an integer, found an object {"a":1}'),
    ],
)
def test_bad_values_name_column_and_reason(row: dict[str, Any], column: str, reason: str) -> None:
    found = problem(DEFAULTS, {"id": "1", **row})
    assert (found.column, found.reason, found.values) == (column, reason, {"id": "1", **row})
    assert found.describe("d.csv", 17) == f'd.csv row 17, column "{column}": {reason}'


def test_a_json_row_without_the_id_key_says_so_naming_its_keys() -> None:
    found = problem(DEFAULTS, {"input": "q", "note": "n"})
    assert (found.column, found.reason) == (
        "id",
        'the row has no key "id", which holds the ids; its keys: input, note',
    )


def test_a_row_over_the_request_limit_is_refused() -> None:
    mapping = ColumnMapping(id=None, input=("input",), expected=(), metadata=(), tags=None)
    small = mapper(mapping, max_event_bytes=100)
    assert isinstance(small.event({"input": "x" * 40}), Event)
    found = small.event({"input": "x" * 100})
    assert isinstance(found, RowProblem)
    assert found.column is None
    assert found.reason == "the row is 152 bytes as JSON, over the 100 bytes one insert request may carry"


def test_derived_ids_are_stable_and_depend_on_content_and_target() -> None:
    mapping = ColumnMapping(id=None, input=("input",), expected=("expected",), metadata=(), tags=None)
    first = event(mapping, {"input": "q", "expected": "a", "ignored": 1})
    assert len(first["id"]) == 32 and int(first["id"], 16) >= 0
    assert event(mapping, {"expected": "a", "input": "q", "ignored": 2})["id"] == first["id"]
    assert event(mapping, {"input": "q", "expected": "b"})["id"] != first["id"]
    other_dataset = RowMapper(
        mapping, project="proj", dataset="other", parse_json=True, known_columns=()
    ).event({"input": "q", "expected": "a"})
    assert isinstance(other_dataset, Event) and other_dataset.id != first["id"]


def test_json_parsed_and_typed_values_hash_alike() -> None:
    mapping = ColumnMapping(id=None, input=("input",), expected=(), metadata=(), tags=None)
    assert (
        event(mapping, {"input": '{"b": 1, "a": 2}'})["id"]
        == event(mapping, {"input": {"a": 2, "b": 1}})["id"]
    )


def test_a_row_of_exactly_the_request_limit_fits() -> None:
    mapping = ColumnMapping(id=None, input=("input",), expected=(), metadata=(), tags=None)
    probe = mapper(mapping).event({"input": "x" * 40})
    assert isinstance(probe, Event)
    assert isinstance(mapper(mapping, max_event_bytes=len(probe.json)).event({"input": "x" * 40}), Event)
    too_big = mapper(mapping, max_event_bytes=len(probe.json) - 1).event({"input": "x" * 40})
    assert isinstance(too_big, RowProblem) and too_big.values == {"input": "x" * 40}


# An id column's value, or none (the id is then a hash of the row): the event is written either way.
ID_COLUMNS = pytest.mark.parametrize("id_column", ["id", None])


@ID_COLUMNS
def test_a_row_whose_mapped_values_are_all_empty_is_the_id_alone(id_column: str | None) -> None:
    mapping = ColumnMapping(id=id_column, input=("input",), expected=("expected",), metadata=(), tags=None)
    found = event(mapping, {"id": "r1", "input": None, "expected": None})
    assert list(found) == ["id"] and found["id"] == ("r1" if id_column else event(mapping, {})["id"])


@ID_COLUMNS
def test_a_mapped_row_keeps_its_keys_in_their_order_and_its_hashed_id_does_not_depend_on_it(
    id_column: str | None,
) -> None:
    mapping = ColumnMapping(id=id_column, input=("input",), expected=(), metadata=("zone", "area"), tags=None)
    rows_mapper = mapper(mapping, known_columns=())
    row = {"id": "r1", "input": '{"z": 1, "a": {"y": [{"q": 1, "b": 2}], "c": 3}}', "zone": "eu", "area": 7}
    sent = rows_mapper.event(row)
    assert isinstance(sent, Event)
    assert b'"input":{"z":1,"a":{"y":[{"q":1,"b":2}],"c":3}}' in sent.json
    assert b'"metadata":{"zone":"eu","area":7}' in sent.json
    reordered = rows_mapper.event({**row, "input": '{"a": {"c": 3, "y": [{"b": 2, "q": 1}]}, "z": 1}'})
    assert isinstance(reordered, Event) and reordered.id == sent.id


@ID_COLUMNS
def test_decimals_are_written_as_the_exact_numbers_they_are_and_other_objects_are_refused(
    id_column: str | None,
) -> None:
    mapping = ColumnMapping(id=id_column, input=("input",), expected=(), metadata=(), tags=None)
    exact = mapper(mapping).event({"id": "r1", "input": Decimal("0.10000000000000000001")})
    assert isinstance(exact, Event)
    assert exact.json == b'{"id":%s,"input":0.10000000000000000001}' % orjson.dumps(exact.id)
    if id_column:
        assert exact.id == "r1"
    else:
        assert len(exact.id) == 32
    row = {"id": "r2", "input": {1, 2}}
    refused = problem(mapping, row)
    assert refused.reason.startswith("cannot be written as JSON") and refused.values == row


# A JSON line's own text is its event when mapping would not change the row ------------------------------


def test_a_json_line_shaped_as_its_event_is_sent_as_written() -> None:
    text = b'{"tags": [], "id": "r1", "input": {"q": 1.50, "big": 123456789012345678901234}}\r\n'
    row = orjson.loads(text)
    written = from_line(mapper(DEFAULTS), text)
    assert written == Event("r1", text)
    assert isinstance(written, Event) and written.json is text
    # The same value as the mapped event, but for the number orjson can only read as a double.
    mapped = mapper(DEFAULTS).event(row)
    assert isinstance(mapped, Event) and orjson.loads(mapped.json)["input"]["big"] == 1.2345678901234569e23


def test_without_parse_json_a_json_line_of_json_looking_text_is_sent_as_written() -> None:
    text = b'{"id": "r1", "input": "{\\"a\\": 1}"}\n'
    assert from_line(mapper(DEFAULTS, parse_json=False), text) == Event("r1", text)


@pytest.mark.parametrize(
    ("mapping", "row"),
    [
        (DEFAULTS, {"id": 7, "input": "q"}),
        (DEFAULTS, {"id": " ", "input": "q"}),
        (DEFAULTS, {"input": "q"}),
        (DEFAULTS, {"id": "r1", "input": "q", "expected": None}),
        (DEFAULTS, {"id": "r1", "input": None}),
        (DEFAULTS, {"id": "r1", "input": "q", "metadata": "web"}),
        (DEFAULTS, {"id": "r1", "input": "q", "metadata": None}),
        (DEFAULTS, {"id": "r1", "input": "q", "tags": "a, b"}),
        (DEFAULTS, {"id": "r1", "input": "q", "tags": ["a", 2]}),
        (DEFAULTS, {"id": "r1", "input": " [1, 2]"}),
        (DEFAULTS, {"id": "r1", "expected": '{"a": 1}'}),
        (DEFAULTS, {"id": "r1", "input": "q", "note": "not mapped"}),
        (
            ColumnMapping(id="key", input=("input",), expected=(), metadata=(), tags=None),
            {"key": "r1", "input": 1},
        ),
        (ColumnMapping(id=None, input=("input",), expected=(), metadata=(), tags=None), {"input": 1}),
        (ColumnMapping(id="id", input=("q",), expected=(), metadata=(), tags=None), {"id": "r1", "q": 1}),
        (
            ColumnMapping(id="id", input=("input", "c"), expected=(), metadata=(), tags=None),
            {"id": "r1", "input": 1},
        ),
    ],
)
def test_a_json_line_that_mapping_changes_or_refuses_is_mapped(
    mapping: ColumnMapping, row: dict[str, Any]
) -> None:
    assert from_line(mapper(mapping), orjson.dumps(row)) == mapper(mapping).event(row)


def test_a_json_line_over_the_limit_with_its_spaces_is_measured_without_them() -> None:
    row = {"id": "r1", "input": "q"}
    mapped = mapper(DEFAULTS).event(row)
    assert isinstance(mapped, Event)
    spaced = orjson.dumps(row, option=orjson.OPT_INDENT_2)
    assert from_line(mapper(DEFAULTS, max_event_bytes=len(mapped.json)), spaced) == mapped


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", " ", "q", "a, b", ' {"a": 1}', "[1", "[]"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2)
    ),
    max_leaves=6,
)
_ROWS = st.dictionaries(
    st.sampled_from(["id", "input", "expected", "metadata", "tags", "note"]),
    _JSON_VALUES | st.sampled_from(["r1", "r2"]) | st.lists(st.sampled_from(["t", "u"]), max_size=2),
    max_size=6,
)


@given(row=_ROWS, parse_json=st.booleans())
def test_a_json_line_is_the_event_that_mapping_it_would_make(row: dict[str, Any], parse_json: bool) -> None:
    text = orjson.dumps(row) + b"\n"
    as_read, mapped = from_line(mapper(DEFAULTS, parse_json), text), mapper(DEFAULTS, parse_json).event(row)
    if isinstance(as_read, Event) and isinstance(mapped, Event):
        assert (as_read.id, orjson.loads(as_read.json)) == (mapped.id, orjson.loads(mapped.json))
    elif isinstance(as_read, RowProblem) and isinstance(mapped, RowProblem):
        assert replace(as_read, values=mapped.values) == mapped
        # Or the line as written, when a number in it may have been rounded (tests/push/test_messy_files.py).
        assert as_read.values in (mapped.values, text.decode().rstrip("\n"))
    else:
        assert as_read == mapped


# A chunk of rows maps as its rows do one by one ------------------------------------------------------------

_EVENT_ROWS = st.fixed_dictionaries(
    {"id": st.sampled_from(["r1", "r2", "r3"])},
    optional={
        "input": _JSON_VALUES,
        "expected": _JSON_VALUES,
        "metadata": st.dictionaries(st.sampled_from(["a", "b"]), _JSON_VALUES, max_size=2),
        "tags": st.lists(st.sampled_from(["t", "u"]), max_size=2),
    },
)
_UNREADABLE = RowProblem(None, "invalid JSON", values="{")


# Each of what one check of a line as its event refuses, put into one row of a chunk of rows shaped as events.
@pytest.mark.parametrize(
    "spoiler",
    [
        {},
        {"id": " "},
        {"id": 7},
        {"metadata": "web"},
        {"tags": "t, u"},
        {"tags": ["t", 2]},
        {"input": None},
        {"expected": None},
        {"input": ' {"a": 1}'},
        {"expected": "[1"},
        {"note": "not mapped"},
        {"input": "x" * 60},
    ],
)
@given(
    rows=st.lists(_EVENT_ROWS | st.just(_UNREADABLE), min_size=1, max_size=4),
    spoiled=st.integers(0, 3),
    parse_json=st.booleans(),
)
def test_a_chunk_of_json_lines_maps_as_its_rows_do_one_by_one(
    rows: list[dict[str, Any] | RowProblem],
    spoiler: dict[str, Any],
    spoiled: int,
    parse_json: bool,
) -> None:
    if isinstance(row := rows[spoiled % len(rows)], dict):
        rows[spoiled % len(rows)] = row | spoiler
    texts = [b"{\n" if isinstance(row, RowProblem) else orjson.dumps(row) + b"\n" for row in rows]
    rows_mapper = mapper(DEFAULTS, parse_json, max_event_bytes=80)
    chunk = rows_mapper.chunk(RowChunk(7, rows, texts))
    one_by_one = [
        (number, row if isinstance(row, RowProblem) else from_line(rows_mapper, text))
        for number, row, text in zip(range(7, 7 + len(rows)), rows, texts, strict=True)
    ]
    assert chunk.problems == [(number, out) for number, out in one_by_one if isinstance(out, RowProblem)]
    events = [(number, out.id, out.json) for number, out in one_by_one if isinstance(out, Event)]
    assert list(zip(chunk.numbers, chunk.ids, chunk.events, strict=True)) == events


class _Unparsed(list[dict[str, Any] | RowProblem]):
    """Rows that must not be looked at: their lines were never parsed."""

    def __getitem__(self, index: Any) -> Any:
        raise AssertionError(f"row {index} was looked at")

    def __iter__(self) -> Any:
        raise AssertionError("the rows were looked at")


def test_a_chunk_of_lines_that_all_are_their_events_is_neither_parsed_nor_mapped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows: list[dict[str, Any]] = [
        {"id": "r1", "input": {"q": 1}, "tags": ["t"]},
        {"id": "r2", "expected": "a", "metadata": {"k": None}},
    ]
    texts = [orjson.dumps(row) + b"\n" for row in rows]
    monkeypatch.setattr(RowMapper, "event", None)
    chunk = mapper(DEFAULTS).chunk(RowChunk(1, _Unparsed(rows), texts))
    assert (chunk.numbers, chunk.ids, chunk.events, chunk.problems) == ([1, 2], ["r1", "r2"], texts, [])


def test_a_line_with_a_key_unknown_to_the_mapping_is_parsed_so_its_reader_learns_the_key() -> None:
    text = b'{"id": "r1", "input": "q", "expected": "a"}\n'
    mapping = ColumnMapping(id="id", input=("input",), expected=("expected",), metadata=(), tags=None)
    before_expected = mapper(mapping, known_columns=("id", "input"))
    with pytest.raises(AssertionError, match="looked at"):
        before_expected.chunk(RowChunk(1, _Unparsed([orjson.loads(text)]), [text]))
    mapped = from_line(before_expected, text)
    assert isinstance(mapped, Event) and orjson.loads(mapped.json) == orjson.loads(text)
    assert from_line(mapper(mapping), text) == Event("r1", text)
