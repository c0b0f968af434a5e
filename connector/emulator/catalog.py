"""Projects, experiments and datasets: the objects that own event histories."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from connector.emulator.errors import bad_request, not_found
from connector.emulator.merge import deep_merge
from connector.emulator.rows import utc_timestamp

Kind = Literal["project", "experiment", "dataset"]
KINDS: tuple[Kind, ...] = ("project", "experiment", "dataset")
Obj = dict[str, Any]


def _nullable(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


_NAME = (lambda value: isinstance(value, str) and value != "", "a non-empty string")
_TEXT = (_nullable(lambda value: isinstance(value, str)), "a string")
_OBJECT = (_nullable(lambda value: isinstance(value, dict)), "an object")
_TAGS = (
    _nullable(lambda value: isinstance(value, list) and all(isinstance(tag, str) for tag in value)),
    "an array of strings",
)
_FLAG = (_nullable(lambda value: isinstance(value, bool)), "true or false")

# Fields a client may set on create or patch, with their shapes (spec: Create*/Patch*).
_FIELDS: dict[Kind, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "project": {"name": _NAME, "description": _TEXT, "settings": _OBJECT},
    "experiment": {
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
    "dataset": {"name": _NAME, "description": _TEXT, "metadata": _OBJECT, "tags": _TAGS},
}
# Spec: "Patch operations replace all settings"; other object fields deep-merge.
_REPLACED_ON_PATCH = frozenset({"settings"})


@dataclass(frozen=True)
class ListQuery:
    """Filters of the list endpoints (`GET /v1/project` etc.)."""

    limit: int | None = None
    starting_after: str | None = None
    ending_before: str | None = None
    ids: tuple[str, ...] = ()
    name: str | None = None
    project_id: str | None = None
    project_name: str | None = None
    org_name: str | None = None


class Catalog:
    """The live projects, experiments and datasets of one organization.

    Args:
        org_id: id of the one organization the emulator serves.
        org_name: its name.
        user_id: id reported as the creator of every object.
    """

    def __init__(self, org_id: str, org_name: str, user_id: str) -> None:
        self.org_id = org_id
        self.org_name = org_name
        self.user_id = user_id
        # Insertion order is creation order; lists are served newest first.
        self._objects: dict[Kind, dict[str, Obj]] = {kind: {} for kind in KINDS}

    def get(self, kind: Kind, object_id: str) -> Obj:
        found = self._objects[kind].get(object_id)
        if found is None:
            raise not_found(kind, object_id)
        return found

    def find(self, kind: Kind, name: str, project_id: str | None) -> Obj | None:
        for obj in self._objects[kind].values():
            if obj["name"] == name and obj.get("project_id") == project_id:
                return obj
        return None

    def build(self, kind: Kind, body: Any) -> Obj:
        """Return a new object from a create request body (not yet stored).

        Raises:
            Rejected: 400 for a malformed body or a project_id that does not exist.
        """
        if not isinstance(body, dict):
            raise bad_request(f"the body of a create {kind} request must be a JSON object")
        body = dict(body)
        project_id = None
        if kind != "project":
            project_id = body.get("project_id")
            if not isinstance(project_id, str) or project_id not in self._objects["project"]:
                raise bad_request(f"project_id {project_id!r} is not an existing project")
        if kind == "experiment" and body.get("name") is None:
            body["name"] = self.unique_name("experiment", "experiment", project_id)
        self._check(kind, body, required=("name",))
        obj = self._defaults(kind, project_id)
        obj.update({key: value for key, value in body.items() if key in _FIELDS[kind] and value is not None})
        if kind == "experiment":
            obj["commit"] = (obj["repo_info"] or {}).get("commit")
        if kind == "dataset":
            obj["url_slug"] = _slug(obj["name"])
        return obj

    def unique_name(self, kind: Kind, name: str, project_id: str | None) -> str:
        """Return `name`, or `name-N` if taken (the `ensure_new` behaviour of experiment creation)."""
        candidate, number = name, 0
        while self.find(kind, candidate, project_id) is not None:
            number += 1
            candidate = f"{name}-{number}"
        return candidate

    def patched(self, kind: Kind, object_id: str, body: Any) -> Obj:
        """Return the object after a PATCH body (not yet stored); nulls are ignored, as in the API."""
        obj = self.get(kind, object_id)
        if not isinstance(body, dict):
            raise bad_request(f"the body of a patch {kind} request must be a JSON object")
        changes = {key: value for key, value in body.items() if key in _FIELDS[kind] and value is not None}
        self._check(kind, changes, required=())
        name = changes.get("name")
        if name is not None and name != obj["name"]:
            if self.find(kind, name, obj.get("project_id")) is not None:
                raise bad_request(f"a {kind} named {name!r} already exists")
            if kind == "dataset":
                changes["url_slug"] = _slug(name)
        merged = {key: value for key, value in changes.items() if key not in _REPLACED_ON_PATCH}
        patched = deep_merge(obj, merged)
        patched.update({key: changes[key] for key in _REPLACED_ON_PATCH & changes.keys()})
        return patched

    def put(self, kind: Kind, obj: Obj) -> None:
        self._objects[kind][obj["id"]] = obj

    def drop(self, kind: Kind, object_id: str) -> list[Obj]:
        """Remove an object, and a project's experiments and datasets with it; return all removed."""
        removed = [self._objects[kind].pop(object_id)]
        if kind == "project":
            for child_kind in ("experiment", "dataset"):
                children = self._objects[child_kind]
                for child_id in [key for key, child in children.items() if child["project_id"] == object_id]:
                    removed.append(children.pop(child_id))
        return removed

    def list_objects(self, kind: Kind, query: ListQuery) -> list[Obj]:
        if query.starting_after and query.ending_before:
            raise bad_request("pass only one of starting_after and ending_before")
        if query.org_name is not None and query.org_name != self.org_name:
            return []
        found = [obj for obj in reversed(self._objects[kind].values()) if self._selected(obj, query)]
        if query.starting_after:
            found = found[_index_of(found, query.starting_after) + 1 :]
        if query.ending_before:
            found = found[: _index_of(found, query.ending_before)]
            return found if query.limit is None else found[max(0, len(found) - query.limit) :]
        return found if query.limit is None else found[: query.limit]

    def _selected(self, obj: Obj, query: ListQuery) -> bool:
        # A project is its own scope, so the project filters apply to it too.
        project_id = str(obj.get("project_id") or obj["id"])
        if query.ids and obj["id"] not in query.ids:
            return False
        if query.name is not None and obj["name"] != query.name:
            return False
        if query.project_id is not None and project_id != query.project_id:
            return False
        return (
            query.project_name is None or self._objects["project"][project_id]["name"] == query.project_name
        )

    def _check(self, kind: Kind, body: Obj, required: tuple[str, ...]) -> None:
        for field in required:
            if body.get(field) is None:
                raise bad_request(f"{field} is required to create a {kind}")
        for field, (check, shape) in _FIELDS[kind].items():
            if field in body and not check(body[field]):
                raise bad_request(f"{field} must be {shape}")

    def _defaults(self, kind: Kind, project_id: str | None) -> Obj:
        common: Obj = {
            "id": str(uuid.uuid4()),
            "name": "",
            "description": None,
            "created": utc_timestamp(),
            "deleted_at": None,
            "user_id": self.user_id,
        }
        if kind == "project":
            return {**common, "org_id": self.org_id, "settings": None}
        scoped = {**common, "project_id": project_id, "metadata": None, "tags": None}
        if kind == "dataset":
            return {**scoped, "url_slug": ""}
        return {
            **scoped,
            "repo_info": None,
            "commit": None,
            "base_exp_id": None,
            "dataset_id": None,
            "dataset_version": None,
            "public": False,
        }


def _index_of(objects: list[Obj], object_id: str) -> int:
    for index, obj in enumerate(objects):
        if obj["id"] == object_id:
            return index
    raise bad_request(f"no object with id {object_id} in this listing")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "dataset"
