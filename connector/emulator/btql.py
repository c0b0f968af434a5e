"""`POST /btql`, for the one query the SDK's object fetcher sends.

`ObjectFetcher._refetch` (in SDK 0.47.0 for datasets opened with
`_internal_btql`; for every fetcher in older SDKs) reads an object as
`select * from <type>('<id>')` in BTQL's JSON form, with a cursor and a limit,
and reads `data` and `cursor` from the answer. The emulator serves that query
from the same history as `/fetch`, with the same paging and version semantics,
and refuses any other query rather than answer it wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connector.emulator.errors import bad_request
from connector.emulator.store import OBJECT_TYPES, ObjectType

_CLAUSES = frozenset({"select", "from", "cursor", "limit"})
_SOURCES: dict[str, ObjectType] = {object_type: object_type for object_type in OBJECT_TYPES}


@dataclass(frozen=True)
class ObjectQuery:
    """The object a fetch query reads, and its paging arguments as `/fetch` takes them."""

    object_type: ObjectType
    object_id: str
    paging: dict[str, Any]


def object_query(body: dict[str, Any]) -> ObjectQuery:
    """Return what a `/btql` request body asks for.

    Raises:
        Rejected: 400 for anything but a `select *` of one object, paged by cursor and limit.
    """
    query = body.get("query")
    if not isinstance(query, dict):
        raise bad_request("the emulator serves BTQL in its JSON form only: send `query` as an object")
    extra = sorted(clause for clause, value in query.items() if value is not None and clause not in _CLAUSES)
    if extra:
        raise bad_request(
            "the emulator serves only `select *` from one object with cursor and limit; "
            f"this query also has {', '.join(extra)}"
        )
    if query.get("select") != [{"op": "star"}]:
        raise bad_request("the emulator serves only `select *`")
    if body.get("audit_log") or body.get("fmt") not in (None, "json"):
        raise bad_request("the emulator serves rows as JSON only, without audit logs")
    object_type, object_id = _source(query.get("from"))
    paging = {"limit": query.get("limit"), "cursor": query.get("cursor"), "version": body.get("version")}
    return ObjectQuery(object_type, object_id, paging)


def _source(source: Any) -> tuple[ObjectType, str]:
    match source:
        case {
            "op": "function",
            "name": {"op": "ident", "name": [str() as name]},
            "args": [{"op": "literal", "value": str() as object_id}],
        } if name in _SOURCES:
            return _SOURCES[name], object_id
    sources = ", ".join(f"{object_type}('<id>')" for object_type in OBJECT_TYPES)
    raise bad_request(f"`from` must be one of {sources}")
