"""Score and metric summaries for `GET /v1/experiment/{id}/summarize?summarize_scores=true`.

Compared with another experiment (the spec's `comparison_experiment_id`, else the experiment's
`base_exp_id`, else the project's latest experiment before it), each summary gains its `diff` from
that experiment's average and counts the test cases that improved or regressed. Test cases are
matched by their root span's `input`, as Braintrust's comparisons match them; a higher score is
better, and a lower metric (time, tokens).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from connector.emulator.rows import Row

# Metrics worth averaging, with the unit the summary reports them in.
_METRIC_UNITS = {"duration": "s", "prompt_tokens": "tok", "completion_tokens": "tok", "tokens": "tok"}

Values = Callable[[Row], dict[str, float]]


def score_summaries(rows: list[Row], compared: list[Row] | None) -> dict[str, dict[str, Any]]:
    """Average of each score over the rows that have it, compared with `compared`'s rows if given."""
    return {
        name: {"name": name, "score": average, **comparison}
        for name, (average, comparison) in _summaries(rows, compared, _scores, better=1).items()
    }


def metric_summaries(rows: list[Row], compared: list[Row] | None) -> dict[str, dict[str, Any]]:
    """Average duration and token counts over the rows that have them, compared as `score_summaries`."""
    return {
        name: {"name": name, "metric": average, "unit": _METRIC_UNITS[name], **comparison}
        for name, (average, comparison) in _summaries(rows, compared, _metrics, better=-1).items()
    }


def _scores(row: Row) -> dict[str, float]:
    return {name: score for name, score in (row.get("scores") or {}).items() if score is not None}


def _metrics(row: Row) -> dict[str, float]:
    metrics = row.get("metrics") or {}
    values = {
        name: metrics[name]
        for name in ("prompt_tokens", "completion_tokens", "tokens")
        if metrics.get(name) is not None
    }
    if metrics.get("start") is not None and metrics.get("end") is not None:
        values["duration"] = metrics["end"] - metrics["start"]
    return values


def _averages(rows: Iterable[Row], values: Values) -> dict[str, float]:
    collected: defaultdict[str, list[float]] = defaultdict(list)
    for row in rows:
        for name, value in values(row).items():
            collected[name].append(value)
    return {name: sum(numbers) / len(numbers) for name, numbers in sorted(collected.items())}


def _summaries(
    rows: list[Row], compared: list[Row] | None, values: Values, better: int
) -> dict[str, tuple[float, dict[str, Any]]]:
    """Each score's (or metric's) average, and its `diff`, `improvements` and `regressions` against
    `compared` (none: no diff). `better` is the sign of a change for the better."""
    averages = _averages(rows, values)
    if compared is None:
        return {name: (average, {"improvements": 0, "regressions": 0}) for name, average in averages.items()}
    before = _averages(compared, values)
    earlier = {_case(row): values(row) for row in compared if _is_root(row)}
    changes = {name: {"improvements": 0, "regressions": 0} for name in averages}
    for row in filter(_is_root, rows):
        then = earlier.get(_case(row), {})
        for name, now in values(row).items():
            if then.get(name) is not None and now != then[name]:
                changes[name]["improvements" if (now - then[name]) * better > 0 else "regressions"] += 1
    return {
        name: (average, {"diff": average - before[name] if name in before else None, **changes[name]})
        for name, average in averages.items()
    }


def _is_root(row: Row) -> bool:
    return not row.get("span_parents")


def _case(row: Row) -> bytes:
    """What identifies a test case across experiments: its input."""
    return orjson.dumps(row.get("input"), option=orjson.OPT_SORT_KEYS)
