"""The Typer application that every command module registers on."""

from __future__ import annotations

import codecs
import io
import json
import os
import re
import sys
from typing import IO, TYPE_CHECKING, Any, TextIO, cast, get_args

import typer
from typer._click.exceptions import UsageError  # Typer's own click, not exported
from typer.core import TyperCommand, TyperGroup, TyperOption

from connector.errors import OutputError, os_reason

if TYPE_CHECKING:
    from rich.console import Console
    from typer._click.core import Context as ClickContext  # Typer's own click, not exported

    from connector.destinations.base import Destination


_STDERR = 2
_BEYOND_ASCII = re.compile(r"[^\x00-\x7f]")
# How Typer's click starts the errors quoting a command line's words: those no parameter takes, and an
# option no command has.
_QUOTING_ARGUMENTS = ("Got unexpected extra argument(s)", "No such option")
# Tables' width where stdout is no terminal: `status`'s table of a usual warehouse (a 36-character id, a
# partition key, a time) fits; its keys and ids fold rather than go cut beyond.
PIPE_WIDTH = 200


class _CommandGroup(TyperGroup):
    """Typer's command group, with a help flag that is `False` when not given (Typer leaves it `None`).

    Typer checks the value of every option the group parses, and the group parses its own `--help`
    before handing over to a command (`bt-sync sync --help` too). A bool flag whose value is already a
    bool is taken as it is; any other value goes through Typer's pydantic layer, whose first use loads
    pydantic's validator machinery: 0.06-0.17 s of the 0.22-0.33 s a command's `--help` took (best of
    seven, each command but `push`, whose options are a pydantic model's fields), a cost `bt-sync
    --help` alone never paid. The commands themselves load it anyway.
    """

    def get_help_option(self, ctx: ClickContext) -> TyperOption | None:
        option = super().get_help_option(ctx)
        if option is not None and option.default is None:
            option.default = False
        return option

    def invoke(self, ctx: ClickContext) -> Any:
        """Run the command, whose usage errors do not show a key split at a blank (`hide_split_key`)."""
        try:
            return super().invoke(ctx)
        except UsageError as error:
            hide_split_key(error)
            raise


class CheckedCommand(TyperCommand):
    """A command refusing one of its options given where a text option's value was due
    (`refuse_option_as_value`)."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        refuse_option_as_value(ctx, args)
        return super().parse_args(ctx, args)


def refuse_option_as_value(ctx: ClickContext, args: list[str]) -> None:
    """Refuse a text option followed by a word that looks like an option (`--` and no blank: a query's
    leading comment has one): Click takes the next word as the value whatever it is, so `push f.csv
    --dataset --dry-run` pushed, for real, into a dataset named `--dry-run` (`--help`, or a misspelt
    `--dryrun`, as well), and `sync --project --full` looked for a project of that name. A value of that
    text is given joined (`--dataset=--dry-run`). Path and key options refuse such a value in their own
    words (`connector.cli.options`).

    Raises:
        UsageError: naming both.
    """
    options = {
        name: parameter
        for parameter in ctx.command.params
        if isinstance(parameter, TyperOption)
        for name in (*parameter.opts, *parameter.secondary_opts)
    }
    for at, word in enumerate(args[:-1]):
        if word == "--":  # the words after it are values
            return
        option = options.get(word)
        following = args[at + 1]
        if option is None or not _takes_text(option) or not _looks_like_an_option(following):
            continue
        named = following.partition("=")[0]
        given = f"the option {named}" if named in options else f"{following!r}, which looks like an option"
        raise UsageError(
            f"{word} is followed by {given}, not by its value: give {word} a value "
            f"({word}={following} for a value of that text)",
            ctx,
        )


def _looks_like_an_option(word: str) -> bool:
    return word.startswith("--") and not any(character.isspace() for character in word)


def _takes_text(option: TyperOption) -> bool:
    """Whether `option` takes text (one or more values) with no parser of its own."""
    descriptor = option.type_descriptor
    text = descriptor.annotation is str or get_args(descriptor.annotation) == (str,)
    return text and not option.is_flag and descriptor.parameter_info.parser is None


class KeyHidingCommand(CheckedCommand):
    """A command parsing its own arguments (`push`), whose usage errors do not show a key split at a blank
    (`hide_split_key`)."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except UsageError as error:
            hide_split_key(error)
            raise


def hide_split_key(error: UsageError) -> None:
    """A usage error quoting the word given after `--api-key`'s value, as a word no parameter took or as an
    option no command has, does not show it: a key split at a blank (`--api-key sk-abc def`, `--api-key=
    sk-abc`, a part starting with `-`) went to the terminal and to a scheduler's log as that word. Nor
    does it show a secret the command holds: the environment's key, pasted as a word (`bt-sync sync
    $KEY`), was quoted whole."""
    from connector.cli.secrets import secrets_given
    from connector.redaction import scrub

    error.message = scrub(error.message, secrets_given())
    after_key = words_after_key()
    quoting = next((start for start in _QUOTING_ARGUMENTS if error.message.startswith(start)), None)
    # An option's error names it by its first characters (`-s` of `-s3cr3t`).
    option = getattr(error, "option_name", None) or ""
    if quoting is not None and any(
        word in error.message or (option and word.startswith(option)) for word in after_key
    ):
        error.message = (
            f"{quoting}, not shown as it may be part of the key given to --api-key (a key split at a blank): "
            "quote a value holding a blank"
        )


def words_after_key() -> set[str]:
    """The words of the command line given right after `--api-key`'s value: a part of a key split at a
    blank, if the user left a blank in it unquoted."""
    arguments = sys.argv[1:]
    after_key = set()
    for at, argument in enumerate(arguments):
        flag, joined, _ = argument.partition("=")
        # The word after the key: after `--api-key=KEY`, or after `--api-key KEY`.
        if flag == "--api-key" and (after := at + (1 if joined else 2)) < len(arguments):
            after_key.add(arguments[after])
    return after_key


app = typer.Typer(
    name="bt-sync",
    help="Sync Braintrust logs, experiments and datasets into DuckDB and Parquet; push datasets back.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help: rendering it with rich would double the time `bt-sync --help` takes to start.
    rich_markup_mode=None,
    cls=_CommandGroup,
)


@app.callback()
def _global_options(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """Global options; `--debug` is read by `main()` before any command runs."""


def note_nothing_synced(target: Destination) -> None:
    """Say on stderr that nothing was synced where a command looked: most often a `--parquet`, `--duckdb`
    or `BT_SYNC_*` setting other than the sync's; where a sync prepared the tables, one that synced no
    log, experiment or dataset (it was told to sync none, or failed), which those settings would not mend."""
    if target.prepared():
        typer.echo(
            f"bt-sync: note: no log, experiment or dataset was synced into {target.description} yet: the "
            "syncs there found none (no project), synced catalog kinds only (--objects prompts, say) or "
            "failed (their errors say why)",
            err=True,
        )
        return
    typer.echo(
        f"bt-sync: note: no object was synced into {target.description} yet: run `bt-sync sync` first, or "
        "give this command the sync's warehouse settings (--duckdb / --parquet, or the iceberg ones)",
        err=True,
    )


class JsonOutput:
    """What a command given `--json` owes a scheduler reading its output: one JSON document on stdout.

    The command prints its summary through `print`; a command that fails before it did prints its error
    as the document instead (`connector.cli.main`), rather than leaving stdout empty.
    """

    requested: bool
    printed: bool

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the last command line's choice (the command line may run more than once in a process)."""
        self.requested = self.printed = False

    def request(self, wanted: bool) -> bool:
        """The `--json` option's callback: remember whether it was given."""
        self.requested = wanted
        return wanted

    def print(self, document: str) -> None:
        """Print the command's summary (a JSON document)."""
        print_output(json_for_stdout(document))
        self.printed = True


json_output = JsonOutput()


def json_for_stdout(document: str) -> str:
    """A JSON document as stdout can hold it: its characters beyond ASCII as JSON's escapes (`\\u00f8`)
    where stdout's encoding is not UTF-8 (`PYTHONIOENCODING=ascii`, an ASCII locale without Python's UTF-8
    mode). The document stays JSON, which `tolerate_stdout_encoding`'s `\\xf8` would not make it."""
    if document.isascii() or _writes_utf8(sys.stdout):
        return document
    return _BEYOND_ASCII.sub(lambda found: json.dumps(found.group())[1:-1], document)


def whole_writes_to_stdout() -> None:
    """Have stdout write each line whole, or fail with the system's reason.

    Unbuffered (`PYTHONUNBUFFERED=1` or `python -u`, as many container images set), stdout's text
    layer writes straight to the file and ignores how much of it the system took: a write the system
    cut short (the file-size limit, a disk filling) lost the rest, exit 0 (`status` and `--json`
    summaries written to a file were cut). A buffered layer between them writes the rest or raises;
    each line still leaves as it is printed.
    """
    stdout = sys.stdout
    if isinstance(stdout, io.TextIOWrapper) and isinstance(stdout.buffer, io.RawIOBase):
        # A file object of its own: the one replaced may be closed, with what it wraps, once unused.
        raw = io.FileIO(stdout.fileno(), "wb", closefd=False)
        sys.stdout = io.TextIOWrapper(
            io.BufferedWriter(raw),
            encoding=stdout.encoding,
            errors=stdout.errors,
            line_buffering=True,
            write_through=True,
        )


def tolerate_stdout_encoding() -> None:
    """Have stdout and stderr write a character their encoding cannot hold as its escape (`\\xf8`): a
    sync whose summary named a project `Prøject` ended in a traceback, exit 1, once it had committed."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and not _writes_utf8(stream):
            stream.reconfigure(errors="backslashreplace")


def _writes_utf8(stream: object) -> bool:
    """Whether a text stream's encoding is UTF-8, however it is spelt (`UTF8`, `utf_8`)."""
    try:
        return codecs.lookup(getattr(stream, "encoding", None) or "").name == "utf-8"
    except LookupError:  # none, or one Python does not know
        return False


def print_output(text: str) -> None:
    """Print a line of a command's output on stdout.

    A reader that has gone (`bt-sync status --json | head -1`) is no failure: the command ends as it
    would have, exit code included, its output going nowhere. Click would exit 1, saying nothing.
    """
    try:
        typer.echo(text)
    except BrokenPipeError:
        discard_output()
    except OSError as error:
        raise unwritable_output(error) from None


def unwritable_output(error: OSError) -> OutputError:
    """The error of output that could not be written (a full disk under `> out.json`, or /dev/full).

    Named as standard output's, not taken for the warehouse's disk; what is left of the output goes
    nowhere, so the flush at exit cannot fail a second time.
    """
    discard_output()
    return OutputError(f"cannot write to standard output: {os_reason(error)}")


def discard_output(stream: IO[str] | None = None) -> None:
    """Send what is left of `stream` (stdout) nowhere: later writes, and the flush at exit, cannot fail."""
    _to_nowhere((stream or sys.stdout).fileno())


def _to_nowhere(descriptor: int) -> None:
    """Point `descriptor` at the null device, whether it was open or closed."""
    nowhere = os.open(os.devnull, os.O_WRONLY)
    if nowhere != descriptor:  # a closed descriptor is the lowest free one, so `open` may have taken it
        os.dup2(nowhere, descriptor)
        os.close(nowhere)


class _ReaderMayLeave(io.TextIOBase):
    """stderr, whose reader may go away (`bt-sync push … 2>&1 | head`): what follows then goes nowhere;
    or which cannot be written (a scheduler's log volume full): that line is lost.

    Warnings, progress and errors go there: a line nobody reads must not fail the command, nor keep its
    `--json` summary from stdout (a push whose rows were sent exited 1, printing nothing, as its warning
    met a full disk: a false failure, where stderr was the only place to say it).
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            discard_output(self._stream)
        except OSError:
            pass
        return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            discard_output(self._stream)
        except OSError:
            pass

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]  # the wrapped stream's
        return self._stream.encoding


def stderr_reader_may_leave(stderr: TextIO | None) -> TextIO:
    """`stderr` as commands write to it: forgiving a reader that left; one closed at start, nowhere.

    A closed stderr (`2>&-`) is None, and `print(file=None)` writes to stdout, into a `--json` document.
    Its descriptor is taken too, so that no file opened later takes its place and receives what a
    library writes there.
    """
    if stderr is None:
        _to_nowhere(_STDERR)
        stderr = open(_STDERR, "w", closefd=False)  # noqa: SIM115 - lives as long as the process
    return cast(TextIO, _ReaderMayLeave(stderr))


def output_console(*, reader_may_leave: bool = False) -> Console:
    """Where commands print tables: the terminal's width, or wide enough for a log file or pipe to hold
    `status`'s table whole (its keys and ids are to be copied, and were cut at 140).

    A reader that has gone is no failure, as for `print_output` (rich would exit 1, saying nothing).

    Args:
        reader_may_leave: raise `BrokenPipeError` when the reader closes the pipe, for a command whose
            work is its output to stop early (`bt-sync sql … | head`).
    """
    from rich.console import Console

    class _Output(Console):
        def print(self, *objects: Any, **options: Any) -> None:
            try:
                super().print(*objects, **options)
            except BrokenPipeError:  # `on_broken_pipe`'s, for a command whose reader may leave
                raise
            except OSError as error:
                raise unwritable_output(error) from None

        def on_broken_pipe(self) -> None:
            if reader_may_leave:
                raise BrokenPipeError
            discard_output()

    # Not `COLUMNS` where no terminal is: a process may inherit one of another's (pytest-xdist's workers
    # set 80), and its tables' cells would be cut.
    return _Output(width=None if sys.stdout.isatty() else PIPE_WIDTH)
