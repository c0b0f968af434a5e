"""The launcher every benchmark case runs under: it reports the command's own cost, not its parent's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ALLOCATE_AND_SPIN = """
import resource, sys, time
block = bytearray(int(sys.argv[1]) * 2**20)
for i in range(0, len(block), 4096):  # touch every page: only touched pages are resident
    block[i] = 1
deadline = time.process_time() + float(sys.argv[2])
while time.process_time() < deadline:
    pass
own = resource.getrusage(resource.RUSAGE_SELF)
with open(sys.argv[3], "w") as report:  # what the command itself counted, for the launcher's figure to match
    report.write(str(own.ru_utime + own.ru_stime))
print("done")
"""


def launch(tmp_path: Path, *command: str) -> tuple[dict[str, Any], str]:
    """Run `command` under `python -m benchmarks.measure`, as the benchmark runner does."""
    result, output = tmp_path / "measured.json", tmp_path / "out.txt"
    launcher = [sys.executable, "-m", "benchmarks.measure", str(result), str(output), "--"]
    subprocess.run([*launcher, *command], check=True)
    return json.loads(result.read_text()), output.read_text()


def test_a_command_s_peak_memory_and_cpu_are_its_own(tmp_path: Path) -> None:
    own_cpu = tmp_path / "own_cpu.txt"
    big, printed = launch(tmp_path, sys.executable, "-c", ALLOCATE_AND_SPIN, "300", "0.5", str(own_cpu))
    big_own_cpu = float(own_cpu.read_text())
    small, _ = launch(tmp_path, sys.executable, "-c", ALLOCATE_AND_SPIN, "10", "0.1", str(own_cpu))
    assert big["returncode"] == small["returncode"] == 0 and printed == "done\n"
    assert 300 <= big["rss_peak_mb"] < 400 and small["rss_peak_mb"] < 100
    # Bounded by the command's own count, not by a fixed figure: how long touching 300 MiB takes
    # varies with the machine's load. Only the interpreter's exit comes after the command's count.
    assert 0.5 <= big_own_cpu <= big["cpu_s"] < big_own_cpu + 0.5
    assert big["wall_s"] >= 0.9 * big["cpu_s"]
    assert small["cpu_s"] < big["cpu_s"]


def test_the_memory_of_the_process_starting_the_launcher_does_not_count(tmp_path: Path) -> None:
    # This process holds 400 MB more: a command it started directly would report that as its peak.
    ballast = bytearray(400 * 2**20)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    measured, _ = launch(tmp_path, sys.executable, "-c", "pass")
    assert measured["returncode"] == 0 and measured["rss_peak_mb"] < 100
    del ballast


def test_a_failing_command_reports_its_exit_status(tmp_path: Path) -> None:
    result, output = tmp_path / "measured.json", tmp_path / "out.txt"
    launcher = [sys.executable, "-m", "benchmarks.measure", str(result), str(output), "--"]
    subprocess.run([*launcher, sys.executable, "-c", "raise SystemExit(3)"], check=True)
    assert json.loads(result.read_text())["returncode"] == 3
