"""Catalog objects (projects and what they own) with the API's create, patch, list and version rules.

Every kind goes through the same code here; how kinds differ is data in `kinds.SPECS`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from connector.emulator.errors import bad_request, not_found
from connector.emulator.kinds import SPECS, TABLES, Kind, Obj, table_of
from connector.emulator.merge import deep_merge
from connector.emulator.rows import new_id, utc_timestamp


@dataclass(frozen=True)
class ListQuery:
    """Filters of the list endpoints (`GET /v1/project` etc.); each kind reads those its spec has."""

    limit: int | None = None
    starting_after: str | None = None
    ending_before: str | None = None
    ids: tuple[str, ...] = ()
    name: str | None = None
    project_id: str | None = None
    project_name: str | None = None
    org_name: str | None = None
    slug: str | None = None
    score_types: tuple[str, ...] = ()
    version: int | None = None


class Catalog:
    """The live catalog objects of one organization.

    Objects are kept whole, as their table kind stores them; `view` cuts one down to
    the fields of the kind it is served as.

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
        self._objects: dict[Kind, dict[str, Obj]] = {table: {} for table in TABLES}
        # Every version of each versioned object, oldest first: what `version` reads.
        self._versions: dict[str, list[Obj]] = {}

    def get(self, kind: Kind, object_id: str, version: int | None = None) -> Obj:
        """Return a stored object (as it was at `version`, if given).

        Raises:
            Rejected: 404 if there is no such `kind` (at that version).
        """
        found = self._objects[table_of(kind)].get(object_id)
        if found is not None and version is not None:
            found = self._at(kind, found, version)
        if found is None or not SPECS[kind].shows(found):
            raise not_found(kind, object_id)
        return found

    def view(self, kind: Kind, obj: Obj) -> Obj:
        """Return a copy of `obj` with exactly the fields of `kind`'s schema."""
        response = SPECS[kind].response
        return {name: copy.deepcopy(obj.get(name, default)) for name, default in response.items()}

    def find(self, kind: Kind, key: str, project_id: str | None) -> Obj | None:
        """Return the object of `kind`'s table whose key field (name or slug) is `key` in the scope."""
        field = SPECS[kind].key
        for obj in self._objects[table_of(kind)].values():
            if obj[field] == key and obj.get("project_id") == project_id:
                return obj
        return None

    def existing(self, kind: Kind, obj: Obj) -> Obj | None:
        """Return the stored object that holds `obj`'s key, if any.

        Raises:
            Rejected: 400 if the holder is not a `kind` (a code function's slug, for a prompt).
        """
        spec = SPECS[kind]
        found = self.find(kind, obj[spec.key], obj.get("project_id"))
        if found is not None and not spec.shows(found):
            holder = table_of(kind)
            raise bad_request(f"{spec.key} {obj[spec.key]!r} belongs to a {holder} that is not a {kind}")
        return found

    def build(self, kind: Kind, body: Any) -> Obj:
        """Return a new object from a create request body (not yet stored).

        Raises:
            Rejected: 400 for a malformed body or a project_id that does not exist.
        """
        spec = SPECS[kind]
        if not isinstance(body, dict):
            raise bad_request(f"the body of a create {kind} request must be a JSON object")
        body = dict(body)
        project_id = self._scope(body) if spec.scoped else None
        if spec.fresh_name is not None and body.get("name") is None:
            body["name"] = self.unique_name(kind, spec.fresh_name, project_id)
        self._check(kind, body, required=spec.required)
        stored = SPECS[table_of(kind)].response
        server = {
            "id": new_id(),
            "created": utc_timestamp(),
            "org_id": self.org_id,
            "user_id": self.user_id,
            "project_id": project_id,
        }
        obj = {**stored, **{name: value for name, value in server.items() if name in stored}}
        obj.update({key: value for key, value in body.items() if key in spec.fields and value is not None})
        obj.update(copy.deepcopy(dict(spec.forced)))
        return {**obj, **spec.derive(obj)}

    def unique_name(self, kind: Kind, name: str, project_id: str | None) -> str:
        """Return `name`, or `name-N` if taken (the `ensure_new` behaviour of experiment creation)."""
        candidate, number = name, 0
        while self.find(kind, candidate, project_id) is not None:
            number += 1
            candidate = f"{name}-{number}"
        return candidate

    def patched(self, kind: Kind, object_id: str, body: Any) -> Obj:
        """Return the object after a PATCH body (not yet stored); nulls are ignored, as in the API."""
        spec = SPECS[kind]
        obj = self.get(kind, object_id)
        if not isinstance(body, dict):
            raise bad_request(f"the body of a patch {kind} request must be a JSON object")
        changes = {key: value for key, value in body.items() if spec.may_patch(key) and value is not None}
        self._check(kind, changes, required=())
        key = str(changes.get(spec.key, obj[spec.key]))
        if key != obj[spec.key] and self.find(kind, key, obj.get("project_id")) is not None:
            raise bad_request(f"a {kind} with {spec.key} {key!r} already exists")
        merged = {name: value for name, value in changes.items() if name not in spec.replaced_on_patch}
        patched = deep_merge(obj, merged)
        patched.update({name: changes[name] for name in spec.replaced_on_patch & changes.keys()})
        return {**patched, **spec.derive(patched)}

    def put(self, table: Kind, obj: Obj) -> None:
        self._objects[table][obj["id"]] = obj
        if SPECS[table].versioned:
            self._versions.setdefault(obj["id"], []).append(obj)

    def drop(self, table: Kind, object_id: str) -> list[Obj]:
        """Remove an object, and a project's objects with it; return all removed."""
        removed = [self._objects[table].pop(object_id)]
        if table == "project":
            for child_table in TABLES:
                children = self._objects[child_table]
                doomed = [key for key, child in children.items() if child.get("project_id") == object_id]
                removed += [children.pop(child_id) for child_id in doomed]
        for obj in removed:
            self._versions.pop(obj["id"], None)
        return removed

    def list_objects(self, kind: Kind, query: ListQuery) -> list[Obj]:
        if query.starting_after and query.ending_before:
            raise bad_request("pass only one of starting_after and ending_before")
        if query.org_name is not None and query.org_name != self.org_name:
            return []
        found = []
        for current in reversed(self._objects[table_of(kind)].values()):
            obj = current if query.version is None else self._at(kind, current, query.version)
            if obj is not None and SPECS[kind].shows(obj) and self._selected(obj, query):
                found.append(obj)
        if query.starting_after:
            found = found[_index_of(found, query.starting_after) + 1 :]
        if query.ending_before:
            found = found[: _index_of(found, query.ending_before)]
            return found if query.limit is None else found[max(0, len(found) - query.limit) :]
        return found if query.limit is None else found[: query.limit]

    def _at(self, kind: Kind, obj: Obj, version: int) -> Obj | None:
        """Return `obj` as it was after transaction `version`, or None if it did not exist yet."""
        if not SPECS[kind].versioned:
            raise bad_request(f"a {kind} has no versions")
        older = [past for past in self._versions.get(obj["id"], [obj]) if int(past["_xact_id"]) <= version]
        return older[-1] if older else None

    def _selected(self, obj: Obj, query: ListQuery) -> bool:
        # A project is its own scope, so the project filters apply to it too.
        project_id = str(obj.get("project_id") or obj["id"])
        wanted = (
            (query.name, obj["name"]),
            (query.slug, obj.get("slug")),
            (query.project_id, project_id),
            (query.project_name, self._objects["project"][project_id]["name"]),
        )
        return (
            all(want is None or want == have for want, have in wanted)
            and (not query.ids or obj["id"] in query.ids)
            and (not query.score_types or obj.get("score_type") in query.score_types)
        )

    def _scope(self, body: Obj) -> str:
        project_id = body.get("project_id")
        if not isinstance(project_id, str) or project_id not in self._objects["project"]:
            raise bad_request(f"project_id {project_id!r} is not an existing project")
        return project_id

    def _check(self, kind: Kind, body: Obj, required: tuple[str, ...]) -> None:
        for field in required:
            if body.get(field) is None:
                raise bad_request(f"{field} is required to create a {kind}")
        for field, (check, shape) in SPECS[kind].fields.items():
            if field in body and not check(body[field]):
                raise bad_request(f"{field} must be {shape}")


def _index_of(objects: list[Obj], object_id: str) -> int:
    for index, obj in enumerate(objects):
        if obj["id"] == object_id:
            return index
    raise bad_request(f"no object with id {object_id} in this listing")
