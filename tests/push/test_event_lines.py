"""Which JSON lines are their dataset events, told from their text without parsing their values."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.errors import PushError
from connector.progress import NullProgress
from connector.push import read
from connector.push.event_lines import EventLines
from connector.push.map import ColumnMapping, Event, RowMapper
from connector.push.read import RowChunk, RowProblem
from connector.push.run import PushOptions, push_file

FIELDS = frozenset({"id", "input", "expected", "metadata", "tags"})


def event_id(
    line: bytes, *, parsed: frozenset[str] = frozenset(), fields: frozenset[str] = FIELDS
) -> str | None:
    (found,) = EventLines(fields, parsed, max_event_bytes=1000).ids([line])
    return found


@pytest.mark.parametrize(
    "line",
    [
        b'{"id": "r1"}',
        b'{"tags": [], "id": "r1", "input": {"q": [1, {"a": null}]}, "expected": 0, "metadata": {}}\n',
        b'  {"id": " r1 ", "input": "caf\xc3\xa9", "metadata": {"k": "\xe2\x82\xac"}}  \r\n',
        b'{"id": "r1", "input": "{\\"a\\": 1}"}',
        b'{"id": "r1", "input": "plain text", "expected": ""}',
    ],
)
def test_a_line_of_event_fields_is_its_event(line: bytes) -> None:
    assert event_id(line, parsed=frozenset({"expected"})) == orjson.loads(line)["id"]


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b'{"input": "q"}', "no id"),
        (b'{"id": 7, "input": "q"}', "an id that is not text"),
        (b'{"id": " ", "input": "q"}', "a blank id"),
        (b'{"id": "r1", "note": "q"}', "a key that is no field"),
        (b'{"id": "r1", "input": null}', "a null field"),
        (b'{"id": "r1", "expected": null}', "a null field"),
        (b'{"id": "r1", "metadata": null}', "metadata that is null"),
        (b'{"id": "r1", "metadata": ["web"]}', "metadata that is no object"),
        (b'{"id": "r1", "metadata": "web"}', "metadata that is no object"),
        (b'{"id": "r1", "tags": "a, b"}', "tags that are no list"),
        (b'{"id": "r1", "tags": ["a", 2]}', "a tag that is no string"),
        (b'{"id": "r1", "tags": null}', "null tags"),
        (b'{"id": "r1", "input": "\xff"}', "bytes that are not UTF-8 in a value"),
        (b'{"id": "r1", "input": {"k": "\xc3"}}', "bytes that are not UTF-8 deep in a value"),
        (b'{"id": "r1", "input": [1, 2,]}', "invalid JSON"),
        (b'{"id": "r1"} {"id": "r2"}', "two objects"),
        (b'["r1"]', "no object"),
        (b'{"id": "r1", "input": "' + b"x" * 990 + b'"}', "over the size limit"),
        (b'{"id": "r1", "input": ' + b"[" * 300 + b"]" * 300 + b"}", "nested deeper than a row may be"),
        (b'{"id": "r1", "input": ' + b'[{"k": ' * 150 + b"0" + b"}]" * 150 + b"}", "nested deeper, by both"),
    ],
)
def test_a_line_that_mapping_would_change_or_refuse_is_not_its_event(line: bytes, why: str) -> None:
    assert event_id(line) is None, why


def test_a_line_with_a_key_outside_the_fields_given_is_not_its_event() -> None:
    line = b'{"id": "r1", "input": "q", "tags": ["t"]}'
    assert event_id(line, fields=frozenset({"id", "input", "tags"})) == "r1"
    assert event_id(line, fields=frozenset({"id", "input"})) is None


@pytest.mark.parametrize(
    "text",
    [b'"{\\"a\\": 1}"', b'"[1]"', b'" [1]"', b'"\\u007b}"', b'"\\n{}"', b'"\xe3\x80\x80{}"', b'"\xc2\xa0x"'],
)
def test_text_of_a_parsed_field_that_may_start_like_json_is_left_to_the_parsed_row(text: bytes) -> None:
    line = b'{"id": "r1", "input": %s}' % text
    assert event_id(line) == "r1"
    assert event_id(line, parsed=frozenset({"input"})) is None


def test_text_of_a_parsed_field_that_cannot_look_like_json_is_its_event() -> None:
    assert event_id(b'{"id": "r1", "input": "q {1}"}', parsed=frozenset({"input"})) == "r1"
    assert event_id(b'{"id": "r1", "input": ""}', parsed=frozenset({"input"})) == "r1"


def test_each_line_of_a_run_is_told_apart() -> None:
    lines = [b'{"id": "a"}\n', b'{"id": 2}\n', b"{\n", b'{"id": "d", "input": 1}']
    assert EventLines(FIELDS, frozenset(), 100).ids(lines) == ["a", None, None, "d"]


_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.sampled_from(["", " q", "q", "{}", "[1", "\u3000{", "é", "\\"]),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(["a", "é"]), inner, max_size=2)
    ),
    max_leaves=4,
)
_LINES = st.dictionaries(
    st.sampled_from(["id", "input", "expected", "metadata", "tags", "note"]),
    _VALUES | st.sampled_from(["r1", " ", "é"]) | st.lists(st.sampled_from(["t", "é"]), max_size=2),
    max_size=5,
).map(lambda row: orjson.dumps(row) + b"\n")


@given(lines=st.lists(_LINES, min_size=1, max_size=5), parsed=st.sets(st.sampled_from(["input", "expected"])))
def test_a_run_of_lines_is_told_as_each_of_its_lines_is(lines: list[bytes], parsed: set[str]) -> None:
    event_lines = EventLines(FIELDS, frozenset(parsed), 60)
    # A line that is no event makes every line of the run be told on its own.
    assert event_lines.ids(lines) == event_lines.ids([*lines, b"{"])[:-1]


def test_runs_of_object_values_and_of_other_values_are_told_as_each_of_their_lines_is() -> None:
    # Runs whose input, expected and metadata are objects are decided by a decoding of their own; a run
    # with other values (text, a number, null) by the general one. Each decides as the other would.
    objects = [b'{"id": "a", "input": {"q": 1}, "metadata": {}}', b'{"id": "b", "expected": {"a": [null]}}']
    others = [b'{"id": "c", "input": "{}"}', b'{"id": "d", "input": null}', b'{"id": "e", "expected": 2}']
    event_lines = EventLines(FIELDS, frozenset({"input"}), 100)
    blank_or_null = ([objects[0], b'{"id": " ", "input": {}}'], [objects[0], b'{"id": "d", "input": null}'])
    for lines in (objects, *blank_or_null, objects + others, objects, others[2:]):
        # A line that is no event makes each line be told on its own, by the general decoding.
        told = event_lines.ids([*lines, b"{"])[:-1]
        assert event_lines.ids(lines) == told, lines
    assert told == ["e"]


# What is sent as written keeps its numbers; a row that must be mapped is parsed, and refused if
# its numbers cannot be read.

DEFAULTS = ColumnMapping(
    id="id", input=("input",), expected=("expected",), metadata=("metadata",), tags="tags"
)


def mapped(line: bytes) -> Event | RowProblem:
    rows_mapper = RowMapper(DEFAULTS, project="p", dataset="d", parse_json=True, known_columns=tuple(FIELDS))
    problem = RowProblem(None, "invalid JSON")
    chunk = rows_mapper.chunk(RowChunk(1, [problem], [line]))
    return Event(chunk.ids[0], chunk.events[0]) if chunk.ids else chunk.problems[0][1]


def test_numbers_beyond_a_double_go_as_written_in_an_event_line() -> None:
    for line in (b'{"id": "r1", "input": {"x": 1e999}}', b'{"id": "r1", "input": 1%s}' % (b"0" * 400)):
        assert mapped(line) == Event("r1", line)


def test_a_line_that_must_be_mapped_is_parsed_and_its_problem_reported() -> None:
    assert mapped(b'{"id": 1, "input": {"x": 1e999}}') == RowProblem(None, "invalid JSON")


def test_a_file_of_event_lines_is_checked_without_parsing_a_line_into_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"id": f"r{n}", "input": {"q": n}}) + b"\n" for n in range(3000)))
    parsed_runs: list[int] = []
    parse = read._jsonl_rows
    monkeypatch.setattr(read, "_jsonl_rows", lambda lines: parsed_runs.append(len(lines)) or parse(lines))
    summary = push_file(None, PushOptions(file=path, project="p", dataset="d", dry_run=True), NullProgress())
    assert (summary.rows_read, summary.batches, parsed_runs) == (3000, 3, [])
    # A line that is not its event has its run parsed, and only that run.
    path.write_bytes(path.read_bytes() + b'{"id": 7, "input": "q"}\n')
    summary = push_file(None, PushOptions(file=path, project="p", dataset="d", dry_run=True), NullProgress())
    assert (summary.rows_read, parsed_runs) == (3001, [3001 - 2 * 1024])


def test_a_line_nested_too_deep_is_refused_by_the_check_before_anything_is_sent(tmp_path: Path) -> None:
    # Sent as written, it passed the check and `--dry-run`; the API refused it after the rows before it.
    deep = b'{"id": "deep", "input": ' + b"[" * 300 + b"]" * 300 + b"}"
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"id": f"r{n}", "input": n}) + b"\n" for n in range(2000)) + deep)
    with pytest.raises(PushError, match="row 2001: its values nest deeper than the 255 levels"):
        push_file(None, PushOptions(file=path, project="p", dataset="d", dry_run=True), NullProgress())
