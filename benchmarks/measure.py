"""Run one command and measure it from outside: `python -m benchmarks.measure RESULT OUTPUT -- COMMAND...`.

Wall time from start to exit, CPU time (user + system, every thread, and any
child the command waited for) and peak resident memory, from `wait4`: what the
user of the command pays, interpreter start and imports included. The command's
stdout goes to OUTPUT; the measurement is written to RESULT as JSON.

This launcher imports nothing but the standard library and is started afresh for
each case: on Linux a child's peak RSS starts at its parent's when it `exec`s,
and the benchmark runner holds far more memory than this process.
"""

from __future__ import annotations

import json
import os
import sys
import time


def measure(command: list[str], output: str) -> dict[str, float | int]:
    """Run `command` with stdout to `output`; its exit status, wall and CPU seconds and peak RSS in MiB."""
    redirect = [(os.POSIX_SPAWN_OPEN, 1, output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)]
    started = time.perf_counter()
    pid = os.posix_spawnp(command[0], command, os.environ, file_actions=redirect)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    return {
        "returncode": os.waitstatus_to_exitcode(status),
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "rss_peak_mb": round(usage.ru_maxrss / 1024, 1),
    }


def main(argv: list[str]) -> None:
    result, output, separator, *command = argv
    if separator != "--" or not command:
        raise SystemExit("usage: python -m benchmarks.measure RESULT OUTPUT -- COMMAND...")
    with open(result, "w") as out:
        json.dump(measure(command, output), out)


if __name__ == "__main__":
    main(sys.argv[1:])
