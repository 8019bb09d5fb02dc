"""Reads of events and enrollments, each a fixed number of queries whatever the page size."""

from __future__ import annotations

from django.db.models import QuerySet

from events.models import Enrollment, Event


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
