"""Dagster orchestration for bt-sync: assets, checks, jobs, schedules and a sensor over `connector`.

`pipelines.definitions.defs` is the code location (`[tool.dg]` and `[tool.dagster]` in
pyproject.toml). To deploy with other resources, keys, owners or executors, build your own:

    from pipelines import BraintrustResource, BraintrustTranslator, WarehouseResource, build_definitions

    defs = build_definitions(
        BraintrustResource(projects=["support-bot"]),
        WarehouseResource(parquet_root="s3://bucket/bt-sync"),
        translator=BraintrustTranslator(),
    )
"""

from pipelines.definitions import build_definitions
from pipelines.resources import BraintrustResource, WarehouseResource
from pipelines.translator import BraintrustTableData, BraintrustTranslator

__all__ = [
    "BraintrustResource",
    "BraintrustTableData",
    "BraintrustTranslator",
    "WarehouseResource",
    "build_definitions",
]
