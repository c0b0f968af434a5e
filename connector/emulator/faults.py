"""Fault injection: rules that make matching requests fail the way real networks and servers do."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

FaultKind = Literal[
    "status", "slow", "drop", "truncate", "repeat_cursor", "empty_page", "body", "drop_after_apply", "gzip"
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)


@dataclass(frozen=True)
class FaultRule:
    """One fault to inject.

    Attributes:
        kind: what happens to a matching request:
            `status`: answer `status` (with `Retry-After: retry_after` if set, and `body` as its text if
            set), without applying writes;
            `slow`: wait `delay_s` seconds, then serve normally;
            `drop`: close the connection without any response, without applying writes;
            `truncate`: send the headers (full Content-Length) and part of the body, then close
            (a write is not applied);
            `repeat_cursor`: serve a fetch normally but return a cursor that does not advance;
            `empty_page`: serve a fetch page with no events but a cursor to the same position
            (following it serves the page the request would have had);
            `body`: answer 200 with `body` as the JSON body, whatever the request (a malformed response);
            `drop_after_apply`: apply the request, then close without responding (a lost ack).
            `gzip`: serve normally, the body compressed (`Content-Encoding: gzip`), as an API behind a
            compressing proxy answers: its length is then not the length read.
        route: regular expression searched in the request path ("/insert" works as a substring).
        method: HTTP method to match, or None for any.
        status: HTTP status for `kind="status"` (429, 500, 503, 413, 408, ...).
        retry_after: value of the `Retry-After` header: seconds ("1") or an HTTP-date.
        delay_s: delay for `kind="slow"`.
        body: the response body for `kind="body"`, or the text of a `kind="status"` answer.
        times: how many matching requests to affect; None for all of them.
        after: how many matching requests to let through before the first fault.
    """

    kind: FaultKind
    route: str = "^/v1/"
    method: str | None = None
    status: int = 500
    retry_after: str | None = None
    delay_s: float = 0.0
    body: str | None = None
    times: int | None = 1
    after: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}: use one of {', '.join(FAULT_KINDS)}")
        try:
            re.compile(self.route)
        except re.error as error:
            raise ValueError(f"fault rule field 'route' is no regular expression ({error})") from None
        if not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {self.status}")
        if (self.times is not None and self.times < 1) or self.after < 0 or self.delay_s < 0:
            raise ValueError("times must be at least 1 (or None), after and delay_s at least 0")

    @classmethod
    def from_json(cls, data: Any) -> FaultRule:
        """Build a rule from its JSON form (the body of `POST /_emulator/faults`).

        Raises:
            ValueError: for unknown fields or invalid values.
        """
        if not isinstance(data, dict):
            raise ValueError("a fault rule must be a JSON object")
        if "kind" not in data:
            raise ValueError(f"a fault rule needs its `kind`: one of {', '.join(FAULT_KINDS)}")
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault rule fields: {', '.join(unknown)}")
        for name, value in data.items():
            kinds, what = _JSON_TYPES[name]
            # JSON's true and false are no numbers here, though Python's bool is an int.
            if isinstance(value, bool) or not isinstance(value, kinds):
                raise ValueError(f"fault rule field {name!r} must be {what}, got {json.dumps(value)}")
        try:
            return cls(**data)
        except TypeError as error:
            raise ValueError(f"invalid fault rule: {error}") from error

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method) and re.search(
            self.route, path
        ) is not None


# Each field's JSON types, and how to name them (`FaultRule.from_json`).
_JSON_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "kind": (str, "a string"),
    "route": (str, "a string (a regular expression)"),
    "method": ((str, type(None)), "a string or null"),
    "status": (int, "an integer"),
    "retry_after": ((str, type(None)), "a string or null"),
    "delay_s": ((int, float), "a number"),
    "body": ((str, type(None)), "a string (the body's text) or null"),
    "times": ((int, type(None)), "an integer or null"),
    "after": (int, "an integer"),
}


class FaultPlan:
    """The active fault rules; each request consumes at most one (the first that fires)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Armed] = []

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(_Armed(rule))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def pending(self) -> list[FaultRule]:
        """Return the rules that may still fire."""
        with self._lock:
            return [armed.rule for armed in self._rules if not armed.spent]

    def take(self, method: str, path: str) -> FaultRule | None:
        """Return the rule to apply to this request, if any, and count it as used."""
        with self._lock:
            for armed in self._rules:
                if not armed.spent and armed.rule.matches(method, path) and armed.fire():
                    return armed.rule
            return None


class _Armed:
    """A rule with its counters."""

    def __init__(self, rule: FaultRule) -> None:
        self.rule = rule
        self.seen = 0
        self.fired = 0

    @property
    def spent(self) -> bool:
        return self.rule.times is not None and self.fired >= self.rule.times

    def fire(self) -> bool:
        self.seen += 1
        if self.seen <= self.rule.after:
            return False
        self.fired += 1
        return True
