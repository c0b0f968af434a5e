"""Decide a large JSON Lines file's lines in a second process, ahead of the push's first pass.

Telling which JSON lines already are their events (`EventLines`) is about 40% of a push's first
pass, and each line's answer depends on that line alone. So for a large file a helper process
reads the file itself and decides each run of lines, while the push reads it too and does the
rest of the pass (the id index, the batches, the spool): the pass runs on two cores. Nothing is
sent before the pass ends, so the API, or the emulator, has no use for the second core meanwhile.

The helper changes where the checks run, never what they decide: it runs `EventLines` over the
runs of `jsonl_runs`, as the push would. A run it has not decided yet (the first ones, while it
starts) is decided by the push, which tells the helper so that it skips ahead rather than decide
the run again; a run whose line count or bytes are not those the push read is decided by the
push too, and the push refuses a file that changed during its first pass in any case. If the
helper fails, the push decides every run itself.
"""

from __future__ import annotations

import contextlib
import gc
import os
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import msgspec

from connector.errors import PushError
from connector.push.event_lines import EventLines
from connector.push.read import InputFile, jsonl_runs

# Below this size the pass takes a fraction of a second: starting a process would cost more than it saves.
MIN_FILE_BYTES = 32 << 20
# Runs decided and not yet taken: past this the helper waits, so it never holds a whole file's ids.
_MOST_WAITING = 128
_LENGTH = struct.Struct("=I")
# The first row of a run the push decided itself, as it tells the helper.
_ROW = struct.Struct("=Q")


class _Spec(msgspec.Struct, frozen=True):
    """How the helper reads the file and decides its lines, passed on its command line after the path."""

    compression: str | None
    fields: list[str]
    parsed_fields: list[str]
    max_event_bytes: int


class _Run(msgspec.Struct, array_like=True):
    """One run of lines as the helper read and decided it: `EventLines.ids` of its lines."""

    first_row: int
    lines: int
    size: int
    ids: list[str | None]


def helps(source: InputFile) -> bool:
    """Whether deciding `source`'s lines in a helper can save time: a large file and a second core."""
    return bool(sys.executable) and source.path.stat().st_size >= MIN_FILE_BYTES and _usable_cores() > 1


def _usable_cores() -> int:
    # The cores this process may run on (a container may grant fewer than the machine has); macOS cannot say.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class LinesAhead:
    """A helper process deciding each run of lines of a JSON Lines file, until `close` stops it.

    Args:
        source: the file, read as JSON Lines.
        rules: what makes a line its event.
    """

    def __init__(self, source: InputFile, rules: EventLines) -> None:
        spec = _Spec(
            source.compression, sorted(rules.fields), sorted(rules.parsed_fields), rules.max_event_bytes
        )
        self._process = subprocess.Popen(
            # The path apart: a name need not be UTF-8, which JSON text must be.
            [sys.executable, "-P", "-m", __name__, source.path, msgspec.json.encode(spec).decode()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            # The helper imports what this process imports, from where it does (-P: not from the working
            # directory, which `-m` would otherwise put first).
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        self._waiting: deque[_Run] = deque()
        self._changed = threading.Condition()
        self._stopping = False
        self._receiver = threading.Thread(target=self._receive, name="bt-sync-lines-ahead", daemon=True)
        self._receiver.start()

    def close(self) -> None:
        """Stop the helper, if it still runs; calling it again does nothing."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._process.kill()
        self._process.wait()
        self._receiver.join()
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):  # the helper had stopped reading: nothing to flush
                    pipe.close()

    def ids(self, first_row: int, lines: Sequence[bytes]) -> list[str | None] | None:
        """`EventLines.ids(lines)` for the run starting at row `first_row`, if the helper decided it
        already and read the same lines; else None."""
        with self._changed:
            waiting = self._waiting
            # Runs the push decided itself, while the helper was behind, are of no more use.
            while waiting and waiting[0].first_row < first_row:
                waiting.popleft()
            run = waiting.popleft() if waiting and waiting[0].first_row == first_row else None
            self._changed.notify_all()
        if run is None or run.lines != len(lines) or run.size != sum(map(len, lines)):
            return None
        return run.ids

    def decided_here(self, first_row: int) -> None:
        """Tell the helper that the push decides the run at `first_row` itself: the helper skips it."""
        assert self._process.stdin is not None, "the helper's input is a pipe"
        # Written past the pipe's buffer, at once: 8 bytes, which a pipe takes whole.
        with contextlib.suppress(OSError):  # a helper that stopped needs telling nothing
            os.write(self._process.stdin.fileno(), _ROW.pack(first_row))

    def _receive(self) -> None:
        stream = self._process.stdout
        assert stream is not None, "the helper's output is a pipe"
        decoder = msgspec.msgpack.Decoder(_Run)
        while len(header := stream.read(_LENGTH.size)) == _LENGTH.size:
            frame = stream.read(_LENGTH.unpack(header)[0])
            try:
                run = decoder.decode(frame)
            except msgspec.DecodeError:
                return  # cut short: the helper was stopped
            with self._changed:
                self._changed.wait_for(lambda: self._stopping or len(self._waiting) < _MOST_WAITING)
                if self._stopping:
                    return
                self._waiting.append(run)


def _decide(path: Path, spec: _Spec) -> None:
    """The helper: write each run's decision to standard output, framed by its length."""
    # Like the push's own pass: the decoded lines hold no cycles for the collector to find.
    gc.disable()
    rules = EventLines(frozenset(spec.fields), frozenset(spec.parsed_fields), spec.max_event_bytes)
    encode = msgspec.msgpack.Encoder().encode
    out = sys.stdout.buffer
    told = sys.stdin.fileno()
    os.set_blocking(told, False)
    passed = 0
    for first_row, lines in jsonl_runs(InputFile(path, spec.compression)):
        passed = latest_passed(told, passed)
        if first_row <= passed:
            continue  # the push decided this run itself: it is behind
        frame = encode(_Run(first_row, len(lines), sum(map(len, lines)), rules.ids(lines)))
        out.write(_LENGTH.pack(len(frame)) + frame)
    out.flush()


def latest_passed(told: int, known: int) -> int:
    """The first row of the last run the push said it decided itself, read from the non-blocking `told`;
    `known` if it said nothing since."""
    try:
        said = os.read(told, 1 << 16)
    except BlockingIOError:
        return known
    whole = len(said) - len(said) % _ROW.size
    return _ROW.unpack_from(said, whole - _ROW.size)[0] if whole else known


if __name__ == "__main__":
    try:
        _decide(Path(sys.argv[1]), msgspec.json.decode(sys.argv[2], type=_Spec))
    except (PushError, BrokenPipeError, KeyboardInterrupt):
        # The push reads the file too: it reports any problem with it, and decides what is left.
        sys.exit(1)
