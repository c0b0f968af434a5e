"""Reading push input files: formats, compression, row numbering and unreadable rows."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import re
import time
from itertools import accumulate
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.errors import PushError
from connector.push import read as push_read
from connector.push import read_arrow
from connector.push.read import FileFormat, RowProblem, SourceFile, infer_format


def numbered(source: SourceFile) -> list[tuple[int, dict[str, Any] | RowProblem]]:
    return [(chunk.first_row + i, row) for chunk in source.chunks() for i, row in enumerate(chunk.rows)]


def problems(source: SourceFile) -> dict[int, RowProblem]:
    return {number: row for number, row in numbered(source) if isinstance(row, RowProblem)}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.csv", FileFormat.CSV),
        ("a.CSV.gz", FileFormat.CSV),
        ("a.parquet", FileFormat.PARQUET),
        ("a.jsonl", FileFormat.JSONL),
        ("a.ndjson", FileFormat.JSONL),
        ("a.jsonl.gz", FileFormat.JSONL),
        ("a.b.jsonl.zst", FileFormat.JSONL),
    ],
)
def test_format_comes_from_the_extension(name: str, expected: FileFormat) -> None:
    assert infer_format(Path(name)) is expected


def test_unknown_extension_asks_for_format() -> None:
    with pytest.raises(PushError, match=r"data\.txt: cannot tell the format.*--format"):
        infer_format(Path("data.txt"))


def test_csv_values_are_text_with_empty_cells_null(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('id,input,expected\n1,"{""a"": 1}",""\n2,"two\nlines",\n', encoding="utf-8")
    source = SourceFile(path)
    assert source.columns == ("id", "input", "expected")
    assert numbered(source) == [
        (1, {"id": "1", "input": '{"a": 1}', "expected": ""}),
        (2, {"id": "2", "input": "two\nlines", "expected": None}),
    ]


def test_gzip_csv_reads_like_plain(tmp_path: Path) -> None:
    text = "input,expected\nq1,a1\nq2,a2\n"
    (tmp_path / "d.csv").write_text(text)
    (tmp_path / "d.csv.gz").write_bytes(gzip.compress(text.encode()))
    assert numbered(SourceFile(tmp_path / "d.csv.gz")) == numbered(SourceFile(tmp_path / "d.csv"))


def test_a_parquet_file_of_large_rows_is_read_a_few_rows_at_a_time(tmp_path: Path) -> None:
    # 1,024 rows at a time whatever their size: 5 MB rows took gigabytes, where JSON Lines stayed flat.
    path = tmp_path / "wide.parquet"
    rows = 300
    table = pa.table(
        {"id": [f"r{n}" for n in range(rows)], "input": [f"{n}" + "z" * 100_000 for n in range(rows)]}
    )
    pq.write_table(table, path, row_group_size=100)
    sizes = [len(chunk.rows) for chunk in SourceFile(path).chunks()]
    assert sum(sizes) == rows and max(sizes) * 100_000 <= push_read.CHUNK_BYTES
    assert [number for number, _ in numbered(SourceFile(path))] == list(range(1, rows + 1))
    # Narrow rows, as many as before.
    narrow = tmp_path / "narrow.parquet"
    pq.write_table(pa.table({"id": [f"r{n}" for n in range(3000)]}), narrow)
    assert [len(chunk.rows) for chunk in SourceFile(narrow).chunks()] == [1024, 1024, 952]


def test_csv_rows_are_numbered_across_chunks_around_malformed_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read_arrow, "CSV_BLOCK_BYTES", 256)
    lines = ["n,input"]
    for n in range(1, 301):
        lines.append(f"{n},a,extra" if n in (40, 300) else f'{n},"multi\nline"' if n % 7 == 0 else f"{n},v")
    path = tmp_path / "d.csv"
    path.write_text("\n".join(lines) + "\n")
    rows = numbered(SourceFile(path))
    assert len(list(SourceFile(path).chunks())) > 5
    assert [number for number, _ in rows] == list(range(1, 301))
    for number, row in rows:
        if number in (40, 300):
            assert row == RowProblem(None, "expected 2 columns, found 3", values=f"{number},a,extra")
        else:
            assert isinstance(row, dict) and row["n"] == str(number)


def test_a_row_with_a_value_too_many_for_a_one_column_csv_says_so_in_the_singular(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("input\nq1\nq2,extra\n")
    assert numbered(SourceFile(path)) == [
        (1, {"input": "q1"}),
        (2, RowProblem(None, "expected 1 column, found 2", values="q2,extra")),
    ]


def test_csv_rows_longer_than_a_block_are_read_with_bigger_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read_arrow, "CSV_BLOCK_BYTES", 256)
    monkeypatch.setattr(read_arrow, "CSV_MAX_BLOCK_BYTES", 16_384)
    # Blocks of 256, then 2,048, then 16,384 bytes: the second row needs the third.
    values = [f"v{n}" if n not in (30, 40) else "x" * (1_000 if n == 30 else 6_000) for n in range(1, 61)]
    path = tmp_path / "d.csv"
    path.write_text("input\n" + "\n".join(values) + "\n")
    assert numbered(SourceFile(path)) == [(n, {"input": value}) for n, value in enumerate(values, start=1)]

    # A long row in a column that is not sent must be read all the same (a file's 20 MB note stopped a push).
    path.write_text("input\nshort\n" + "y" * 40_000 + "\n")
    with pytest.raises(
        PushError,
        match=r"^d\.csv near row 2: a row is over 16,384 bytes, longer than a CSV file's rows may be "
        r"\(its columns not sent count too\): shorten it, or push the rows as JSON Lines or Parquet$",
    ):
        numbered(SourceFile(path))


def test_a_csv_row_of_tens_of_megabytes_is_read(tmp_path: Path) -> None:
    # A 20 MB value (in a column a push may not even send) stopped the push, --on-error skip or not.
    path = tmp_path / "d.csv"
    path.write_text("id,notes\nk1,short\nk2," + "z" * (20 << 20) + "\nk3,short\n")
    assert [(number, row["id"], len(row["notes"])) for number, row in numbered(SourceFile(path))] == [
        (1, "k1", 5),
        (2, "k2", 20 << 20),
        (3, "k3", 5),
    ]


class _SlowFile(io.RawIOBase):
    """A file whose reads take a while, noting a close that lands while a read is under way."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._file = path.open("rb", buffering=0)
        self._reads_under_way = 0
        self.closed_during_a_read = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._reads_under_way += 1
        try:
            time.sleep(0.002)
            return self._file.readinto(buffer)
        finally:
            self._reads_under_way -= 1

    def close(self) -> None:
        self.closed_during_a_read |= self._reads_under_way > 0
        self._file.close()
        super().close()


def test_a_csv_file_is_never_closed_while_pyarrow_reads_ahead_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pyarrow's CSV reader reads ahead on a thread of its own. A file closed under that thread's read
    # frees its descriptor for the next file opened, and the read then takes that file's bytes: a push
    # once found no rows in a file that had one.
    monkeypatch.setattr(read_arrow, "CSV_BLOCK_BYTES", 256)
    monkeypatch.setattr(read_arrow, "CSV_MAX_BLOCK_BYTES", 4096)
    opened: list[_SlowFile] = []

    def slow_stream(source: push_read.InputFile) -> pa.NativeFile:
        opened.append(_SlowFile(source.path))
        return pa.PythonFile(opened[-1], mode="r")

    monkeypatch.setattr(read_arrow, "_arrow_stream", slow_stream)
    # The long row makes the read start again with bigger blocks, after the first read's error.
    values = [f"value {n}" if n != 500 else "x" * 1000 for n in range(1, 1001)]
    path = tmp_path / "d.csv"
    path.write_text("input\n" + "\n".join(values) + "\n")
    assert numbered(SourceFile(path)) == [(n, {"input": value}) for n, value in enumerate(values, start=1)]
    # The header, the probe for a first row, the full read and its retry.
    assert [file.closed_during_a_read for file in opened] == [False] * 4


def test_csv_invalid_utf8_names_the_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"input,expected\nfine,ok\nbad \xff here,ok\n")
    found = problems(SourceFile(path))
    assert list(found) == [2]
    assert found[2].column == "input"
    assert found[2].reason == "not valid UTF-8 (byte 0xff at offset 4)"
    assert found[2].values == {"input": "bad \ufffd here", "expected": "ok"}


def test_csv_header_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"input,\xe9\nq,a\n")
    with pytest.raises(PushError, match=r"d\.csv: the header is not valid UTF-8"):
        SourceFile(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("e.csv", b"", "e.csv is empty"),
        ("e.csv.gz", gzip.compress(b"", mtime=0), "e.csv.gz is empty"),
        ("e.jsonl", b"", "e.jsonl is empty"),
        ("e.jsonl", b"\n  \n\n", "e.jsonl is empty"),
        ("e.csv", b"input,expected\n", "e.csv has a header but no rows"),
        ("e.csv", b"input,expected", "e.csv has a header but no rows"),
        ("e.csv.gz", gzip.compress(b"input", mtime=0), "e.csv.gz has a header but no rows"),
        ("e.csv", b"   ", "e.csv is empty"),
        ("e.parquet", b"", "e.parquet is empty"),
    ],
)
def test_empty_files(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(PushError, match=f"^{message}$"):
        SourceFile(tmp_path / name)


def test_a_file_the_kernel_makes_up_is_not_called_empty() -> None:
    with pytest.raises(
        PushError, match=r"^/proc/cpuinfo is not a regular file \(its size is 0, yet it holds"
    ):
        SourceFile(Path("/proc/cpuinfo"))


def test_parquet_with_no_rows(tmp_path: Path) -> None:
    pq.write_table(pa.table({"input": pa.array([], pa.string())}), tmp_path / "e.parquet")
    with pytest.raises(PushError, match=r"^e\.parquet has no rows$"):
        SourceFile(tmp_path / "e.parquet")


@pytest.mark.parametrize(
    ("name", "marks"),
    [("d.csv", 1), ("d.csv", 2), ("d.csv.gz", 3), ("d.jsonl", 1), ("d.jsonl", 2), ("d.json", 2)],
)
def test_a_utf8_byte_order_mark_is_ignored(tmp_path: Path, name: str, marks: int) -> None:
    # Two: a tool that adds one to text that has one; the second was "invalid JSON (UTF-8 byte order mark…".
    content = {".csv": b"input\nq\n", ".jsonl": b'{"input": "q"}\n', ".json": b'[{"input": "q"}]'}
    data = b"\xef\xbb\xbf" * marks + content[Path(name.removesuffix(".gz")).suffix]
    (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    assert numbered(SourceFile(tmp_path / name)) == [(1, {"input": "q"})]


@pytest.mark.parametrize("name", ["d.csv.gz", "d.jsonl.gz"])
def test_a_truncated_gzip_is_a_file_error(tmp_path: Path, name: str) -> None:
    lines = b"".join(b'{"input": "%d"}\n' % n for n in range(50_000))
    content = b"input\n" + lines if name.startswith("d.csv") else lines
    (tmp_path / name).write_bytes(gzip.compress(content)[:-5000])
    with pytest.raises(PushError) as broken:
        numbered(SourceFile(tmp_path / name))
    # Its first block of rows could not be read whole: no row is named ("near row 1" was, for damage
    # anywhere in the file).
    assert str(broken.value) == f"{name}: cannot read it (Truncated compressed stream)"


@pytest.mark.parametrize(
    ("name", "compress", "said"),
    [
        (
            "d.csv.gz",
            lambda data: gzip.compress(data, mtime=0),
            "zlib inflate failed: unknown compression method",
        ),
        ("d.csv.bz2", bz2.compress, "bz2 decompress failed: data is not bz2-compressed (no magic header)"),
    ],
)
def test_a_compressed_file_padded_with_zeros_says_what_may_follow_its_data(
    tmp_path: Path, name: str, compress: Any, said: str
) -> None:
    # Tape or block padding, which gzip ignores: the reason alone blamed the file's compression, and then
    # pointed at `gzip -t`, which passes such a file.
    padded = compress(b"id,input\na,1\n") + bytes(512)
    (tmp_path / name).write_bytes(padded)
    with pytest.raises(PushError) as broken:
        numbered(SourceFile(tmp_path / name))
    zeros = len(padded) - len(padded.rstrip(b"\0"))  # 512, and any the stream's own end has
    assert str(broken.value) == (
        f"{name}: cannot read it ({said}; its last {zeros} bytes are zeros, padding after its compressed "
        "data (which gzip and bzip2 skip) that bt-sync does not read past: decompress it and push the result)"
    )
    # Followed by bytes that are not zeros: another file's, or damage.
    (tmp_path / name).write_bytes(compress(b"id,input\na,1\n") + b"\x01" * 512)
    with pytest.raises(PushError) as broken:
        numbered(SourceFile(tmp_path / name))
    assert str(broken.value).endswith(
        "; its compressed data is damaged, or followed by bytes that are none (another file): `gzip -t`, "
        "`bzip2 -t`, `zstd -t` or `lz4 -t` tells)"
    )


def test_a_read_error_deep_in_json_lines_names_the_rows_read_before_it(tmp_path: Path) -> None:
    # Several read blocks of lines: the stream breaks after the first blocks were read whole.
    lines = b"".join(b'{"input": "%d"}\n' % n for n in range(200_000))
    (tmp_path / "d.jsonl.gz").write_bytes(gzip.compress(lines)[:-5000])
    with pytest.raises(PushError) as broken:
        numbered(SourceFile(tmp_path / "d.jsonl.gz"))
    past = re.fullmatch(
        r"d\.jsonl\.gz: cannot read it past row (\d+) \(Truncated compressed stream\)", str(broken.value)
    )
    assert past is not None
    # The rows read whole: past the first blocks, short of the file's end.
    assert 100_000 < int(past.group(1)) < 200_000


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PushError, match="no such file"):
        SourceFile(tmp_path / "nope.csv")


def test_a_dash_is_no_standard_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # "-: no such file", where other tools read standard input; a file named so is read.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        PushError, match=r"^- names no file: a push reads its file more than once, not from standard"
    ):
        SourceFile(Path("-"))
    Path("-").write_text("id,input\n1,a\n")
    assert SourceFile(Path("-"), FileFormat.CSV).columns == ("id", "input")


def test_a_loop_of_symbolic_links_is_named_so(tmp_path: Path) -> None:
    # Listed by `ls`, it was "no such file".
    (tmp_path / "a.csv").symlink_to(tmp_path / "b.csv")
    (tmp_path / "b.csv").symlink_to(tmp_path / "a.csv")
    with pytest.raises(PushError, match=r"a\.csv leads into a loop of symbolic links: name a file$"):
        SourceFile(tmp_path / "a.csv")


def test_garbage_parquet_is_a_file_error(tmp_path: Path) -> None:
    (tmp_path / "d.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(PushError, match=r"^d\.parquet is not a Parquet file: it is text; pass --format"):
        SourceFile(tmp_path / "d.parquet")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("d.csv", b'{"id": "1", "input": "a"}\n', "d.csv holds JSON Lines, not CSV; pass --format jsonl"),
        (
            "d.tsv.gz",
            gzip.compress(b'\xef\xbb\xbf{"id": 1}\n{"id": 2}\n', mtime=0),
            "d.tsv.gz holds JSON Lines",
        ),
        ("d.csv", b'[\n  {"id": "1"}\n]\n', "d.csv holds JSON, not CSV; pass --format json"),
        ("d.csv", b'{\n  "id": "1"\n}\n', "d.csv holds JSON, not CSV"),
        ("d.csv", b'[{"id": "1"}, {"id": "2"}]', "d.csv holds JSON, not CSV"),
    ],
)
def test_json_named_as_csv_says_which_format_to_pass(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(PushError, match=f"^{re.escape(message)}"):
        SourceFile(tmp_path / name)


@pytest.mark.parametrize("header", [b"[id],[input]", b'"{id}",input', b"id,input"])
def test_a_csv_header_that_is_no_json_value_is_read_as_a_header(tmp_path: Path, header: bytes) -> None:
    (tmp_path / "d.csv").write_bytes(header + b"\n1,a\n")
    assert len(SourceFile(tmp_path / "d.csv").columns) == 2


def test_parquet_keeps_types_and_numbers_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_arrow, "CHUNK_ROWS", 3)
    table = pa.table(
        {
            "input": [{"q": f"question {n}", "k": n} for n in range(10)],
            "expected": [float(n) / 2 for n in range(10)],
            "tags": [["a", "b"]] * 10,
        }
    )
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=4)
    source = SourceFile(tmp_path / "d.parquet")
    rows = numbered(source)
    assert [number for number, _ in rows] == list(range(1, 11))
    assert rows[7] == (8, {"input": {"q": "question 7", "k": 7}, "expected": 3.5, "tags": ["a", "b"]})


@pytest.mark.parametrize(
    ("column", "type_name"),
    [
        (pa.array([b"\x00"], pa.binary()), "binary"),
        (pa.array([1], pa.duration("s")), "duration[s]"),
        (pa.array([[(1, 1)]], pa.map_(pa.int64(), pa.int64())), "map<int64, int64"),
    ],
)
def test_parquet_types_without_json_form_are_refused(
    tmp_path: Path, column: pa.Array, type_name: str
) -> None:
    pq.write_table(pa.table({"input": ["q"], "odd": column}), tmp_path / "d.parquet")
    source = SourceFile(tmp_path / "d.parquet")
    with pytest.raises(
        PushError, match=rf'^d\.parquet, column "odd": type {re.escape(type_name)}.* cannot be sent'
    ):
        source.read_only({"input", "odd"})
    # A column the mapping never sends is never read.
    source.read_only({"input"})
    assert numbered(source) == [(1, {"input": "q"})]


def test_parquet_invalid_utf8_names_the_row_and_column(tmp_path: Path) -> None:
    # Parquet writers do not check UTF-8; pyarrow lets us write such a file by viewing bytes as text.
    text = pa.array([b"ok", b"\xffbad", b"fine"], pa.binary()).view(pa.string())
    pq.write_table(pa.table({"n": [1, 2, 3], "input": text}), tmp_path / "d.parquet")
    rows = numbered(SourceFile(tmp_path / "d.parquet"))
    assert rows == [
        (1, {"n": 1, "input": "ok"}),
        # The row's values for the rejects file, the bad bytes shown as U+FFFD.
        (
            2,
            RowProblem(
                "input", "not valid UTF-8 (byte 0xff at offset 0)", values={"n": 2, "input": "\ufffdbad"}
            ),
        ),
        (3, {"n": 3, "input": "fine"}),
    ]


def test_jsonl_rows_are_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"input": 1}\n\n{"input": "two", "expected": [2]}\r\n{"input": 3}')
    source = SourceFile(path)
    assert numbered(source) == [(1, {"input": 1}), (3, {"input": "two", "expected": [2]}), (4, {"input": 3})]
    assert (source.columns, source.columns_complete) == (("input", "expected"), True)
    # Cut at the blank line.
    assert [chunk.first_row for chunk in source.chunks()] == [1, 3]


def test_jsonl_unreadable_lines_become_problems(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl.gz"
    lines = [b'{"input": 1}', b'{"input": ', b"[1, 2]", b'{"input": "\xff"}', b'{"input": 5}']
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    found = problems(SourceFile(path))
    assert {number: (p.column, p.reason) for number, p in found.items()} == {
        2: (None, "invalid JSON (unexpected end of data at char 10)"),
        3: (None, "expected a JSON object, found a list"),
        4: (None, "not valid UTF-8 (byte 0xff at offset 11)"),
    }
    assert found[3].values == "[1, 2]"


@pytest.mark.parametrize(
    ("line", "kind"), [(b"[1, 2]", "a list"), (b'"text"', "text"), (b"3", "a number"), (b"null", "null")]
)
def test_a_json_line_of_json_not_an_object_is_a_problem(tmp_path: Path, line: bytes, kind: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"input": 1}\n' + line + b'\n{"input": 3}\n')
    assert numbered(SourceFile(path)) == [
        (1, {"input": 1}),
        (2, RowProblem(None, f"expected a JSON object, found {kind}", values=line.decode())),
        (3, {"input": 3}),
    ]


@pytest.mark.parametrize(("chunk_rows", "read_bytes", "most_rows"), [(100, 1 << 20, 100), (1000, 1000, 78)])
def test_jsonl_chunks_are_bounded_in_rows_and_in_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_rows: int, read_bytes: int, most_rows: int
) -> None:
    monkeypatch.setattr(push_read, "CHUNK_ROWS", chunk_rows)
    monkeypatch.setattr(push_read, "JSONL_READ_BYTES", read_bytes)
    path = tmp_path / "d.jsonl"
    # A read of 1,000 bytes ends in line 78: 9 lines of 12 bytes (`{"input":N}` and a newline), then of 13.
    path.write_bytes(b"".join(orjson.dumps({"input": n}) + b"\n" for n in range(1, 1001)))
    chunks = list(SourceFile(path).chunks())
    assert max(len(chunk.rows) for chunk in chunks) == most_rows
    assert [row for chunk in chunks for row in chunk.rows] == [{"input": n} for n in range(1, 1001)]
    sizes = [len(chunk.rows) for chunk in chunks]
    assert [chunk.first_row for chunk in chunks] == list(accumulate(sizes[:-1], initial=1))


text_values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(text_values, text_values), min_size=1, max_size=20))
def test_csv_text_survives_any_quoting(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str]]
) -> None:
    path = tmp_path_factory.mktemp("csv") / "d.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
        writer.writerow(["input", "expected"])
        writer.writerows(rows)
    read = [(row["input"], row["expected"]) for _, row in numbered(SourceFile(path)) if isinstance(row, dict)]
    assert read == rows
