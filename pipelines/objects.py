"""Partition keys and the Braintrust objects they name.

A partition key is the object's readable name, made unique where names are
ambiguous (`connector.sync.keys`). The sensor and the catalog asset give every
listed object its key; a partition run finds its object again with a few
targeted requests (the project by name, then its experiments or datasets), never
by listing the whole organization.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from connector.api.client import BraintrustClient
from connector.api.links import object_url
from connector.destinations.base import ObjectRef
from connector.errors import NotFoundError
from connector.sync.catalog import Catalog, object_ref, selects
from connector.sync.keys import key_with_id, object_key, object_keys, parse_key
from schemas.api import ApiObject, ObjectType, Project
from schemas.kinds import EVENT_KINDS, PROJECT, ObjectKind


@dataclass(frozen=True)
class BraintrustObject:
    """A project's logs, an experiment or a dataset, found by its partition key.

    Args:
        key: its partition key.
        ref: what a sync of it needs.
        project: its project.
        obj: the experiment or dataset (the project, for its logs).
    """

    key: str
    ref: ObjectRef
    project: Project
    obj: ApiObject

    def url(self, app_url: str | None, org_names: dict[str, str]) -> str | None:
        """Its page in the Braintrust UI, when the app and the project's organization are known."""
        org_name = org_names.get(self.project.org_id)
        if app_url is None or org_name is None:
            return None
        return object_url(app_url, org_name, self.project.name, self.ref.object_type, self.obj.name)


def listed_keys(catalog: Catalog) -> dict[ObjectType, dict[str, ObjectRef]]:
    """Per object type, the partition key of every event container the catalog lists."""
    refs = catalog.refs(EVENT_KINDS)
    keys = object_keys(refs)
    by_type: defaultdict[ObjectType, dict[str, ObjectRef]] = defaultdict(dict)
    for ref in refs:
        by_type[ref.object_type][keys[(ref.object_type, ref.object_id)]] = ref
    return by_type


def find_objects(
    client: BraintrustClient,
    kind: ObjectKind,
    keys: Iterable[str],
    selectors: Sequence[str],
    listed: Sequence[Project],
) -> dict[str, BraintrustObject]:
    """The objects of `kind` that `keys` name, by key; a key naming no live object is left out.

    Args:
        client: the API.
        kind: projects (for their logs), experiments or datasets.
        keys: partition keys.
        selectors: the projects to sync (names or ids); empty for all.
        listed: every project the API lists (`listed_projects`), where a key's project name is looked up.
    """
    assert kind.events is not None, f"{kind.name} has no events"
    object_type = kind.events.object_type
    found: dict[str, BraintrustObject] = {}
    by_project: defaultdict[str, list[tuple[str, str]]] = defaultdict(list)
    for key in keys:
        parts = parse_key(object_type, key)
        if parts.object_id is not None:
            by_id = _by_id(client, kind, key, parts.object_id)
            if by_id is not None and _selected(by_id.project, selectors):
                found[key] = by_id
        else:
            by_project[parts.names[0]].append((key, parts.names[-1]))
    for project_name, wanted in by_project.items():
        projects = [p for p in listed if p.name == project_name]
        if len(projects) != 1 or not _selected(projects[0], selectors):
            # None, or one name in two organizations: then the listed keys carry ids.
            continue
        project = projects[0]
        named = _by_name([project] if kind is PROJECT else list(client.list_kind(kind, project.id)))
        for key, name in wanted:
            obj = named.get(name)
            if obj is None:
                continue
            ref = object_ref(kind, obj, project.name)
            if object_key(object_type, ref.name, obj.id) == key:
                found[key] = BraintrustObject(key, ref, project, obj)
    return found


def _by_id(client: BraintrustClient, kind: ObjectKind, key: str, object_id: str) -> BraintrustObject | None:
    try:
        obj = client.get_object(kind, object_id)
        project = obj if kind is PROJECT else client.get_object(PROJECT, obj.owning_project_id)
    except NotFoundError:
        return None
    assert isinstance(project, Project), "the project kind's model is Project"
    ref = object_ref(kind, obj, project.name)
    # A renamed object has a new key: this one no longer names it.
    return BraintrustObject(key, ref, project, obj) if key_with_id(ref.name, obj.id) == key else None


def _by_name(objects: list[ApiObject]) -> dict[str, ApiObject]:
    """Objects by name, leaving out names that two objects share (their keys carry ids)."""
    counts: defaultdict[str, int] = defaultdict(int)
    for obj in objects:
        counts[obj.name] += 1
    return {obj.name: obj for obj in objects if counts[obj.name] == 1}


def _selected(project: Project, selectors: Sequence[str]) -> bool:
    return not selectors or selects(selectors, project)
