"""What a merge does to each row id: the plan the Parquet tree's and Iceberg's merges share.

Both keep the newest version of each row id of an object. Given the ids held (`current_keys`: `id`,
its `_xact_id` as `old_x`, the `file` holding it) and the staged rows, the plan says which ids to
insert, update or delete; the destinations differ only in how they rewrite their files from it.
"""

from __future__ import annotations

import duckdb

from connector.destinations.base import VersionRange
from schemas.tables import read_parquet


def plan_actions(
    con: duckdb.DuckDBPyConnection,
    staged: str | None,
    delete_missing_up_to: int | None,
    run_wrote: VersionRange | None = None,
) -> dict[str, int]:
    """Create the temporary tables `incoming` (each staged id's newest `_xact_id`, `new_x`) and `plan`
    (each changed id's `new_x`, `old_x`, `file` and `action`), and count the ids of each action.

    Args:
        con: a connection holding the table `current_keys`.
        staged: the `read_parquet` list of the staged files, or None when none is.
        delete_missing_up_to: the staged files hold the whole object, read by a read that met every live
            row up to this `_xact_id`: a row held, no newer and not staged, was deleted upstream (None:
            delete nothing).
        run_wrote: the versions at which this run's earlier commit (a resumed read's) wrote rows: an
            update of a row held at one is not counted, the run having counted it as an insert or an
            update (None: count every update). A range, not every version above the one held before:
            another machine's commit meanwhile (to one Iceberg table) wrote newer versions.
    """
    con.execute(
        "CREATE TEMP TABLE incoming AS SELECT id, max(_xact_id) AS new_x "
        f"FROM {read_parquet(staged)} GROUP BY id"
        if staged is not None
        else "CREATE TEMP TABLE incoming (id VARCHAR, new_x UBIGINT)"
    )
    join = "LEFT JOIN" if delete_missing_up_to is None else "FULL OUTER JOIN"
    # A held row newer than the read could meet may be another worker's, committed meanwhile.
    deletable = "FALSE" if delete_missing_up_to is None else f"c.old_x <= {int(delete_missing_up_to)}"
    con.execute(
        "CREATE TEMP TABLE plan AS SELECT coalesce(i.id, c.id) AS id, i.new_x, c.old_x, c.file, "
        "CASE WHEN c.id IS NULL THEN 'insert' WHEN i.id IS NULL THEN 'delete' ELSE 'update' END AS action "
        f"FROM incoming AS i {join} current_keys AS c ON i.id = c.id "
        # Compared as numbers: as text, "999999999" would beat "1000000000".
        f"WHERE c.id IS NULL OR (i.id IS NULL AND {deletable}) OR i.new_x > c.old_x"
    )
    counted = "TRUE"
    if run_wrote is not None:
        counted = (
            f"action <> 'update' OR old_x NOT BETWEEN {int(run_wrote.above) + 1} AND {int(run_wrote.up_to)}"
        )
    return dict(
        con.execute(f"SELECT action, count(*) FILTER ({counted}) FROM plan GROUP BY action").fetchall()
    )
