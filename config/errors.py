"""Base classes of the domain errors every app raises (standard library only).

Services raise these; config.exceptions maps each kind to its HTTP status and `code`, so domain
code never speaks HTTP.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule refused an action. `code` is the stable, machine-readable name clients see."""

    code = "domain_error"
    message = "The action is not allowed."

    def __init__(self, message: str | None = None, **extra: Any):
        if message is not None:
            self.message = message
        # Members the problem body carries besides code and detail (JSON values, or datetimes,
        # written as the API writes them), e.g. the time a ticket was first checked in.
        self.extra = extra
        super().__init__(self.message)


class Conflict(DomainError):
    """The action clashes with the current state (HTTP 409)."""


class NotFound(DomainError):
    """The thing acted on does not exist (HTTP 404)."""

    code = "not_found"
    message = "Not found."


class InvalidValue(DomainError):
    """A submitted value breaks a rule; `field` names it (HTTP 400, validation_error)."""

    code = "validation_error"

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)
