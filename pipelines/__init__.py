"""Dagster orchestration for bt-sync: assets, checks, jobs, schedules and a sensor over `connector`.

`pipelines.definitions.defs` is the code location (`[tool.dagster]` in
pyproject.toml); `build_definitions` binds the same definitions to other resources.
"""
