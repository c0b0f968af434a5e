"""DuckDB's errors whose message its Python binding could not decode, raised as DuckDB meant them."""

from __future__ import annotations

import duckdb
import pytest

from connector.duckdb_messages import decoded_duckdb_errors, duckdb_error


def test_json_refused_with_its_quote_cut_inside_a_character_is_duckdb_s_invalid_input_error() -> None:
    # DuckDB quotes the JSON it refused, cut at a byte count: inside the 4-byte emoji for one of these.
    raised = []
    with duckdb.connect() as con:
        for shift in ("", "x", "xx", "xxx"):
            text = shift + "é\U0001f600a" * 40
            with pytest.raises(duckdb.Error) as refused, decoded_duckdb_errors():
                con.execute("SELECT json_structure(?)", ['{"a":"' + text])
            raised.append(type(refused.value))
            assert "Malformed JSON" in str(refused.value)
    assert set(raised) == {duckdb.InvalidInputException}


@pytest.mark.parametrize(
    ("kind", "meant"),
    [
        ("Invalid Input", duckdb.InvalidInputException),
        ("Conversion", duckdb.ConversionException),
        ("IO", duckdb.IOException),
        ("Out of Memory", duckdb.OutOfMemoryException),
        ("TransactionContext", duckdb.TransactionException),
        ("Mismatch Type", duckdb.TypeMismatchException),
        ("Missing Extension", duckdb.Error),  # no class of its own
    ],
)
def test_each_kind_of_message_is_its_class(kind: str, meant: type[duckdb.Error]) -> None:
    message = f"{kind} Error: cut \xc3".encode("latin-1")
    error = duckdb_error(UnicodeDecodeError("utf-8", message, len(message) - 1, len(message), "cut"))
    assert type(error) is meant and str(error) == f"{kind} Error: cut \ufffd"


def test_a_decode_error_that_is_no_duckdb_message_is_raised_as_it_is() -> None:
    with pytest.raises(UnicodeDecodeError), decoded_duckdb_errors():
        b"plain \xc3".decode()
