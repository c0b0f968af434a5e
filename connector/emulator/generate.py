"""Realistic traced log rows for seeds and benchmarks, deterministic for a given RNG."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from connector.emulator.rows import uuid4_text

Row = dict[str, Any]

_WORDS = (
    "the", "a", "model", "answer", "question", "user", "refund", "order", "shipping", "policy",
    "account", "password", "reset", "invoice", "please", "thanks", "summary", "document", "search",
    "result", "context", "retrieval", "latency", "error", "timeout", "retry", "customer", "support",
    "billing", "plan", "upgrade", "cancel", "feature", "request", "bug", "report", "steps", "expected",
    "actual", "version", "release", "notes", "weather", "today", "tomorrow", "translate", "french",
    "german", "code", "python", "function", "returns", "list", "of", "items", "is", "not", "working",
)  # fmt: skip
_MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet", "llama-3.1-70b")
_CHILD_SPANS = (
    ("llm", "chat-completion"),
    ("tool", "search-docs"),
    ("function", "rerank"),
    ("llm", "summarize"),
)
_TAGS = ("prod", "beta", "vip", "mobile", "web")
# Serialized size of a generated row without its free text (ids, metrics, server fields).
_ROW_OVERHEAD = 720
_ROWS_PER_BATCH = 1000


def iso(unix_seconds: float) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TraceFactory:
    """Makes traces: a root `task` span with scores and tags, then `llm`/`tool`/`function` children.

    Args:
        rng: the only source of randomness, so equal seeds give equal rows.
        payload_bytes: rough serialized size of one row; the free text fills the rest.
    """

    def __init__(self, rng: random.Random, payload_bytes: int = 1200) -> None:
        self.rng = rng
        self._corpus = " ".join(rng.choice(_WORDS) for _ in range(max(4000, payload_bytes)))
        self._text_chars = max(24, payload_bytes - _ROW_OVERHEAD)

    def new_id(self) -> str:
        """Return a random id in uuid4 form, drawn from `rng`."""
        return uuid4_text(self.rng.getrandbits(128))

    def number(self, low: int, high: int) -> int:
        """Return a random integer in [low, high] (`randint` is several times slower)."""
        return low + int(self.rng.random() * (high - low + 1))

    def text(self, length: int) -> str:
        start = self.number(0, len(self._corpus) - length - 1)
        return self._corpus[start : start + length]

    def trace(self, start: float, spans: int) -> list[Row]:
        """Return the rows of one trace of `spans` spans starting at unix time `start`."""
        rng = self.rng
        root_span_id = self.new_id()
        model = rng.choice(_MODELS)
        duration = rng.uniform(0.3, 8.0)
        rows = [
            self._span(root_span_id, root_span_id, None, ("task", "handle-request"), model, start, duration)
        ]
        root = rows[0]
        root["scores"] = {"helpfulness": round(rng.random(), 3), "correctness": round(rng.random(), 3)}
        root["tags"] = rng.sample(_TAGS, rng.randint(0, 2))
        for index in range(1, spans):
            offset = duration * index / spans
            kind = _CHILD_SPANS[rng.randrange(len(_CHILD_SPANS))]
            child_duration = duration / spans * rng.uniform(0.5, 1.0)
            rows.append(
                self._span(
                    self.new_id(), root_span_id, [root_span_id], kind, model, start + offset, child_duration
                )
            )
        return rows

    def updated(self, row: Row) -> Row:
        """Return a later full version of `row`, as an `_is_merge` of user feedback would leave it."""
        rng = self.rng
        return {
            **row,
            "scores": {**(row.get("scores") or {}), "user_feedback": float(rng.random() < 0.7)},
            "metadata": {**row["metadata"], "reviewed": True, "review_note": self.text(40)},
            "tags": [*(row.get("tags") or []), "reviewed"],
        }

    def _span(
        self,
        span_id: str,
        root_span_id: str,
        parents: list[str] | None,
        kind: tuple[str, str],
        model: str,
        start: float,
        duration: float,
    ) -> Row:
        input_chars = self._text_chars * 3 // 5
        prompt_tokens = self.number(20, 2000)
        completion_tokens = self.number(5, 600)
        row: Row = {
            "id": self.new_id(),
            "span_id": span_id,
            "root_span_id": root_span_id,
            "is_root": parents is None,
            "created": iso(start),
            "input": {"messages": [{"role": "user", "content": self.text(input_chars)}]},
            "output": {"role": "assistant", "content": self.text(self._text_chars - input_chars)},
            "metadata": {
                "model": model,
                "user_id": f"user-{self.number(0, 499)}",
                "environment": "production",
            },
            "metrics": {
                "start": round(start, 3),
                "end": round(start + duration, 3),
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "tokens": prompt_tokens + completion_tokens,
            },
            "span_attributes": {"name": kind[1], "type": kind[0]},
        }
        if parents is not None:
            row["span_parents"] = parents
        return row


def log_batches(
    factory: TraceFactory,
    n_rows: int,
    *,
    trace_spans: tuple[int, int],
    update_fraction: float,
    end_time: float | None = None,
) -> Iterator[list[Row]]:
    """Yield batches of rows, one per write request: `n_rows` new rows in whole traces,
    plus a later version of about `update_fraction` of them in the following batch.

    Traces start about a second apart and the last one starts near `end_time` (now by default).
    """
    rng = factory.rng
    mean_spans = (trace_spans[0] + trace_spans[1]) / 2
    clock = (time.time() if end_time is None else end_time) - n_rows / mean_spans
    batch: list[Row] = []
    to_update: list[Row] = []
    made = 0
    while made < n_rows:
        trace = factory.trace(clock, min(rng.randint(*trace_spans), n_rows - made))
        clock += rng.uniform(0.5, 1.5)
        made += len(trace)
        batch.extend(trace)
        to_update.extend(row for row in trace if rng.random() < update_fraction)
        if len(batch) >= _ROWS_PER_BATCH or made == n_rows:
            yield batch
            batch = [factory.updated(row) for row in to_update]
            to_update = []
    if batch:
        yield batch
