"""bt-sync syncing into Iceberg tables: a SQLite catalog and a local warehouse in the case's workdir.

The destination's module is imported here, outside the measured work, as every subject's imports are.
"""

from __future__ import annotations

from pathlib import Path

import connector.destinations.iceberg  # noqa: F401  (imported before the measurement starts)
from benchmarks.cases import CaseSpec, Counts
from benchmarks.subjects.btsync import sync_into
from connector.config import DestinationKind, WarehouseSettings


def sync(spec: CaseSpec) -> Counts:
    """Sync one object type into the Iceberg tables: full into new ones, else incremental."""
    workdir = Path(spec.workdir)
    return sync_into(
        spec,
        WarehouseSettings(
            destination=DestinationKind.ICEBERG,
            iceberg_catalog=f"sqlite:///{workdir / 'iceberg-catalog.db'}",
            iceberg_warehouse=str(workdir / "iceberg-warehouse"),
            state_dir=workdir / "state",
        ),
    )
