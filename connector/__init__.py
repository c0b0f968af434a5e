"""bt-sync: keep Braintrust logs, experiments and datasets in DuckDB and Parquet."""

__version__ = "0.1.0"
