"""Reads of events and enrollments, each a fixed number of queries whatever the page size."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import F, QuerySet, Window
from django.db.models.functions import RowNumber

from config.prepared import prepared_cursor
from events import domain
from events.models import AdmissionRequest, Enrollment, Event, WaitlistEntry


def events() -> QuerySet[Event]:
    return Event.objects.all()


def event_enrollments(*, event_id: int) -> QuerySet[Enrollment]:
    """The event's enrollments with their participants, in enrollment order."""
    return (
        Enrollment.objects.filter(event_id=event_id)
        .select_related("participant")
        .order_by("created_at", "id")
    )


def participant_enrollments(*, participant_id: int) -> QuerySet[Enrollment]:
    """A participant's enrollments with their events, soonest event first."""
    return (
        Enrollment.objects.filter(participant_id=participant_id)
        .select_related("event")
        .order_by("event__date", "event__time", "id")
    )


def participant_events(*, participant_id: int) -> QuerySet[Event]:
    return Event.objects.filter(enrollments__participant_id=participant_id)


def seats_and_waiting(event_ids: Sequence[int]) -> dict[int, tuple[domain.Seats, int]]:
    """Each event's seats and the length of its waiting list, by id (an id with no event is left
    out): one prepared statement, since beside a rush every read of a list needs it."""
    ids = list(event_ids)
    params: list[Any]
    if connection.vendor == "postgresql":
        # One array parameter: one prepared statement whatever the page's length (a statement per
        # length, up to the largest page size, could push the enrollment's out of psycopg's cache).
        sql, params = _seats_and_waiting_sql("= ANY(%s)"), [ids]
    else:
        sql, params = _seats_and_waiting_sql(f"IN ({', '.join(['%s'] * len(ids))})"), ids
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return {
        event_id: (domain.Seats(capacity=capacity, enrolled=enrolled), waiting)
        for event_id, capacity, enrolled, waiting in rows
    }


@functools.cache
def _seats_and_waiting_sql(id_condition: str) -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(map(quote, ("id", "capacity", "enrolled_count", "waitlist_count")))
    # Only the model's own identifiers and placeholders are formatted in; the ids are parameters.
    return f"SELECT {columns} FROM {quote(Event._meta.db_table)} WHERE id {id_condition}"  # noqa: S608


def event_exists(event_id: int) -> bool:
    return Event.objects.filter(pk=event_id).exists()


def waitlist(*, event_id: int) -> QuerySet[WaitlistEntry]:
    """The event's waiting list in order, each entry with its participant and `position` (1..n)."""
    return (
        WaitlistEntry.objects.filter(event_id=event_id)
        .select_related("participant")
        .annotate(position=Window(RowNumber(), order_by=F("id").asc()))
        .order_by("id")
    )


def waitlist_place(*, event_id: int, participant_id: int) -> domain.WaitlistPlace | None:
    entry = WaitlistEntry.objects.filter(event_id=event_id, participant_id=participant_id).first()
    if entry is None:
        return None
    ahead = WaitlistEntry.objects.filter(event_id=event_id, id__lt=entry.pk).count()
    return domain.WaitlistPlace(
        event_id=event_id, participant_id=participant_id, position=ahead + 1, joined_at=entry.joined_at
    )


@dataclass(frozen=True)
class EnrollmentStatus:
    """Where a participant's enrollment in an event stands, on direct and queued events alike."""

    event_id: int
    participant_id: int
    status: str
    queued_at: dt.datetime
    decided_at: dt.datetime | None
    position: int | None = None


def enrollment_status(*, event_id: int, participant_id: int) -> EnrollmentStatus | None:
    """Enrolled, waiting (with the position), or a request still pending or closed; None when the
    participant has none of these. A direct enrollment was asked and decided at the same moment."""
    request = AdmissionRequest.objects.filter(event_id=event_id, participant_id=participant_id).first()
    enrollment = Enrollment.objects.filter(event_id=event_id, participant_id=participant_id).first()
    if enrollment is not None:
        return EnrollmentStatus(
            event_id,
            participant_id,
            domain.RequestStatus.CONFIRMED,
            queued_at=request.queued_at if request else enrollment.created_at,
            decided_at=(request.decided_at if request else None) or enrollment.created_at,
        )
    place = waitlist_place(event_id=event_id, participant_id=participant_id)
    if place is not None:
        return EnrollmentStatus(
            event_id,
            participant_id,
            domain.RequestStatus.WAITLISTED,
            queued_at=request.queued_at if request else place.joined_at,
            decided_at=(request.decided_at if request else None) or place.joined_at,
            position=place.position,
        )
    if request is not None and request.status in (domain.RequestStatus.PENDING, domain.RequestStatus.CLOSED):
        return EnrollmentStatus(
            event_id,
            participant_id,
            request.status,
            queued_at=request.queued_at,
            decided_at=request.decided_at,
        )
    return None
