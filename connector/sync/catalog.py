"""The catalog: which projects exist, and the objects of every kind in them.

Listing is one code path over the registry of kinds (`schemas.kinds`): a
kind's objects are listed per project with `starting_after` paging. The event
containers among them (projects' logs, experiments, datasets) become the
`ObjectRef`s a sync reads, named readably: `project`, `project/experiment`.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus

import duckdb

from connector.api.client import BraintrustClient
from connector.destinations.base import Destination, ObjectRef, SyncState
from connector.display import counted, cut, printable, read_as
from connector.errors import ApiError, AuthError, ConfigError, NotFoundError, WarehouseError
from schemas.api import UUID_TEXT, ApiObject, ObjectType, Project
from schemas.kinds import (
    BY_OBJECT_TYPE,
    BY_OPTION,
    DATASET,
    EVENT_KINDS,
    EXPERIMENT,
    KINDS,
    PROJECT,
    ObjectKind,
)
from schemas.tables import sql_identifier, sql_literal

logger = logging.getLogger("bt_sync")
# The most project names an unknown `--project`'s message lists.
_MOST_NAMES_LISTED = 20


@dataclass(frozen=True)
class Catalog:
    """The selected projects and their objects of the listed kinds.

    Args:
        projects: the selected projects.
        objects: per listed kind (projects included), its objects in those projects.
        every_project: no project was left out: one synced before and missing here was deleted upstream.
        listed: every project the API listed, selected or not.
    """

    projects: tuple[Project, ...]
    objects: dict[ObjectKind, tuple[ApiObject, ...]]
    every_project: bool
    listed: tuple[Project, ...]

    @property
    def listed_project_ids(self) -> frozenset[str]:
        """The ids of every project the API listed."""
        return frozenset(project.id for project in self.listed)

    def count(self, kind: ObjectKind) -> int:
        """How many objects of `kind` were listed in the selected projects (the projects: those selected,
        while `write_catalog` refreshes every listed project's row)."""
        return len(self.objects.get(kind, ()))

    def refs(self, kinds: Iterable[ObjectKind]) -> list[ObjectRef]:
        """The event containers of `kinds`, in registry order."""
        names = {project.id: project.name for project in self.projects}
        selected = set(kinds)
        return [
            object_ref(kind, obj, names[obj.owning_project_id])
            for kind in EVENT_KINDS
            if kind in selected
            for obj in self.objects.get(kind, ())
        ]


def object_ref(kind: ObjectKind, obj: ApiObject, project_name: str) -> ObjectRef:
    """The event container `obj` of an event kind, with its readable name."""
    return _named_ref(kind, obj.id, obj.owning_project_id, project_name, obj.name)


def _named_ref(kind: ObjectKind, object_id: str, project_id: str, project_name: str, name: str) -> ObjectRef:
    """An event container of `kind`, named readably: `project`, or `project/experiment`."""
    assert kind.events is not None, f"{kind.name} has no events"
    readable = project_name if kind is PROJECT else f"{project_name}/{name}"
    return ObjectRef(kind.events, object_id, project_id, readable)


def lookup_ref(client: BraintrustClient, object_type: ObjectType, object_id: str) -> ObjectRef:
    """Look up one event container by type and id (the project id for project logs)."""
    kind = BY_OBJECT_TYPE[object_type]
    obj = client.get_object(kind, object_id)
    project = obj if kind is PROJECT else client.get_object(PROJECT, obj.owning_project_id)
    return object_ref(kind, obj, project.name)


def selects(selectors: Sequence[str], project: Project) -> bool:
    """Whether `selectors` (names or ids) name `project`: by its name, or by its id in either case (a UUID
    is, and some tools print them in upper case)."""
    return project.name in selectors or project.id.lower() in {selector.lower() for selector in selectors}


def discover_catalog(
    client: BraintrustClient, selectors: Sequence[str] = (), kinds: Iterable[ObjectKind] = KINDS
) -> Catalog:
    """List the projects matching `selectors` (names or ids; all when empty) and their objects of `kinds`.

    Raises:
        ConfigError: a selector matches no project.
    """
    projects = listed = listed_projects(client)
    if selectors:
        chosen = [p for p in projects if selects(selectors, p)]
        unknown = {s for s in selectors if not any(selects([s], p) for p in chosen)}
        if unknown:
            # A name that served for weeks stops matching when its project is deleted or renamed upstream.
            # Quoted when a space at an end would not show (a copy and paste's: ' pp' looked like pp).
            shown = ", ".join(name if name == name.strip() else repr(name) for name in sorted(unknown))
            remedy = (
                "one deleted or renamed upstream is no longer listed: name the projects that are (--project, "
                "or the Dagster resource's `projects`)"
            )
            if named := _projects_listed_in_one(unknown, projects):
                each = " ".join(f"--project {shlex.quote(part)}" for part in named)
                remedy = f"--project takes one project: give it once for each ({each})"
            elif contained := _event_container_by_id(client, unknown, projects):
                kind, found, project = contained
                path = f"{cut(project)}/{cut(found.name)}"
                remedy = (
                    f"{found.id} is the id of the {kind.api_path} {path}: --project takes a project "
                    f"(--project {shlex.quote(project)} --objects {kind.option})"
                )
            elif keyed := _project_of_partition_key(unknown, projects):
                key, project = keyed
                remedy = (
                    f"{key!r} names an object of the project {project!r}, as `bt-sync status` and Dagster's "
                    f"partitions do: --project takes a project (--project {shlex.quote(project)}, and "
                    "--objects for the kinds)"
                )
            raise ConfigError(
                printable(
                    f"no project named or with id {shown} ({_known_projects(projects, unknown)}); {remedy}"
                )
            )
        projects = chosen
    objects: dict[ObjectKind, tuple[ApiObject, ...]] = {PROJECT: tuple(projects)}
    asked = tuple(kinds)
    for kind in asked:
        if kind.in_project:
            objects[kind] = _listed_in(client, kind, projects, asked)
    return Catalog(tuple(projects), objects, every_project=not selectors, listed=tuple(listed))


def _projects_listed_in_one(unknown: Iterable[str], projects: Sequence[Project]) -> list[str] | None:
    """The projects an unknown selector lists (`--project a,b` or `a, b`, as `--objects` takes a list),
    each once, if each of its parts names one and there are several; else None."""
    for selector in sorted(unknown):
        parts = [*dict.fromkeys(part.strip() for part in selector.split(","))]
        if len(parts) > 1 and all(any(selects([part], p) for p in projects) for part in parts):
            return parts
    return None


def _event_container_by_id(
    client: BraintrustClient, unknown: Iterable[str], projects: Sequence[Project]
) -> tuple[ObjectKind, ApiObject, str] | None:
    """An experiment or dataset whose id is an unknown selector (copied from `status`, or the API's URL),
    its kind and its project's name; else None. Asked of the API by id: two requests for each selector
    that is a UUID, where listing every project's objects could take hundreds."""
    names = {project.id: project.name for project in projects}
    for selector in sorted(unknown):
        if not UUID_TEXT.fullmatch(selector):
            continue
        for kind in (EXPERIMENT, DATASET):
            try:
                found = client.get_object(kind, selector)
            except ApiError:  # not one, or not to be asked: the error says what it can without
                continue
            if (project := names.get(found.owning_project_id)) is not None:
                return kind, found, project
    return None


def _project_of_partition_key(unknown: Iterable[str], projects: Sequence[Project]) -> tuple[str, str] | None:
    """An unknown selector that is an object's partition key (`project/dataset`: the project's name, a
    slash, the object's name) and the project it names, the longest such name (`x/y` of `x/y/z`); else
    None."""
    names = {project.name for project in projects}
    for selector in sorted(unknown):
        # A slash with a name after it: `support-bot/` names no object.
        slashes = [at for at, character in enumerate(selector[:-1]) if character == "/"]
        if project := next((selector[:at] for at in reversed(slashes) if selector[:at] in names), None):
            return selector, project
    return None


def _known_projects(projects: Sequence[Project], unknown: Iterable[str]) -> str:
    """The projects a sync could have named instead of the `unknown` names: first those reading alike
    (`Support-Bot` for `support-bot`, `p1` for `p1` and a zero-width space), then the first others
    by name (311 names made a 10 KB line)."""
    names = sorted(project.name for project in projects)
    if not names:
        return "projects: none"
    wanted = {read_as(name).casefold() for name in unknown}
    alike = [name for name in names if read_as(name).casefold() in wanted]
    meant = f"did you mean {' or '.join(repr(name) for name in alike)}? " if alike else ""
    more = f", and {len(names) - _MOST_NAMES_LISTED:,} more" if len(names) > _MOST_NAMES_LISTED else ""
    # One name of 5,000 characters made a 5 KB line: the others' are cut (the alike stay whole, to copy).
    listed = [cut(name) for name in names[:_MOST_NAMES_LISTED]]
    return f"{meant}projects: {', '.join(listed)}{more}"


def _listed_in(
    client: BraintrustClient, kind: ObjectKind, projects: Iterable[Project], kinds: Collection[ObjectKind]
) -> tuple[ApiObject, ...]:
    """The objects of `kind` in `projects`, one of the `kinds` asked for.

    An object listed under a project it does not belong to is left out, with a warning: an API that
    ignores the listing's `project_id` filter listed every object under each project, each stored, counted
    and synced once per project (and, for a project not selected, a traceback).

    Raises:
        AuthError: the key may not list them; refused with a 403 (the projects were listed), what the key
            lacks and how to sync the other kinds asked for are said: the message sent users to check a
            key that works.
        NotFoundError: a project's listing answered 404, naming the project (deleted since it was listed?).
    """
    listed: list[tuple[Project, ApiObject]] = []
    for project in projects:
        try:
            listed.extend((project, obj) for obj in client.list_kind(kind, project.id))
        except AuthError as error:
            if error.status != HTTPStatus.FORBIDDEN:
                raise
            raise _kind_refused(error, kind, project, kinds) from None
        except NotFoundError as error:
            raise NotFoundError(
                f"{error} (listing the {kind.option} of project {project.name!r}: deleted since the projects "
                "were listed?)",
                status=error.status,
            ) from None
    astray = [obj for project, obj in listed if obj.owning_project_id != project.id]
    if astray:
        logger.warning(
            "the API listed %s under projects they do not belong to (e.g. %r, of project %s): left out there",
            counted(len(astray), kind.option),
            astray[0].name,
            astray[0].owning_project_id,
        )
    return tuple(obj for project, obj in listed if obj.owning_project_id == project.id)


def _kind_refused(
    error: AuthError, kind: ObjectKind, project: Project, kinds: Collection[ObjectKind]
) -> AuthError:
    """The 403 `error` of a kind's listing in `project`, saying what the key lacks and how to sync the
    other `kinds` asked for (the client's "check the key and the URL" said the opposite of a key that
    listed the projects)."""
    others = ",".join(other.option for other in KINDS if other in kinds and other is not kind)
    # The command's other flags kept: a whole command to copy left out its warehouse's.
    remedy = (
        f"grant it, or give the command --objects {others} to sync the other kinds" if others else "grant it"
    )
    said = f": {error.said}" if error.said else ""
    return AuthError(
        f"Braintrust refused this API key the listing of {kind.option} in project {project.name!r} (HTTP "
        f"{error.status} on GET /v1/{kind.api_path}{said}), though it listed the projects: it may lack only "
        f"the permission to read {kind.option}; {remedy}",
        status=error.status,
        said=error.said,
    )


def listed_projects(client: BraintrustClient) -> list[Project]:
    """Every project the API lists."""
    return [project for project in client.list_kind(PROJECT) if isinstance(project, Project)]


def check_same_source(listed: Collection[str], states: Iterable[SyncState]) -> None:
    """Refuse to sync from an API that lists the projects `listed` (ids) into a warehouse whose objects
    (their committed `states`) are of projects none of which it lists.

    Such an API is not the one the warehouse was synced from (another deployment, a key of another
    organization), or the key lost access to every project: its listing would mark every object
    deleted upstream, a reconcile would then remove them all, and a sync would mix in another
    organization's projects.

    Raises:
        ConfigError: the API lists none of the warehouse's projects.
    """
    held = {state.project_id for state in states}
    if held and held.isdisjoint(listed):
        raise ConfigError(
            f"the API lists {counted(len(listed), 'projects')}, and none of the {len(held):,} this warehouse "
            "holds objects of: is it the API (--api-url, BRAINTRUST_API_URL) the warehouse was synced from, "
            "with a key of the same organization that can read them? Nothing was written. If they were all "
            "deleted upstream, move the warehouse away and sync into a new one"
        )


def write_catalog(destination: Destination, catalog: Catalog) -> None:
    """Replace the catalog tables' rows of the listed kinds: for every project, or only the selected ones.

    The projects' own rows are those of every project listed, selected or not: a run narrowed to some
    projects refreshes the others' names too (two projects that swapped names upstream would otherwise
    show one name twice), and keeps the rows of those not listed.
    """
    project_ids = None if catalog.every_project else [project.id for project in catalog.projects]
    for kind, objects in catalog.objects.items():
        if kind is PROJECT and project_ids is not None:
            destination.write_catalog(kind, catalog.listed, [project.id for project in catalog.listed])
        else:
            destination.write_catalog(kind, objects, project_ids)


def write_catalog_whole(
    client: BraintrustClient, destination: Destination, catalog: Catalog, kinds: Collection[ObjectKind]
) -> None:
    """Prepare the destination and write `catalog` (its listing of `kinds`), after writing again, from a
    listing for every project, the catalog tables lost since a sync made them (a file deleted or damaged
    by hand, an Iceberg table dropped): written back empty by `prepare`, such a table stayed so for good
    where the syncs that followed did not list its kind (`--objects logs`, a narrowed Dagster catalog),
    and `status` called its objects deleted upstream."""
    lost = destination.lost_catalog()
    whole = set(kinds) | {PROJECT} if catalog.every_project else set()
    relist = [kind for kind in lost if kind not in whole]
    relisted = None
    if lost:
        names = [kind.catalog.table for kind in lost]
        tables = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        plural = "s" if len(lost) > 1 else ""
        logger.warning(
            "the warehouse had lost its %s table%s: written again from the API's listing", tables, plural
        )
    if relist:
        try:
            relisted = discover_catalog(client, (), relist)
        except AuthError as error:
            # A kind the key may not list (the reason a sync is narrowed): the others go on, the table empty.
            logger.warning("%s; the table stays empty until a sync that can list it", error)
    destination.prepare()
    if relisted is not None:  # first: its whole tables are what a narrowed catalog's rows are merged into
        write_catalog(destination, relisted)
    write_catalog(destination, catalog)


def listed_in_warehouse(destination: Destination) -> list[ObjectRef] | None:
    """The event containers the catalog tables hold: those the API listed at the last syncs, named as
    there; None when the tables cannot be read.
    """
    projects = sql_identifier(PROJECT.catalog.table)
    # Each object with its project's name (a project's own, for its logs), named as `object_ref` names it.
    selects = [
        f"SELECT {sql_literal(kind.option)}, o.id, p.id, p.name, o.name "
        f"FROM {sql_identifier(kind.catalog.table)} AS o "
        f"JOIN {projects} AS p ON p.id = {'o.id' if kind is PROJECT else 'o.project_id'}"
        for kind in EVENT_KINDS
    ]
    try:
        with destination.reader() as con:
            rows = con.execute(" UNION ALL ".join(selects)).fetchall()
    except (duckdb.Error, WarehouseError):
        return None
    return [_named_ref(BY_OPTION[option], *columns) for option, *columns in rows]
