"""Mutation testing of the code that carries bt-sync's guarantees: the scope, the runs, the scores.

`make mutants` runs this (never CI: a full run takes about an hour on two cores). mutmut mutates the
files `[tool.mutmut] only_mutate` names in pyproject.toml; of those, the functions below are in scope
(the rest of a file, such as the catalog writer beside the commit, is not a guarantee). The chosen
groups are run together, at most `MUTANTS_CHILDREN` mutants at a time, then every in-scope mutant's
outcome is summed per module, as tests/MUTATION.md reports it.

    python -m tests.mutants run [group ...]    groups: api, destinations, push, sync (default all)
    python -m tests.mutants report             killed/total per module, then every survivor
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from mutmut.mutation.data import SourceFileMutationData
from mutmut.stats import status_by_exit_code

# Module -> the functions in scope (mutmut's names: `x_function`, `xǁClassǁmethod`); "*" is every one.
SCOPE: dict[str, tuple[str, ...]] = {
    "connector.api.client": (
        "xǁBraintrustClientǁfetch_raw",
        "xǁBraintrustClientǁ_request",
        "xǁBraintrustClientǁ_send_once",
        "x__json_object_bytes",
    ),
    "connector.api.pagination": ("*",),
    "connector.api.retry": ("*",),
    "connector.destinations.parquet_merge": ("*",),
    "connector.destinations.parquet_tree": (
        "xǁParquetTreeǁlock",
        "xǁParquetTreeǁread_state",
        "xǁParquetTreeǁmerge",
        "xǁParquetTreeǁremove_object",
        "xǁParquetTreeǁ_load",
        "xǁParquetTreeǁ_write_record",
        "xǁParquetTreeǁ_recovered",
        "xǁParquetTreeǁ_publish",
        "xǁParquetTreeǁ_replace_with_version",
        "xǁParquetTreeǁ_collect_garbage",
        "xǁParquetTreeǁ_purge_removed_objects",
    ),
    "connector.push.batch": ("*",),
    "connector.push.checkpoint": ("*",),
    "connector.push.ids": ("*",),
    "connector.push.map": ("xǁRowMapperǁevent", "x__column_id"),
    "connector.push.run": (
        "xǁPushRunǁ_push",
        "xǁPushRunǁ_already_pushed",
        "xǁPushRunǁ_checkpoint",
        "xǁPushRunǁ_scan",
        "xǁPushRunǁ_indexed",
        "xǁPushRunǁ_events",
        "xǁPushRunǁ_batches",
        "xǁPushRunǁ_send",
        "xǁPushRunǁ_check_unchanged",
        "xǁPushRunǁ_on_ack",
        "xǁPushRunǁ_send_as_checked",
        "xǁPushRunǁ_send_checked",
        "xǁ_Senderǁ*",
        "x__identity",
        "x__last_of_each_id",
        "x__remembering_ids",
        "x__sent_so_far",
        "x__parts_in_order",
    ),
    "connector.push.spool": ("*",),
    "connector.sync.extract": ("*",),
    "connector.sync.seen": ("*",),
    "connector.sync.stage": (
        "xǁStagedPageǁwait",
        "xǁPageStagerǁstage",
        "xǁPageStagerǁ_name_parts",
        "xǁPageStagerǁ_rows_to_keep",
        "xǁPageStagerǁ_remember_staged_ids",
        "xǁ_PageSqlǁcandidates",
        "x__version",
    ),
    "connector.sync.staging": ("*",),
}
GROUPS = ("api", "destinations", "push", "sync")
KILLED = {"killed", "timeout", "caught by type check"}


def patterns(module: str) -> list[str]:
    """mutmut's name patterns for the module's mutants in scope."""
    return [f"{module}.{function}__mutmut_*" for function in SCOPE[module]]


def run(groups: list[str]) -> None:
    children = os.environ.get("MUTANTS_CHILDREN", "2")
    bin_dir = Path(sys.executable).parent
    # mutmut runs `type_check_command` (mypy) by name: this environment's, whether or not it is activated.
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    names = [p for module in SCOPE if module.split(".")[1] in groups for p in patterns(module)]
    print(f"mutants: {', '.join(groups)}", flush=True)
    # One mutmut run for every group: its setup (mutating, mapping tests, a clean run, mypy) is done
    # once, and it tries the mutants with the fastest tests first. It redraws a progress line many times
    # a second: keep only its summary.
    done = subprocess.run(
        [bin_dir / "mutmut", "run", "--max-children", children, *names],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode:
        sys.exit(f"mutmut failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def report() -> None:
    """Print the scores per module, as tests/MUTATION.md's table has them, then every mutant not killed."""
    columns = ("killed", "by mypy", "survived", "not checked", "total")
    print(f"{'module':40}" + "".join(f"{column:>12}" for column in columns))
    survivors = []
    totals: Counter[str] = Counter()
    for module in SCOPE:
        data = SourceFileMutationData(path=Path(*module.split(".")).with_suffix(".py"))
        data.load()
        statuses: Counter[str] = Counter()
        for name, exit_code in data.exit_code_by_key.items():
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns(module)):
                status = status_by_exit_code[exit_code]
                statuses[status] += 1
                if status not in KILLED:
                    survivors.append(f"{name}: {status}")
        killed = sum(statuses[status] for status in KILLED)
        counts = (killed, statuses["caught by type check"], statuses["survived"], statuses["not checked"])
        print(f"{module:40}" + "".join(f"{count:>12}" for count in (*counts, statuses.total())))
        totals.update(dict(zip(columns, (*counts, statuses.total()), strict=True)))
    print(f"{'all':40}" + "".join(f"{totals[column]:>12}" for column in columns))
    print("\nnot killed:" if survivors else "\nevery mutant in scope was killed")
    print("\n".join(f"    {line}" for line in survivors))


if __name__ == "__main__":
    command, *chosen = sys.argv[1:] or ["run"]
    if command == "run":
        run(chosen or list(GROUPS))
        report()
    elif command == "report":
        report()
    else:
        sys.exit(__doc__)
