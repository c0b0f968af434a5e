"""Seeds: the data an emulator starts with (`empty`, `demo`, `bench:N`)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from connector.emulator.generate import TraceFactory, iso
from connector.emulator.kinds import Kind
from connector.emulator.store import Store

# Demo rows carry fixed creation times so the demo data is the same on every run.
_DEMO_START = datetime(2025, 6, 2, 9, 0, tzinfo=UTC).timestamp()
_TOPICS = ("billing", "shipping", "accounts", "returns")
# About 1.2 kB a row in memory: this many is a machine's worth, far past the benchmarks' million.
MAX_BENCH_ROWS = 100_000_000


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
        if int(count) > MAX_BENCH_ROWS:
            raise ValueError(
                f"bench:N holds at most {MAX_BENCH_ROWS:,} rows (the emulator keeps them in memory)"
            )
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
    for kind, bodies in _DEMO_DEFINITIONS:
        for body in bodies:
            store.create(kind, {**body, "project_id": main})
    # The baseline ran on the prompt's first version, prompt-v2 on its second.
    prompt = store.create("prompt", {**_DEMO_PROMPT, "project_id": main})[0]
    _demo_experiment(store, factory, main, "baseline", golden, 0.55, prompt)
    prompt = store.patch("prompt", prompt["id"], _DEMO_PROMPT_V2)
    _demo_experiment(store, factory, main, "prompt-v2", golden, 0.8, prompt)


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
    store: Store,
    factory: TraceFactory,
    project_id: str,
    name: str,
    dataset_id: str,
    quality: float,
    prompt: dict[str, Any],
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
        task = {
            "id": factory.new_id(),
            "span_id": factory.new_id(),
            "root_span_id": root_span_id,
            "span_parents": [root_span_id],
            "created": iso(start + 0.1),
            "input": record["input"],
            "output": {"answer": factory.text(90)},
            "metrics": {"start": start + 0.1, "end": start + 0.4},
            "span_attributes": {"name": "task", "type": "task"},
        }
        events += [task, _demo_llm_span(task, prompt, prompt_tokens)]
    store.insert("experiment", experiment["id"], events)


def _demo_llm_span(task: dict[str, Any], prompt: dict[str, Any], prompt_tokens: int) -> dict[str, Any]:
    """The task's model call, logged as the SDK logs a call built from a saved prompt.

    `Prompt.build()` hands the wrapped client `metadata.prompt` = {id, project_id,
    version (the prompt's `_xact_id`), variables}; that is how a row names its prompt.
    """
    # Ids derived from the task's, not drawn from the RNG, so every other demo value stays as it was.
    row_id, span_id = (
        str(uuid.uuid5(uuid.NAMESPACE_URL, f"bt-sync-emulator/llm/{task[field]}"))
        for field in ("id", "span_id")
    )
    question = task["input"]["question"]
    prompt_data = prompt["prompt_data"]
    messages = [
        {**message, "content": message["content"].replace("{{question}}", question)}
        for message in prompt_data["prompt"]["messages"]
    ]
    start, end = task["metrics"]["start"], task["metrics"]["end"]
    return {
        "id": row_id,
        "span_id": span_id,
        "root_span_id": task["root_span_id"],
        "span_parents": [task["span_id"]],
        "created": iso(start + 0.05),
        "input": messages,
        "output": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": task["output"]["answer"]},
                "finish_reason": "stop",
            }
        ],
        "metadata": {
            "model": prompt_data["options"]["model"],
            **prompt_data["options"]["params"],
            "provider": "openai",
            "prompt": {
                "id": prompt["id"],
                "project_id": prompt["project_id"],
                "version": prompt["_xact_id"],
                "variables": {"question": question},
            },
        },
        "metrics": {
            "start": start + 0.05,
            "end": end - 0.05,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": 50,
            "tokens": prompt_tokens + 50,
        },
        "span_attributes": {"name": "Chat Completion", "type": "llm"},
    }


_DEMO_SYSTEM = "You are a customer support agent. Answer the customer's question in two sentences."
_DEMO_PROMPT: dict[str, Any] = {
    "name": "Support answer",
    "slug": "support-answer",
    "description": "Answers one customer question",
    "prompt_data": {
        "prompt": {
            "type": "chat",
            "messages": [
                {"role": "system", "content": _DEMO_SYSTEM},
                {"role": "user", "content": "{{question}}"},
            ],
        },
        "options": {"model": "gpt-4o", "params": {"temperature": 0.7, "max_tokens": 300}},
    },
    "tags": ["prod"],
}
# A PATCH deep-merges: the messages are replaced (arrays are), the params merged.
_DEMO_PROMPT_V2: dict[str, Any] = {
    "prompt_data": {
        "prompt": {
            "type": "chat",
            "messages": [
                {"role": "system", "content": _DEMO_SYSTEM + " Quote the policy you rely on."},
                {"role": "user", "content": "{{question}}"},
            ],
        },
        "options": {"params": {"temperature": 0.2}},
    }
}
_DEMO_DEFINITIONS: tuple[tuple[Kind, tuple[dict[str, Any], ...]], ...] = (
    (
        "function",
        (
            {
                "name": "Exact match",
                "slug": "exact-match",
                "description": "1 if the answer is the expected one, else 0",
                "function_type": "scorer",
                "function_data": {
                    "type": "code",
                    "data": {
                        "type": "inline",
                        "runtime_context": {"runtime": "python", "version": "3.12"},
                        "code": "def handler(output, expected):\n    return float(output == expected)\n",
                    },
                },
            },
            # An LLM judge: a scorer whose function_data is a prompt, so it is a prompt too.
            {
                "name": "Relevance judge",
                "slug": "relevance-judge",
                "function_type": "scorer",
                "function_data": {"type": "prompt"},
                "prompt_data": {
                    "prompt": {
                        "type": "chat",
                        "messages": [
                            {
                                "role": "user",
                                "content": "Question: {{input}}\nAnswer: {{output}}\nIs the answer relevant?",
                            }
                        ],
                    },
                    "options": {"model": "gpt-4o-mini", "params": {"temperature": 0}},
                    "parser": {
                        "type": "llm_classifier",
                        "use_cot": True,
                        "choice_scores": {"Yes": 1, "Partly": 0.5, "No": 0},
                    },
                },
            },
        ),
    ),
    (
        "project_score",
        (
            {"name": "accuracy", "score_type": "slider", "description": "Reviewer's rating of the answer"},
            {
                "name": "user_feedback",
                "score_type": "slider",
                "description": "Thumbs up or down from the user",
            },
            {
                "name": "resolution",
                "score_type": "categorical",
                "categories": [
                    {"name": "resolved", "value": 1},
                    {"name": "partly resolved", "value": 0.5},
                    {"name": "unresolved", "value": 0},
                ],
            },
            {
                "name": "overall",
                "score_type": "weighted",
                "categories": {"exact_match": 0.5, "relevance": 0.5},
            },
        ),
    ),
    (
        "project_tag",
        (
            {"name": "prod", "color": "#16a34a", "description": "Production traffic"},
            {"name": "beta", "color": "#ca8a04", "description": "Beta users"},
            {"name": "reviewed", "color": "#2563eb", "description": "Checked by a reviewer"},
        ),
    ),
)
