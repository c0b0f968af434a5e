"""The one exception the emulator's store raises for a request it will not serve."""

from __future__ import annotations


class Rejected(Exception):
    """A request the Braintrust API would refuse, with the HTTP status it would answer.

    Args:
        status: the HTTP status to answer with (400, 404, 413, ...).
        message: a one-line reason for the caller; never contains the API key.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> Rejected:
    return Rejected(400, message)


def not_found(what: str, object_id: str) -> Rejected:
    return Rejected(404, f"{what} {object_id} not found")
