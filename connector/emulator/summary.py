"""Score and metric summaries for `GET /v1/experiment/{id}/summarize?summarize_scores=true`."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from connector.emulator.rows import Row

# Metrics worth averaging, with the unit the summary reports them in.
_METRIC_UNITS = {"duration": "s", "prompt_tokens": "tok", "completion_tokens": "tok", "tokens": "tok"}


def score_summaries(rows: list[Row]) -> dict[str, dict[str, Any]]:
    """Average of each score over the rows that have it (no comparison experiment: no diffs)."""
    values: defaultdict[str, list[float]] = defaultdict(list)
    for row in rows:
        for name, score in (row.get("scores") or {}).items():
            if score is not None:
                values[name].append(score)
    return {
        name: {"name": name, "score": sum(scores) / len(scores), "improvements": 0, "regressions": 0}
        for name, scores in sorted(values.items())
    }


def metric_summaries(rows: list[Row]) -> dict[str, dict[str, Any]]:
    """Average duration and token counts over the rows that have them."""
    values: defaultdict[str, list[float]] = defaultdict(list)
    for row in rows:
        metrics = row.get("metrics") or {}
        if metrics.get("start") is not None and metrics.get("end") is not None:
            values["duration"].append(metrics["end"] - metrics["start"])
        for name in ("prompt_tokens", "completion_tokens", "tokens"):
            if metrics.get(name) is not None:
                values[name].append(metrics[name])
    return {
        name: {
            "name": name,
            "metric": sum(numbers) / len(numbers),
            "unit": _METRIC_UNITS[name],
            "improvements": 0,
            "regressions": 0,
        }
        for name, numbers in sorted(values.items())
    }
