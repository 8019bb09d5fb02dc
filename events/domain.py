"""The rules of events and enrollment, in plain Python (standard library and config.errors only).

The policy is written here and unit-tested without a database; the database enforces the same
policy under concurrency (see events.services and the constraints in events.models).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import date, datetime

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


class EventNotFound(NotFound):
    message = "No event with this id."


class NotEnrolled(NotFound):
    message = "This participant is not enrolled in this event."


class AlreadyWaitlisted(Conflict):
    code = "already_waitlisted"
    message = "This participant is already on this event's waiting list."


class SeatsAvailable(Conflict):
    code = "seats_available"
    message = "This event still has seats: enroll instead of joining the waiting list."


class QueueStillDeciding(SeatsAvailable):
    """An event whose queued requests are not all decided: joining its waiting list directly would
    go ahead of them, so the participant enrolls and takes their place in the queue."""

    message = (
        "Earlier requests for this event are still being decided: enroll to take your place in the queue."
    )


class NotWaitlisted(NotFound):
    message = "This participant is not on this event's waiting list."


class NoAdmissionRequest(NotFound):
    message = "This participant has not asked to enroll in this event."


class ConcurrentChange(Conflict):
    code = "conflict"
    message = "The request clashed with a simultaneous change; please try again."


class UnknownCheckinCode(NotFound):
    message = "No enrollment in this event has this check-in code."


class CheckinCancelled(Conflict):
    code = "not_enrolled"
    message = "This check-in code belongs to an enrollment that was cancelled."


class AlreadyCheckedIn(Conflict):
    code = "already_checked_in"
    message = "This participant has already checked in."

    def __init__(self, checked_in_at: datetime):
        super().__init__(checked_in_at=checked_in_at)


# --- Rules ----------------------------------------------------------------------------------------

MIN_CAPACITY = 1
# Two weeks: longer than any conference; a typo of days for minutes stays an error.
MAX_DURATION_MINUTES = 14 * 24 * 60
# The dates an event may have: wide enough for any real event, narrow enough that every date
# computed from one (its end, its calendar's time-zone rules a year either side, reminders) stays
# inside what Python's dates can hold (years 1 to 9999): near either end they overflowed.
EARLIEST_EVENT_DATE = date(1900, 1, 1)
LATEST_EVENT_DATE = date(2999, 12, 31)


def new_checkin_code() -> str:
    """A check-in code: 80 random bits in base32 (16 characters, letters and digits 2-7, no look-
    alikes such as 0/O or 1/I), easy to read out at the door and unguessable."""
    return base64.b32encode(secrets.token_bytes(10)).decode("ascii")


# Generous for what people and scanners add around the 16 characters (spaces, dashes, "ABCD-EFGH-
# IJKL-MNOP" is 19), yet a bound: a body is never looked up with megabytes of text in it.
CHECKIN_CODE_MAX_LENGTH = 64
# A code as typed: ASCII letters and digits, with any spaces or dashes around and between them.
# Anything else (control characters, NUL, other scripts) is not a code at all: refused rather than
# looked up, at the API and at the admin's check-in box alike. A well-formed code nobody holds is
# unknown (services.check_in).
CHECKIN_CODE_AS_TYPED = r"^[\s-]*[A-Za-z0-9][A-Za-z0-9\s-]*$"
NOT_A_CHECKIN_CODE = "Not a check-in code: letters and digits, with spaces or dashes between them."


def normalize_checkin_code(text: str) -> str:
    """What a door scanner or a person typed, as stored: case, spaces and dashes do not matter."""
    return "".join(text.split()).replace("-", "").upper()


def display_checkin_code(code: str) -> str:
    """In groups of four, as printed in the email: ABCD-EFGH-IJKL-MNOP."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


class Admission:
    """How an event takes enrollments: at once (`direct`), or through the ordered queue (`queue`)."""

    DIRECT = "direct"
    QUEUE = "queue"
    CHOICES = (DIRECT, QUEUE)


class RequestStatus:
    """Where a participant's enrollment request stands (GET /events/{id}/enrollments/me/)."""

    PENDING = "pending"  # queued, not decided yet
    CONFIRMED = "confirmed"  # holds a seat
    WAITLISTED = "waitlisted"  # on the waiting list
    CLOSED = "closed"  # the event started before the request was decided
    CHOICES = (PENDING, CONFIRMED, WAITLISTED, CLOSED)


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


def check_can_join_waitlist(
    *,
    starts_at: datetime,
    now: datetime,
    seats: Seats,
    already_enrolled: bool,
    already_waitlisted: bool,
    requests_pending: bool = False,
) -> None:
    """Closed, then duplicate (enrolled, waitlisted), then "enroll instead" while seats are left or
    while requests queued earlier are still pending (the queue fills the list in order)."""
    if is_closed(starts_at, now):
        raise EventClosed()
    if already_enrolled:
        raise AlreadyEnrolled()
    if already_waitlisted:
        raise AlreadyWaitlisted()
    if not seats.is_full:
        raise SeatsAvailable()
    if requests_pending:
        raise QueueStillDeciding()


@dataclass(frozen=True)
class WaitlistPlace:
    """A participant's place on an event's waiting list (position 1 is next for a seat)."""

    event_id: int
    participant_id: int
    position: int
    joined_at: datetime


@dataclass(frozen=True)
class Decision:
    """The outcome of one queued request: a seat, or a place (1-based) on the waiting list."""

    participant_id: int
    status: str
    position: int | None = None


def decide_in_order(participant_ids: list[int], *, seats_left: int, waitlist_length: int) -> list[Decision]:
    """Queued requests, in queue order, take the seats left; the rest join the waiting list behind
    those already on it. A seat never goes to a later request while an earlier one waits."""
    decisions = []
    for participant_id in participant_ids:
        if seats_left > 0:
            seats_left -= 1
            decisions.append(Decision(participant_id, RequestStatus.CONFIRMED))
        else:
            waitlist_length += 1
            decisions.append(Decision(participant_id, RequestStatus.WAITLISTED, waitlist_length))
    return decisions


def seats_to_promote(*, seats: Seats, waitlist_length: int, closed: bool) -> int:
    """How many from the head of the waiting list take the seats that are free (none once started)."""
    if closed:
        return 0
    return min(seats.left, waitlist_length)


def check_can_cancel(*, starts_at: datetime, now: datetime) -> None:
    if is_closed(starts_at, now):
        raise EventClosed("This event has already started; enrollment can no longer be cancelled.")
