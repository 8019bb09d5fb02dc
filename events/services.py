"""Use cases that change events and enrollments. Each owns its transaction and raises domain errors.

Capacity is enforced by the database: a conditional UPDATE takes a seat only while seats are left
(under PostgreSQL's Read Committed the condition is re-checked after waiting on a concurrent writer;
SQLite runs writes as IMMEDIATE transactions, one at a time). The insert of the enrollment follows
in the same transaction, and the table constraints are the backstop.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NoReturn

from django.db import IntegrityError, transaction
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


def _seats_changed(event_id: int) -> None:
    """Everything that must follow a committed change of an event or its seats."""
    event_cache.invalidate()
    realtime.broadcast_seats(event_id)


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


def enroll(*, event_id: int, participant_id: int, now: dt.datetime | None = None) -> Enrollment:
    """Gives the participant a seat, or raises EventClosed, AlreadyEnrolled or EventFull."""
    now = now or timezone.now()
    with transaction.atomic():
        event = Event.objects.filter(pk=event_id).first()
        if event is None:
            raise EventNotFound()
        if domain.is_closed(event.starts_at, now):
            _rejected(domain.EventClosed())
        taken = Event.objects.filter(pk=event_id, enrolled_count__lt=F("capacity")).update(
            enrolled_count=F("enrolled_count") + 1
        )
        if not taken:
            # No seat. The database found none; the domain tells a duplicate from a full event.
            already = Enrollment.objects.filter(event_id=event_id, participant_id=participant_id).exists()
            full = domain.Seats(capacity=event.capacity, enrolled=event.capacity)
            try:
                domain.check_can_enroll(
                    starts_at=event.starts_at, now=now, seats=full, already_enrolled=already
                )
            except domain.Conflict as refusal:
                _rejected(refusal)
        try:
            enrollment = Enrollment.objects.create(
                event_id=event_id, participant_id=participant_id, created_at=now
            )
        except IntegrityError as exc:
            # The unique (event, participant) constraint: raising rolls the seat back too.
            _rejected(domain.AlreadyEnrolled(), cause=exc)
        notifications.notify_participant(
            kind=Kind.ENROLLMENT_CONFIRMED, participant_id=participant_id, event=event
        )
        transaction.on_commit(lambda: _seats_changed(event_id))
        transaction.on_commit(metrics.ENROLLMENTS.inc)
    return enrollment


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
