"""Text from the API, a file or a query, shown on a terminal as written.

A name, a value or an error's body may hold control characters (an ESC sequence moves the cursor,
recolours or retitles the terminal) or rich's markup (`[/]`, which rich would refuse with an error):
neither may act on the terminal of the operator running bt-sync.
"""

from __future__ import annotations

import os
import re
import sys
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

# Unicode's default-ignorable code points: characters a terminal shows as nothing (a zero-width space,
# a byte order mark, a soft hyphen, a Hangul filler, the marks and overrides of writing direction).
_IGNORABLE = [
    0xAD,
    0x34F,
    0x61C,
    0x115F,
    0x1160,
    0x17B4,
    0x17B5,
    *range(0x180B, 0x1810),
    *range(0x200B, 0x2010),
    *range(0x202A, 0x202F),
    *range(0x2060, 0x2070),
    0x3164,
    *range(0xFE00, 0xFE10),
    0xFEFF,
    0xFFA0,
    *range(0xFFF0, 0xFFF9),
    *range(0x1BCA0, 0x1BCA4),
    *range(0x1D173, 0x1D17B),
    # Of the block E0000-E0FFF, the code points assigned: the tags and the variation selectors.
    *range(0xE0000, 0xE0080),
    *range(0xE0100, 0xE01F0),
]
# Those a name or a value holds as part of what it shows, which `printable` leaves as they are: the
# zero-width joiner and non-joiner (emoji sequences, Persian and Indic words), the variation selectors
# (an emoji's presentation, Mongolian and ideographic variants), Mongolian's vowel separator and the
# tag characters (flags).
_PART_OF_TEXT = {
    0x200C,
    0x200D,
    *range(0x180B, 0x1810),
    *range(0xFE00, 0xFE10),
    *range(0xE0020, 0xE0080),
    *range(0xE0100, 0xE01F0),
}
# Shown escaped: the others, and the line and paragraph separators, which break a one-line message.
_INVISIBLE = [code for code in _IGNORABLE if code not in _PART_OF_TEXT] + [0x2028, 0x2029]
# C0 and C1 control characters and DEL, then the invisible characters.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))} | {
    code: f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}" for code in _INVISIBLE
}
# A table's cell may span lines, and rich expands its tabs: those two are layout, not control.
_CELL_ESCAPES = {code: escape for code, escape in _ESCAPES.items() if chr(code) not in "\n\t"}
_WITHOUT_IGNORABLE = dict.fromkeys(_IGNORABLE)
# The dashes that show as `-`, once in their compatibility form: the hyphen, the non-breaking one (which
# that form makes the hyphen), the figure and en dashes, and the minus sign.
_AS_HYPHEN = dict.fromkeys(map(ord, "\u2010\u2012\u2013\u2212"), "-")
_WITHOUT_INVISIBLE = dict.fromkeys(_INVISIBLE)


def as_given(text: str) -> str:
    """`text` as the shell passed it: bytes that are not UTF-8 shown as `\\xNN` (a lone surrogate from
    elsewhere, which no bytes spell, as `\\udNNN`)."""
    try:
        return os.fsencode(text).decode(errors="backslashreplace")
    except UnicodeEncodeError:
        return text.encode(errors="backslashreplace").decode()


def printable(text: str) -> str:
    """`text` with control characters escaped as `\\xNN` and invisible ones as `\\uNNNN`, fit for a
    one-line message on a terminal."""
    return text.translate(_ESCAPES)


def holds_invisible(text: str) -> bool:
    """Whether `text` holds an invisible character (`printable` shows it escaped)."""
    return text != text.translate(_WITHOUT_INVISIBLE)


def read_as(name: str) -> str:
    """How `name` reads: without the characters a terminal shows as nothing or blanks at its ends, in its
    compatibility form (a no-break space a space, accents composed: a name copied from macOS has them
    apart, `e` then U+0301, and shows as the same `é`), its dashes as the hyphen-minus (a word processor's
    non-breaking hyphen or en dash, which the compatibility form keeps)."""
    return unicodedata.normalize("NFKC", name.translate(_WITHOUT_IGNORABLE)).translate(_AS_HYPHEN).strip()


def null_cell() -> Text:
    """A table cell for a missing value (SQL NULL): the word, dimmed, so that it differs from empty text."""
    from rich.text import Text

    return Text("NULL", style="dim")


def plain_cells(*cells: str) -> list[Text]:
    """Table cells shown as written: rich markup in them is text, control characters but line breaks and
    tabs are escaped."""
    from rich.text import Text

    return [Text(cell.translate(_CELL_ESCAPES)) for cell in cells]


def folded_table(*headers: str, title: str | None = None) -> Table:
    """A table whose every cell folds onto more lines where the terminal is too narrow, never cut: a
    count cut to `30…` or a name to `golden-questi…` reads as nothing, or as another's."""
    from rich.table import Column, Table

    return Table(*(Column(header, overflow="fold") for header in headers), title=title)


def counted(count: int, plural: str) -> str:
    """`count` and the noun it counts, singular for exactly one: "1 row", "2,500 rows", "1 batch".

    Args:
        count: how many.
        plural: the noun's plural, one of those bt-sync counts (`rows`, `batches`, `retries`,
            `project_scores`); the singular drops its ending.
    """
    if count != 1:
        return f"{count:,} {plural}"
    if plural.endswith("ies"):
        return f"1 {plural[:-3]}y"
    if plural.endswith(("ches", "shes", "sses", "xes")):
        return f"1 {plural[:-2]}"
    return f"1 {plural.removesuffix('s')}"


# Characters of a name a one-line message shows: one of 5,000 characters made a 5 KB line.
LONGEST_NAME_SHOWN = 60


def cut(name: str) -> str:
    """`name`, or its first `LONGEST_NAME_SHOWN` characters and an ellipsis when it is longer."""
    return name if len(name) <= LONGEST_NAME_SHOWN else f"{name[:LONGEST_NAME_SHOWN]}…"


# How Python's `surrogateescape` carries a byte it could not decode.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def shell_text_as_utf8(text: str) -> str:
    """`text` given on the command line, with the bytes Python could not decode read as UTF-8: in an ASCII
    locale (`LC_ALL=C` without Python's UTF-8 mode) every byte beyond ASCII comes as an escape, and a
    query or a dataset's name `é` was refused as not UTF-8. Bytes that are not UTF-8 stay escaped (and
    are refused)."""
    if not _ESCAPED_BYTE.search(text):  # decoded whole, in any locale: taken as it is
        return text
    try:
        return text.encode(sys.getfilesystemencoding(), "surrogateescape").decode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # text the locale's encoding cannot hold: decoded already, not escaped
        return text


def locale_cannot_read(text: str) -> bool:
    """Whether the bytes of `text` Python could not decode are UTF-8 (an ASCII locale's doing), so that a
    message blames the locale rather than the name (`LOCALE_REMEDY`)."""
    read = shell_text_as_utf8(text)
    return read != text and not _ESCAPED_BYTE.search(read)


LOCALE_REMEDY = (
    "its bytes are UTF-8, which this process's locale does not read: run bt-sync with PYTHONUTF8=1 or in a "
    "UTF-8 locale (LC_ALL=C.UTF-8)"
)
