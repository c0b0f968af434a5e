"""Seeds: the data an emulator starts with (`empty`, `demo`, `bench:N`)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from connector.emulator.generate import TraceFactory, iso
from connector.emulator.store import Store

# Demo rows carry fixed creation times so the demo data is the same on every run.
_DEMO_START = datetime(2025, 6, 2, 9, 0, tzinfo=UTC).timestamp()
_TOPICS = ("billing", "shipping", "accounts", "returns")


def seed_loader(seed: str) -> Callable[[Store], None]:
    """Return the function that loads `seed` into an empty store.

    Raises:
        ValueError: for an unknown seed name.
    """
    if seed == "empty":
        return lambda store: None
    if seed == "demo":
        return _demo
    name, _, count = seed.partition(":")
    if name == "bench" and count.isdigit():
        return lambda store: _bench(store, int(count))
    raise ValueError(f"unknown seed {seed!r}: use empty, demo or bench:N")


def _bench(store: Store, n_rows: int) -> None:
    project = store.create_project("bench", description="Generated project logs for benchmarks")
    store.generate_logs(project["id"], n_rows)


def _demo(store: Store) -> None:
    factory = TraceFactory(random.Random(20250602), payload_bytes=900)
    projects = [
        store.create_project(name, description=description)
        for name, description in (
            ("support-bot", "Customer support assistant"),
            ("doc-summarizer", "Summaries of uploaded documents"),
            ("rag-search", "Retrieval-augmented search"),
        )
    ]
    for index, project in enumerate(projects):
        _demo_logs(store, factory, project["id"], traces=28 + 8 * index, start=_DEMO_START + index * 86400)
    main = projects[0]["id"]
    golden = _demo_dataset(store, factory, main, "golden-questions", records=24)
    _demo_dataset(store, factory, main, "edge-cases", records=12)
    for name, quality in (("baseline", 0.55), ("prompt-v2", 0.8)):
        _demo_experiment(store, factory, main, name, golden, quality)


def _demo_logs(store: Store, factory: TraceFactory, project_id: str, *, traces: int, start: float) -> None:
    rng = factory.rng
    roots: list[str] = []
    for first in range(0, traces, 4):
        batch = [
            factory.trace(start + 600 * n, rng.randint(1, 20)) for n in range(first, min(first + 4, traces))
        ]
        store.insert("project_logs", project_id, [row for trace in batch for row in trace])
        roots += [trace[0]["id"] for trace in batch]
    # User feedback arrives later as merges, so these rows get a second and third version.
    reviewed = rng.sample(roots, len(roots) // 4)
    feedback = [
        {
            "id": root,
            "_is_merge": True,
            "scores": {"user_feedback": float(rng.random() < 0.7)},
            "tags": ["reviewed"],
        }
        for root in reviewed
    ]
    store.insert("project_logs", project_id, feedback)
    escalations = [{"id": root, "_is_merge": True, "metadata": {"escalated": True}} for root in reviewed[:3]]
    store.insert("project_logs", project_id, escalations)


def _demo_dataset(store: Store, factory: TraceFactory, project_id: str, name: str, *, records: int) -> str:
    rng = factory.rng
    dataset = store.create_dataset(project_id, name, description=f"Demo dataset: {name}")
    rows = [
        {
            "id": factory.new_id(),
            "created": iso(_DEMO_START + 60 * n),
            "input": {"question": factory.text(60)},
            "expected": {"answer": factory.text(90)},
            "metadata": {"topic": rng.choice(_TOPICS), "difficulty": rng.choice(("easy", "hard"))},
            "tags": rng.sample(("curated", "from-logs", "edge-case"), rng.randint(1, 2)),
        }
        for n in range(records)
    ]
    store.insert("dataset", dataset["id"], rows)
    store.insert(
        "dataset",
        dataset["id"],
        [{"id": row["id"], "_is_merge": True, "expected": {"answer": factory.text(90)}} for row in rows[:3]],
    )
    store.insert("dataset", dataset["id"], [{"id": rows[-1]["id"], "_object_delete": True}])
    return str(dataset["id"])


def _demo_experiment(
    store: Store, factory: TraceFactory, project_id: str, name: str, dataset_id: str, quality: float
) -> None:
    rng = factory.rng
    experiment = store.create_experiment(
        project_id, name, dataset_id=dataset_id, metadata={"model": "gpt-4o"}
    )
    events: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = store.live_rows("dataset", dataset_id)
    for n, record in enumerate(records):
        start = _DEMO_START + 3600 + 30 * n
        root_span_id = factory.new_id()
        scores = {
            "exact_match": float(rng.random() < quality),
            "relevance": round(min(1.0, rng.gauss(quality, 0.1)), 3),
        }
        events.append(
            {
                "id": factory.new_id(),
                "span_id": root_span_id,
                "root_span_id": root_span_id,
                "created": iso(start),
                "input": record["input"],
                "expected": record["expected"],
                "output": {"answer": factory.text(90)},
                "scores": {key: max(0.0, value) for key, value in scores.items()},
                "metrics": {"start": start, "end": start + rng.uniform(0.5, 4.0)},
                "span_attributes": {"name": "eval", "type": "eval"},
                "origin": {"object_type": "dataset", "object_id": dataset_id, "id": record["id"]},
            }
        )
        prompt_tokens = rng.randint(100, 900)
        events.append(
            {
                "id": factory.new_id(),
                "span_id": factory.new_id(),
                "root_span_id": root_span_id,
                "span_parents": [root_span_id],
                "created": iso(start + 0.1),
                "input": record["input"],
                "output": {"answer": factory.text(90)},
                "metrics": {
                    "start": start + 0.1,
                    "end": start + 0.4,
                    "prompt_tokens": prompt_tokens,
                    "tokens": prompt_tokens + 50,
                },
                "span_attributes": {"name": "task", "type": "task"},
            }
        )
    store.insert("experiment", experiment["id"], events)
