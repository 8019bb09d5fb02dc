"""The rules of events and enrollment, in plain Python (standard library and config.errors only).

The policy is written here and unit-tested without a database; the database enforces the same
policy under concurrency (see events.services and the constraints in events.models).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from config.errors import Conflict, InvalidValue, NotFound

# --- Errors ---------------------------------------------------------------------------------------


class EventFull(Conflict):
    code = "event_full"
    message = "This event has no seats left."


class AlreadyEnrolled(Conflict):
    code = "already_enrolled"
    message = "This participant is already enrolled in this event."


class EventClosed(Conflict):
    code = "event_closed"
    message = "This event has already started; enrollment is closed."


class NotEnrolled(NotFound):
    message = "This participant is not enrolled in this event."


# --- Rules ----------------------------------------------------------------------------------------

MIN_CAPACITY = 1


@dataclass(frozen=True)
class Seats:
    """How full an event is."""

    capacity: int
    enrolled: int

    @property
    def left(self) -> int:
        return max(self.capacity - self.enrolled, 0)

    @property
    def is_full(self) -> bool:
        return self.enrolled >= self.capacity


def check_capacity(capacity: int, *, enrolled: int = 0) -> None:
    """An event seats at least one person, and never fewer than it has already taken in."""
    if capacity < MIN_CAPACITY:
        raise InvalidValue("capacity", f"Ensure this value is greater than or equal to {MIN_CAPACITY}.")
    if capacity < enrolled:
        raise InvalidValue(
            "capacity",
            f"Capacity cannot be lower than the {enrolled} participants already enrolled.",
        )


def is_closed(starts_at: datetime, now: datetime) -> bool:
    """Enrollment (and a participant's own cancellation) closes when the event starts."""
    return now >= starts_at


def check_can_enroll(*, starts_at: datetime, now: datetime, seats: Seats, already_enrolled: bool) -> None:
    """The order of the checks is the order of the answers: closed, then duplicate, then full."""
    if is_closed(starts_at, now):
        raise EventClosed()
    if already_enrolled:
        raise AlreadyEnrolled()
    if seats.is_full:
        raise EventFull()


def check_can_cancel(*, starts_at: datetime, now: datetime) -> None:
    if is_closed(starts_at, now):
        raise EventClosed("This event has already started; enrollment can no longer be cancelled.")
