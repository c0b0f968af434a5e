"""Score and metric summaries for `GET /v1/experiment/{id}/summarize?summarize_scores=true`.

Compared with another experiment (the spec's `comparison_experiment_id`, else the experiment's
`base_exp_id`, else the project's latest experiment before it), each summary gains its `diff` from
that experiment's average and counts the test cases that improved or regressed. A test case is a
trace: its scores are those of all its spans, its tokens their sum, its duration its root's. Test
cases are matched by their root span's `input`, as Braintrust's comparisons match them; a higher
score is better, and a lower metric (time, tokens).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from connector.emulator import json_text
from connector.emulator.rows import Row

# Metrics worth averaging, with the unit the summary reports them in.
_METRIC_UNITS = {"duration": "s", "prompt_tokens": "tok", "completion_tokens": "tok", "tokens": "tok"}

# A test case's values (scores or metrics), from the spans of its trace.
Values = Callable[[list[Row]], dict[str, float]]


def score_summaries(rows: list[Row], compared: list[Row] | None) -> dict[str, dict[str, Any]]:
    """Average of each score over the test cases that have it, compared with `compared`'s if given."""
    return {
        name: {"name": name, "score": average, **comparison}
        for name, (average, comparison) in _summaries(rows, compared, _scores, better=1).items()
    }


def metric_summaries(rows: list[Row], compared: list[Row] | None) -> dict[str, dict[str, Any]]:
    """Average duration and token counts over the test cases that have them, compared as `score_summaries`."""
    return {
        name: {"name": name, "metric": average, "unit": _METRIC_UNITS[name], **comparison}
        for name, (average, comparison) in _summaries(rows, compared, _metrics, better=-1).items()
    }


def _scores(spans: list[Row]) -> dict[str, float]:
    """Each score of a test case: `Eval` logs them on scorer spans, `Experiment.log` on the root; a
    score on several spans is their average."""
    collected: defaultdict[str, list[float]] = defaultdict(list)
    for span in spans:
        for name, score in (span.get("scores") or {}).items():
            if score is not None:
                collected[name].append(score)
    return {name: sum(scores) / len(scores) for name, scores in collected.items()}


def _metrics(spans: list[Row]) -> dict[str, float]:
    """A test case's tokens, summed over its spans (each LLM call logs its own), and its root's duration."""
    values: defaultdict[str, float] = defaultdict(float)
    for span in spans:
        metrics = span.get("metrics") or {}
        for name in ("prompt_tokens", "completion_tokens", "tokens"):
            if metrics.get(name) is not None:
                values[name] += metrics[name]
        if _is_root(span) and metrics.get("start") is not None and metrics.get("end") is not None:
            values["duration"] = metrics["end"] - metrics["start"]
    return dict(values)


def _test_cases(rows: list[Row]) -> list[tuple[Row | None, list[Row]]]:
    """Each trace's root (None if it has none) and spans: a test case, as Braintrust summarizes them."""
    traces: defaultdict[str, list[Row]] = defaultdict(list)
    for row in rows:
        traces[row.get("root_span_id") or row["id"]].append(row)
    return [(next(filter(_is_root, spans), None), spans) for spans in traces.values()]


def _averages(cases: Iterable[list[Row]], values: Values) -> dict[str, float]:
    collected: defaultdict[str, list[float]] = defaultdict(list)
    for spans in cases:
        for name, value in values(spans).items():
            collected[name].append(value)
    return {name: sum(numbers) / len(numbers) for name, numbers in sorted(collected.items())}


def _summaries(
    rows: list[Row], compared: list[Row] | None, values: Values, better: int
) -> dict[str, tuple[float, dict[str, Any]]]:
    """Each score's (or metric's) average, and its `diff`, `improvements` and `regressions` against
    `compared` (none: no diff). `better` is the sign of a change for the better."""
    cases = _test_cases(rows)
    averages = _averages((spans for _, spans in cases), values)
    if compared is None:
        return {name: (average, {"improvements": 0, "regressions": 0}) for name, average in averages.items()}
    compared_cases = _test_cases(compared)
    before = _averages((spans for _, spans in compared_cases), values)
    earlier = {_case(root): values(spans) for root, spans in compared_cases if root is not None}
    changes = {name: {"improvements": 0, "regressions": 0} for name in averages}
    for root, spans in cases:
        then = {} if root is None else earlier.get(_case(root), {})
        for name, now in values(spans).items():
            if then.get(name) is not None and now != then[name]:
                changes[name]["improvements" if (now - then[name]) * better > 0 else "regressions"] += 1
    return {
        name: (average, {"diff": average - before[name] if name in before else None, **changes[name]})
        for name, average in averages.items()
    }


def _is_root(row: Row) -> bool:
    return not row.get("span_parents")


def _case(root: Row) -> bytes:
    """What identifies a test case across experiments: its root span's input."""
    return json_text.dumps(root.get("input"), sort_keys=True)
