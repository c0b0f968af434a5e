"""The kinds of catalog object, as data: one `KindSpec` per kind, read by the one code path in `catalog`.

Field shapes and response fields follow the spec's `Create*`, `Patch*` and object
schemas (`Project`, `Experiment`, `Dataset`, `Prompt`, `Function`, `ProjectScore`,
`ProjectTag`); adding a kind is adding an entry to `SPECS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

Kind = Literal["project", "experiment", "dataset", "prompt", "function", "project_score", "project_tag"]
KINDS: tuple[Kind, ...] = get_args(Kind)
Obj = dict[str, Any]
# A field's shape: a test of its value, and how to name the shape in a 400.
Check = tuple[Callable[[Any], bool], str]


def _nullable(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _enum(values: tuple[str, ...], *, nullable: bool = True) -> Check:
    def test(value: Any) -> bool:
        return value in values

    return (_nullable(test) if nullable else test), f"one of {', '.join(values)}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_categories(value: Any) -> bool:
    # Spec `ProjectScoreCategories`: categorical, weighted or minimum form.
    if isinstance(value, dict):
        return all(_is_number(weight) for weight in value.values())
    return _is_str_list(value) or (
        isinstance(value, list)
        and all(
            isinstance(item, dict) and isinstance(item.get("name"), str) and _is_number(item.get("value"))
            for item in value
        )
    )


_FUNCTION_TYPES = (
    "llm",
    "scorer",
    "task",
    "tool",
    "custom_view",
    "preprocessor",
    "facet",
    "classifier",
    "tag",
    "parameters",
    "sandbox",
)
_FUNCTION_DATA_TYPES = (
    "prompt",
    "code",
    "graph",
    "remote_eval",
    "global",
    "facet",
    "batched_facet",
    "parameters",
    "topic_map",
)
_ORIGIN_OBJECT_TYPES = (
    "organization",
    "project",
    "experiment",
    "dataset",
    "prompt",
    "prompt_session",
    "group",
    "role",
    "org_member",
    "project_log",
    "org_project",
    "org_audit_logs",
)
_SCORE_TYPES = ("slider", "categorical", "weighted", "minimum", "maximum", "online", "free-form")

_NAME: Check = (lambda value: isinstance(value, str) and value != "", "a non-empty string")
_TEXT: Check = (_nullable(lambda value: isinstance(value, str)), "a string")
_OBJECT: Check = (_nullable(lambda value: isinstance(value, dict)), "an object")
_TAGS: Check = (_nullable(_is_str_list), "an array of strings")
_FLAG: Check = (_nullable(lambda value: isinstance(value, bool)), "true or false")
_FUNCTION_TYPE = _enum(_FUNCTION_TYPES)
_FUNCTION_DATA: Check = (
    lambda value: isinstance(value, dict) and value.get("type") in _FUNCTION_DATA_TYPES,
    f"an object whose type is one of {', '.join(_FUNCTION_DATA_TYPES)}",
)
_ORIGIN: Check = (
    _nullable(
        lambda value: (
            isinstance(value, dict)
            and value.get("object_type") in _ORIGIN_OBJECT_TYPES
            and isinstance(value.get("object_id"), str)
        )
    ),
    "an object with an object_type and an object_id",
)
_SCORE_TYPE = _enum(_SCORE_TYPES, nullable=False)
_CATEGORIES: Check = (
    _nullable(_is_categories),
    "an array of {name, value} categories, an object of weights, or an array of score names",
)


@dataclass(frozen=True)
class KindSpec:
    """What one kind of catalog object is; everything else about it is shared code.

    Attributes:
        fields: what a create body may set, with shapes (spec `Create*`; `project_id`
            is handled apart, as the scope).
        patchable: which of `fields` a PATCH may change (spec `Patch*`).
        response: every field of the object schema, with its value until set; the
            server fills in those of `id`, `created`, `org_id`, `user_id` and
            `project_id` that it has (and `_xact_id` on versioned kinds).
        required: fields a create body must set.
        key: the field unique in a project (for projects, in the org): creating with a
            taken key returns the existing object (spec: "will return the existing ... unmodified").
        scoped: belongs to a project, and goes when the project is deleted.
        table: the kind whose objects this kind is a view of; None for its own.
        shows: which objects of `table` this kind serves.
        forced: fields every create through this kind sets, whatever the body says.
        versioned: carries an `_xact_id`, new on every write, and reads take a `version`.
        replaceable: served by PUT (create or replace).
        replaced_on_patch: object fields a PATCH replaces instead of deep-merging.
        derive: fields the server computes from the others, after every write.
        fresh_name: a create without a name gets one based on this; `ensure_new`
            makes a taken name unique instead of returning the existing object.
        list_limit: how many objects a listing without a `limit` returns (spec
            `AppLimitWithDefaultParam`); None for all.
    """

    fields: Mapping[str, Check]
    response: Mapping[str, Any]
    patchable: frozenset[str] | None = None
    required: tuple[str, ...] = ("name",)
    key: str = "name"
    scoped: bool = True
    table: Kind | None = None
    shows: Callable[[Obj], bool] = lambda obj: True
    forced: Mapping[str, Any] = field(default_factory=dict)
    versioned: bool = False
    replaceable: bool = False
    replaced_on_patch: frozenset[str] = frozenset()
    derive: Callable[[Obj], Obj] = lambda obj: {}
    fresh_name: str | None = None
    list_limit: int | None = None

    def may_patch(self, name: str) -> bool:
        return name in (self.fields if self.patchable is None else self.patchable)


def _url_slug(obj: Obj) -> Obj:
    return {"url_slug": re.sub(r"[^a-z0-9]+", "-", obj["name"].lower()).strip("-") or "dataset"}


def _commit(obj: Obj) -> Obj:
    return {"commit": (obj["repo_info"] or {}).get("commit")}


def _is_prompt(obj: Obj) -> bool:
    return bool((obj.get("function_data") or {}).get("type") == "prompt")


_PROMPT_FIELDS: Mapping[str, Check] = {
    "name": _NAME,
    "slug": _NAME,
    "description": _TEXT,
    "prompt_data": _OBJECT,
    "tags": _TAGS,
    "function_type": _FUNCTION_TYPE,
}
_PROMPT_RESPONSE: Mapping[str, Any] = {
    "id": None,
    "_xact_id": None,
    "project_id": None,
    # Spec: "A literal 'p' which identifies the object as a project prompt" (functions too).
    "log_id": "p",
    "org_id": None,
    "name": "",
    "slug": "",
    "description": None,
    "created": None,
    "prompt_data": None,
    "tags": None,
    "metadata": None,
    "function_type": None,
}

SPECS: dict[Kind, KindSpec] = {
    "project": KindSpec(
        fields={"name": _NAME, "description": _TEXT, "settings": _OBJECT},
        response={
            "id": None,
            "org_id": None,
            "name": "",
            "description": None,
            "created": None,
            "deleted_at": None,
            "user_id": None,
            "settings": None,
        },
        scoped=False,
        # Spec: "Patch operations replace all settings".
        replaced_on_patch=frozenset({"settings"}),
    ),
    "experiment": KindSpec(
        list_limit=1000,
        fields={
            "name": _NAME,
            "description": _TEXT,
            "repo_info": _OBJECT,
            "base_exp_id": _TEXT,
            "dataset_id": _TEXT,
            "dataset_version": _TEXT,
            "public": _FLAG,
            "metadata": _OBJECT,
            "tags": _TAGS,
        },
        response={
            "id": None,
            "project_id": None,
            "name": "",
            "description": None,
            "created": None,
            "deleted_at": None,
            "user_id": None,
            "metadata": None,
            "tags": None,
            "repo_info": None,
            "commit": None,
            "base_exp_id": None,
            "dataset_id": None,
            "dataset_version": None,
            "public": False,
        },
        derive=_commit,
        fresh_name="experiment",
    ),
    "dataset": KindSpec(
        fields={"name": _NAME, "description": _TEXT, "metadata": _OBJECT, "tags": _TAGS},
        response={
            "id": None,
            "project_id": None,
            "name": "",
            "description": None,
            "created": None,
            "deleted_at": None,
            "user_id": None,
            "metadata": None,
            "tags": None,
            "url_slug": "",
        },
        derive=_url_slug,
    ),
    # Braintrust keeps prompts as functions whose function_data is {"type": "prompt"}
    # (the SDK pushes them so; slugs are unique across both): one table, two views.
    "prompt": KindSpec(
        fields=_PROMPT_FIELDS,
        response=_PROMPT_RESPONSE,
        patchable=frozenset({"name", "slug", "description", "prompt_data", "tags"}),
        required=("name", "slug"),
        key="slug",
        table="function",
        shows=_is_prompt,
        forced={"function_data": {"type": "prompt"}},
        versioned=True,
        replaceable=True,
    ),
    "function": KindSpec(
        fields={
            **_PROMPT_FIELDS,
            "function_data": _FUNCTION_DATA,
            "origin": _ORIGIN,
            "function_schema": _OBJECT,
        },
        response={**_PROMPT_RESPONSE, "function_data": None, "origin": None, "function_schema": None},
        patchable=frozenset({"name", "description", "prompt_data", "function_data", "tags"}),
        required=("name", "slug", "function_data"),
        key="slug",
        versioned=True,
        replaceable=True,
    ),
    "project_score": KindSpec(
        fields={
            "name": _NAME,
            "description": _TEXT,
            "score_type": _SCORE_TYPE,
            "categories": _CATEGORIES,
            "config": _OBJECT,
        },
        response={
            "id": None,
            "project_id": None,
            "user_id": None,
            "created": None,
            "name": "",
            "description": None,
            "score_type": "slider",
            "categories": None,
            "config": None,
            "position": None,
        },
        required=("name", "score_type"),
        replaceable=True,
    ),
    "project_tag": KindSpec(
        fields={"name": _NAME, "description": _TEXT, "color": _TEXT},
        response={
            "id": None,
            "project_id": None,
            "user_id": None,
            "created": None,
            "name": "",
            "description": None,
            "color": None,
            "position": None,
        },
        replaceable=True,
    ),
}


def table_of(kind: Kind) -> Kind:
    """Return the kind whose objects `kind` serves (itself, except for prompts)."""
    return SPECS[kind].table or kind


# The kinds that hold objects; the others are views of one of these.
TABLES: tuple[Kind, ...] = tuple(kind for kind in KINDS if SPECS[kind].table is None)
