"""Use cases that change events and enrollments. Each owns its transaction and raises domain errors.

Capacity is enforced by the database: a conditional UPDATE takes a seat only while seats are left
(under PostgreSQL's Read Committed the condition is re-checked after waiting on a concurrent writer;
SQLite runs writes as IMMEDIATE transactions, one at a time). The insert of the enrollment follows
in the same transaction, and the table constraints are the backstop.

Enrolling is the hottest write, so it is shaped by round trips: the seat is taken first, and the
same statement returns what the rest needs (the event for the email, the seats for the watchers).
Refusals are rare and take the slow path that finds out which answer applies.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NoReturn

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from events import cache as event_cache
from events import domain, metrics, realtime
from events.models import Enrollment, Event
from notifications import services as notifications
from notifications.domain import Kind

EVENT_FIELDS = ("title", "description", "date", "time", "location", "capacity")


class EventNotFound(domain.NotFound):
    message = "No event with this id."


def _seats_changed(event_id: int, seats: domain.Seats | None = None) -> None:
    """Everything that must follow a committed change of an event or its seats (`seats`: the
    committed seats when the caller knows them; they are read otherwise)."""
    event_cache.invalidate()
    realtime.broadcast_seats(event_id, seats)


def create_event(
    *,
    title: str,
    date: dt.date,
    time: dt.time,
    location: str,
    capacity: int,
    description: str = "",
) -> Event:
    domain.check_capacity(capacity)
    with transaction.atomic():
        event = Event.objects.create(
            title=title, description=description, date=date, time=time, location=location, capacity=capacity
        )
        transaction.on_commit(lambda: _seats_changed(event.pk))
    return event


def update_event(*, event_id: int, **changes: Any) -> Event:
    unknown = set(changes) - set(EVENT_FIELDS)
    if unknown:
        raise TypeError(f"update_event() got unknown fields: {sorted(unknown)}")
    with transaction.atomic():
        # The row lock makes the capacity check and concurrent enrollments take turns.
        event = Event.objects.select_for_update().filter(pk=event_id).first()
        if event is None:
            raise EventNotFound()
        if "capacity" in changes:
            domain.check_capacity(changes["capacity"], enrolled=event.enrolled_count)
        for field, value in changes.items():
            setattr(event, field, value)
        event.save()
        transaction.on_commit(lambda: _seats_changed(event_id))
    return event


def delete_event(*, event_id: int, now: dt.datetime | None = None) -> None:
    """Deletes the event; if it had not started yet, its participants are told it is cancelled."""
    now = now or timezone.now()
    with transaction.atomic():
        event = Event.objects.select_for_update().filter(pk=event_id).first()
        if event is None:
            raise EventNotFound()
        if not domain.is_closed(event.starts_at, now):
            participant_ids = Enrollment.objects.filter(event_id=event_id).values_list(
                "participant_id", flat=True
            )
            for participant_id in participant_ids.iterator():
                notifications.notify_participant(
                    kind=Kind.EVENT_CANCELLED, participant_id=participant_id, event=event
                )
        event.delete()
        transaction.on_commit(lambda: _seats_changed(event_id))


def enroll(
    *, event_id: int, participant_id: int, now: dt.datetime | None = None, account: Any = None
) -> Enrollment:
    """Gives the participant a seat, or raises EventNotFound, EventClosed, AlreadyEnrolled or
    EventFull. `account`: the participant's account when the caller has loaded it already."""
    now = now or timezone.now()
    with transaction.atomic():
        event = _take_seat(event_id)
        if event is None:
            _refuse_enrollment(event_id=event_id, participant_id=participant_id, now=now)
        if domain.is_closed(event.starts_at, now):
            _rejected(domain.EventClosed())  # raising gives the seat back (rollback)
        try:
            enrollment = Enrollment.objects.create(
                event_id=event_id, participant_id=participant_id, created_at=now
            )
        except IntegrityError as exc:
            # The unique (event, participant) constraint: raising rolls the seat back too.
            _rejected(domain.AlreadyEnrolled(), cause=exc)
        notifications.notify_participant(
            kind=Kind.ENROLLMENT_CONFIRMED, participant_id=participant_id, event=event, account=account
        )
        transaction.on_commit(lambda: _seats_changed(event_id, event.seats))
        transaction.on_commit(metrics.ENROLLMENTS.inc)
    return enrollment


_EVENT_COLUMNS = ("title", "date", "time", "location", "capacity", "enrolled_count")


def _take_seat(event_id: int) -> Event | None:
    """Takes a seat if one is left, returning the event as it is now (None: no such event, or full).

    One statement (UPDATE ... RETURNING, on PostgreSQL and SQLite alike) instead of a read, an
    update and, after commit, another read for the watchers. The row stays locked until commit.
    """
    quote = connection.ops.quote_name
    # Only the model's own identifiers are formatted in; the id is a parameter.
    sql = (
        f"UPDATE {quote(Event._meta.db_table)} SET enrolled_count = enrolled_count + 1"  # noqa: S608
        f" WHERE id = %s AND enrolled_count < capacity RETURNING {', '.join(map(quote, _EVENT_COLUMNS))}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [event_id])
        row = cursor.fetchone()
    if row is None:
        return None
    # SQLite returns dates and times as text: the fields read them as the ORM would.
    fields: list[Any] = [Event._meta.get_field(name) for name in _EVENT_COLUMNS]
    return Event(id=event_id, **{f.name: f.to_python(value) for f, value in zip(fields, row, strict=True)})


def _refuse_enrollment(*, event_id: int, participant_id: int, now: dt.datetime) -> NoReturn:
    """No seat was taken: the domain tells which answer applies (closed, duplicate, full)."""
    event = Event.objects.filter(pk=event_id).first()
    if event is None:
        raise EventNotFound()
    already = Enrollment.objects.filter(event_id=event_id, participant_id=participant_id).exists()
    full = domain.Seats(capacity=event.capacity, enrolled=event.capacity)
    try:
        domain.check_can_enroll(starts_at=event.starts_at, now=now, seats=full, already_enrolled=already)
    except domain.Conflict as refusal:
        _rejected(refusal)
    raise AssertionError("a full event must be refused")  # check_can_enroll raised for `full`


def _rejected(refusal: domain.Conflict, cause: Exception | None = None) -> NoReturn:
    metrics.REJECTED.labels(refusal.code).inc()
    raise refusal from cause


def cancel_enrollment(*, event_id: int, participant_id: int, now: dt.datetime | None = None) -> None:
    """A participant gives their seat back; no longer possible once the event has started."""
    now = now or timezone.now()
    with transaction.atomic():
        event = Event.objects.filter(pk=event_id).first()
        if event is None:
            raise EventNotFound()
        domain.check_can_cancel(starts_at=event.starts_at, now=now)
        _release_seat(event=event, participant_id=participant_id)


def remove_participant(*, event_id: int, participant_id: int) -> None:
    """An admin takes a participant off an event, at any time."""
    with transaction.atomic():
        event = Event.objects.filter(pk=event_id).first()
        if event is None:
            raise EventNotFound()
        _release_seat(event=event, participant_id=participant_id)


def withdraw_from_all_events(*, participant_id: int) -> list[int]:
    """Frees every seat the participant holds (before the account is deleted). Returns the event ids."""
    with transaction.atomic():
        event_ids = list(
            Enrollment.objects.select_for_update()
            .filter(participant_id=participant_id)
            .values_list("event_id", flat=True)
        )
        if event_ids:
            Enrollment.objects.filter(participant_id=participant_id).delete()
            Event.objects.filter(pk__in=event_ids).update(enrolled_count=F("enrolled_count") - 1)

            def seats_changed() -> None:
                for event_id in event_ids:
                    _seats_changed(event_id)

            transaction.on_commit(seats_changed)
    return event_ids


def _release_seat(*, event: Event, participant_id: int) -> None:
    deleted, _ = Enrollment.objects.filter(event_id=event.pk, participant_id=participant_id).delete()
    if not deleted:
        raise domain.NotEnrolled()
    Event.objects.filter(pk=event.pk).update(enrolled_count=F("enrolled_count") - 1)
    notifications.notify_participant(
        kind=Kind.ENROLLMENT_CANCELLED, participant_id=participant_id, event=event
    )
    transaction.on_commit(lambda: _seats_changed(event.pk))
    transaction.on_commit(metrics.CANCELLATIONS.inc)
