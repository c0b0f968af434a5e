"""The emulator's data: catalog objects and their event histories, with Braintrust's semantics.

No HTTP here: tests and benchmarks use a `Store` directly to set up and inspect data.
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from connector.emulator import json_text
from connector.emulator.catalog import Catalog, ListQuery
from connector.emulator.clock import XactClock
from connector.emulator.errors import Rejected, bad_request
from connector.emulator.generate import TraceFactory, log_batches
from connector.emulator.history import History, Page
from connector.emulator.journal import ForeignJournal, Journal
from connector.emulator.kinds import SPECS, Kind, Obj, table_of
from connector.emulator.rows import Row, apply_events, check_events, serialize, utc_timestamp

logger = logging.getLogger(__name__)

ObjectType = Literal["project_logs", "experiment", "dataset"]
OBJECT_TYPES: tuple[ObjectType, ...] = ("project_logs", "experiment", "dataset")
# The catalog object that owns each kind of event history.
OWNER: dict[ObjectType, Kind] = {"project_logs": "project", "experiment": "experiment", "dataset": "dataset"}
MAX_FETCH_LIMIT = 1000
# Fields a row of each kind always has, null until written, as Braintrust serves them: the SDK reads a
# dataset record's `expected` without a default (`ensure_new_dataset_record`), so `Dataset.fetch()`
# raised KeyError on a record inserted without one.
_NULL_UNTIL_WRITTEN: dict[ObjectType, Row] = {
    "project_logs": {},
    "experiment": {},
    "dataset": dict.fromkeys(("input", "expected", "metadata", "tags")),
}


@dataclass(frozen=True)
class Events:
    """The events one write request carries for one object."""

    object_type: ObjectType
    object_id: str
    events: list[Row]


class Store:
    """In-memory Braintrust data for one organization; safe to use from many threads.

    Args:
        org_name: name of the organization; its id is derived from it.
        xact_start: first `_xact_id` to hand out (then +1 per write), or None for
            time-based ids like Braintrust's.
    """

    def __init__(self, *, org_name: str = "emulator-org", xact_start: int | None = None) -> None:
        org_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bt-sync-emulator/org/{org_name}"))
        user_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bt-sync-emulator/user/{org_name}"))
        self.catalog = Catalog(org_id, org_name, user_id)
        self.clock = XactClock(xact_start)
        self._histories: dict[tuple[ObjectType, str], History] = {}
        self._journal: Journal | None = None
        self._lock = threading.RLock()

    # Catalog objects

    def create_project(self, name: str, **fields: Any) -> Obj:
        return self.create("project", {**fields, "name": name})[0]

    def create_experiment(self, project_id: str, name: str, **fields: Any) -> Obj:
        return self.create("experiment", {**fields, "project_id": project_id, "name": name})[0]

    def create_dataset(self, project_id: str, name: str, **fields: Any) -> Obj:
        return self.create("dataset", {**fields, "project_id": project_id, "name": name})[0]

    def create(self, kind: Kind, body: Any) -> tuple[Obj, bool]:
        """Create an object from a request body; return it and whether it is new.

        As in the API, creating a key (name, or slug) that exists in the same scope
        returns the existing object unmodified (experiments with `ensure_new` get a fresh name).
        Objects are returned as copies, here and below: changing one changes nothing stored.
        """
        with self._lock:
            obj = self.catalog.build(kind, body)
            existing = self.catalog.existing(kind, obj)
            if existing is not None:
                if not (SPECS[kind].fresh_name and body.get("ensure_new")):
                    return self.catalog.view(kind, existing), False
                obj["name"] = self.catalog.unique_name(kind, obj["name"], obj["project_id"])
            return self._put(kind, obj), True

    def replace(self, kind: Kind, body: Any) -> tuple[Obj, bool]:
        """Create, or replace the object holding the same key by one made from `body` alone (PUT).

        The replacement keeps the id and creation time; returns it and whether it is new.
        """
        with self._lock:
            obj = self.catalog.build(kind, body)
            existing = self.catalog.existing(kind, obj)
            if existing is not None:
                obj.update(id=existing["id"], created=existing["created"])
            return self._put(kind, obj), existing is None

    def get(self, kind: Kind, object_id: str, version: int | None = None) -> Obj:
        """Return an object; for a versioned kind, as it was at transaction `version` if given."""
        with self._lock:
            return self.catalog.view(kind, self.catalog.get(kind, object_id, version))

    def list_objects(self, kind: Kind, query: ListQuery) -> list[Obj]:
        with self._lock:
            return [self.catalog.view(kind, obj) for obj in self.catalog.list_objects(kind, query)]

    def patch(self, kind: Kind, object_id: str, body: Any) -> Obj:
        with self._lock:
            return self._put(kind, self.catalog.patched(kind, object_id, body))

    def delete(self, kind: Kind, object_id: str) -> Obj:
        """Delete an object (a project takes everything in it along) and its events."""
        with self._lock:
            deleted = self.catalog.view(kind, self.catalog.get(kind, object_id))
            self._drop(table_of(kind), object_id)
            self._record({"op": "drop", "kind": table_of(kind), "id": object_id})
            if "deleted_at" in deleted:
                deleted["deleted_at"] = utc_timestamp()
            return deleted

    # Events

    def insert(self, object_type: ObjectType, object_id: str, events: list[Row]) -> list[str]:
        """Apply one insert request; return the row id of each event, in order.

        All rows written by one call share one new `_xact_id`.

        Raises:
            Rejected: 400 for malformed events, 404 for an unknown object.
        """
        return self.write([Events(object_type, object_id, events)])[0]

    def write(self, batches: Sequence[Events]) -> list[list[str]]:
        """Apply one write request that may touch several objects (the SDK's `/logs3`), all or nothing.

        Every row it writes, in any object, shares one new `_xact_id`. Each object
        must appear in one batch at most. Returns the row ids of each batch's events.

        Raises:
            Rejected: 400 for malformed events or a comment on a missing row,
                404 for an unknown object; nothing is written then.
            ValueError: if an object appears in two batches.
        """
        if len({(batch.object_type, batch.object_id) for batch in batches}) < len(batches):
            raise ValueError("each object may appear in one batch of a write at most")
        for batch in batches:
            check_events(batch.events)
        with self._lock:
            histories = [self._history(batch.object_type, batch.object_id) for batch in batches]
            xact = self.clock.next()
            # Copies: a write refused below leaves the comments waiting as they were.
            waiting = [dict(history.waiting_comments) for history in histories]
            outcomes = [
                apply_events(batch.events, history.latest, xact, comments)
                for batch, history, comments in zip(batches, histories, waiting, strict=True)
            ]
            # Every object's rows serialized before any is stored: a row refused stores none of the write.
            blobs = [
                self._serialized(batch.object_type, history, xact, outcome.rows)
                for batch, history, outcome in zip(batches, histories, outcomes, strict=True)
            ]
            for batch, history, outcome, serialized, comments in zip(
                batches, histories, outcomes, blobs, waiting, strict=True
            ):
                changed = comments if comments != history.waiting_comments else None
                history.waiting_comments = comments
                rows, deleted = outcome.rows, outcome.deleted
                self._store(batch.object_type, history, xact, rows, serialized, deleted, changed)
        return [outcome.row_ids for outcome in outcomes]

    def fetch(
        self,
        object_type: ObjectType,
        object_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        version: int | None = None,
        max_xact_id: int | None = None,
        max_root_span_id: str | None = None,
    ) -> Page:
        """Return one fetch page; see `History.page`. `limit` defaults to, and is capped at, 1000 traces."""
        with self._lock:
            return self._history(object_type, object_id).page(
                limit=MAX_FETCH_LIMIT if limit is None else min(limit, MAX_FETCH_LIMIT),
                cursor=cursor,
                version=version,
                max_xact_id=max_xact_id,
                max_root_span_id=max_root_span_id,
            )

    def live_rows(self, object_type: ObjectType, object_id: str) -> list[Row]:
        """Return the latest version of every row that is not deleted (order unspecified)."""
        with self._lock:
            return self._history(object_type, object_id).live_rows()

    def live_count(self, object_type: ObjectType, object_id: str) -> int:
        with self._lock:
            return self._history(object_type, object_id).live_count()

    def version_count(self, object_type: ObjectType, object_id: str) -> int:
        """Return how many versions were ever written (a full unpinned fetch pages over them)."""
        with self._lock:
            return len(self._history(object_type, object_id))

    def generate_logs(
        self,
        project_id: str,
        n_rows: int,
        *,
        trace_spans: tuple[int, int] = (1, 20),
        update_fraction: float = 0.05,
        payload_bytes: int = 1200,
        rng_seed: int = 0,
    ) -> int:
        """Bulk-write `n_rows` traced log rows, plus later versions of about `update_fraction` of them.

        Rows are written in requests of about 1000 (one `_xact_id` each), without
        going through the insert semantics, so a million rows take seconds.
        Returns the number of versions written.
        """
        with self._lock:
            history = self._history("project_logs", project_id)
            # Mixing in the history length lets repeated calls add new rows, not re-create old ones.
            rng = random.Random(f"{rng_seed}/{project_id}/{len(history)}")
        factory = TraceFactory(rng, payload_bytes)
        written = 0
        for batch in log_batches(factory, n_rows, trace_spans=trace_spans, update_fraction=update_fraction):
            with self._lock:
                xact = self.clock.next()
                blobs = self._serialized("project_logs", history, xact, batch)
                self._store("project_logs", history, xact, batch, blobs, [])
            written += len(batch)
        return written

    # Persistence

    def open_journal(self, journal: Journal) -> bool:
        """Replay `journal` into this store, then record every later write in it.

        Returns whether the journal held any data.

        Raises:
            ForeignJournal: the journal's lines are none of them a record (another program's file of that
                name): it would have been written into. A first record torn by a crash is no such line.
        """
        replayed = False
        with self._lock:
            for number, record in enumerate(journal.records(), start=1):
                try:
                    self._replay(record)
                except (Rejected, LookupError, TypeError, ValueError) as error:
                    # A record resting on one that was skipped (torn by a write that failed partway).
                    reason = f"it has no {error.args[0]!r}" if isinstance(error, KeyError) else error
                    logger.warning("ignoring record %d of %s: %s", number, journal.path, reason)
                    continue
                replayed = True
            if journal.whole_lines and not replayed:
                raise ForeignJournal(
                    f"{journal.path} holds no record the emulator wrote: give a directory of its own"
                )
            self._journal = journal
        return replayed

    def _replay(self, record: dict[str, Any]) -> None:
        if record["op"] == "put":
            obj = record["object"]
            if obj.get("_xact_id") is not None:
                self.clock.observe(int(obj["_xact_id"]))
            self.catalog.put(record["kind"], obj)
        elif record["op"] == "drop":
            self._drop(record["kind"], record["id"])
        else:
            xact = record["xact"]
            self.clock.observe(xact)
            # A journal written before `_NULL_UNTIL_WRITTEN` was has rows without those fields.
            unwritten = _NULL_UNTIL_WRITTEN[record["type"]]
            rows = [{**unwritten, **row} for row in record["rows"]]
            versions = [(row["root_span_id"], row["id"], serialize(row)) for row in rows]
            history = self._history(record["type"], record["object"])
            history.append(xact, versions, record["deleted"])
            history.waiting_comments = record.get("waiting", history.waiting_comments)

    def _record(self, record: dict[str, Any]) -> None:
        if self._journal is not None:
            self._journal.append(json_text.dumps(record))

    # Internals (callers hold the lock)

    def _put(self, kind: Kind, obj: Obj) -> Obj:
        """Store a new or changed object (a new version, for a versioned kind); return its view."""
        table = table_of(kind)
        if SPECS[table].versioned:
            obj = {**obj, "_xact_id": str(self.clock.next())}
        self.catalog.put(table, obj)
        self._record({"op": "put", "kind": table, "object": obj})
        return self.catalog.view(kind, obj)

    def _drop(self, table: Kind, object_id: str) -> None:
        gone = {obj["id"] for obj in self.catalog.drop(table, object_id)}
        for key in [key for key in self._histories if key[1] in gone]:
            del self._histories[key]

    def _history(self, object_type: ObjectType, object_id: str) -> History:
        owner = OWNER.get(object_type)
        if owner is None:
            raise bad_request(f"unknown object type {object_type!r}: use one of {', '.join(OBJECT_TYPES)}")
        self.catalog.get(owner, object_id)
        key = (object_type, object_id)
        history = self._histories.get(key)
        if history is None:
            history = self._histories[key] = History(object_id)
        return history

    def _serialized(
        self, object_type: ObjectType, history: History, xact: int, rows: list[Row]
    ) -> list[bytes]:
        """The rows as stored: with the fields the server sets.

        Raises:
            Rejected: 400 for a row nested deeper than orjson writes (254 levels; it parses 1,024).
        """
        fixed = {"_xact_id": str(xact), **self._object_fields(object_type, history.object_id)}
        unwritten = _NULL_UNTIL_WRITTEN[object_type]
        try:
            return [serialize({**unwritten, **row, **fixed}) for row in rows]
        except TypeError as error:
            raise bad_request(f"an event cannot be stored: {error}") from None

    def _store(
        self,
        object_type: ObjectType,
        history: History,
        xact: int,
        rows: list[Row],
        blobs: list[bytes],
        deleted: list[str],
        waiting: dict[str, list[Row]] | None = None,
    ) -> None:
        """Store a write's rows; `waiting`: the object's comments waiting for their rows, if it changed."""
        history.append(
            xact,
            [(row["root_span_id"], row["id"], blob) for row, blob in zip(rows, blobs, strict=True)],
            deleted,
        )
        if self._journal is not None:
            record: dict[str, Any] = {
                "op": "events",
                "type": object_type,
                "object": history.object_id,
                "xact": xact,
            }
            if waiting is not None:  # kept across a restart, so a comment still joins its row when it comes
                record["waiting"] = waiting
            # The rows are JSON already: written after the rest (whose ids may hold lone surrogates).
            head = json_text.dumps({**record, "deleted": deleted})
            self._journal.append(head[:-1] + b',"rows":[' + b",".join(blobs) + b"]}")

    def _object_fields(self, object_type: ObjectType, object_id: str) -> dict[str, str]:
        """Fields the server sets on every row of an object, whatever the client sent."""
        if object_type == "project_logs":
            return {"project_id": object_id, "org_id": self.catalog.org_id, "log_id": "g"}
        owner = self.catalog.get(OWNER[object_type], object_id)
        return {"project_id": owner["project_id"], f"{object_type}_id": object_id}
