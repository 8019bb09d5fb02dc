"""Reminders before an event: each enrolled participant is reminded once, REMINDER_HOURS before the
event starts (notification kind `event_reminder`, email and WebSocket).

Celery beat runs `events.send_reminders` every minute (config.settings.CELERY_BEAT_SCHEDULE); each
run reminds whoever has come due. Exactly once, however many beats, workers and retries run: the
enrollment's `reminded_at` is set by one conditional UPDATE (`… WHERE reminded_at IS NULL
RETURNING …`) in the same transaction as the outbox message that notifies them, so of two
concurrent runs only one gets each row, and a run that dies before its commit leaves the rows due
for the next. The event's row is locked meanwhile, so an edit that moves it waits: moving the event
later clears `reminded_at` (events.services.update_event) and the reminder comes again.

The rule for late enrollments: whoever enrolls less than REMINDER_MIN_LEAD (one hour) before the
start gets no reminder (the confirmation has just told them); whoever enrolls earlier, also inside
the window, is reminded at the next run.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from events import metrics
from events.models import Enrollment, Event
from notifications import services as notifications
from notifications.domain import Kind

SEND_TASK = "events.send_reminders"
REMINDER_MIN_LEAD = dt.timedelta(hours=1)


def send_due_reminders(*, now: dt.datetime | None = None) -> int:
    """Reminds everyone whose reminder is due now; returns how many were reminded."""
    now = now or timezone.now()
    window = dt.timedelta(hours=settings.REMINDER_HOURS)
    zone = timezone.get_default_timezone()
    # Dates are wall-clock days in the platform's zone: select the days the window touches, then
    # compare exact start times in Python (a handful of events a day).
    candidates = Event.objects.filter(
        date__gte=timezone.localtime(now, zone).date(),
        date__lte=timezone.localtime(now + window, zone).date(),
    ).values_list("pk", flat=True)
    return sum(_remind(event_id, now=now, window=window) for event_id in candidates)


def _remind(event_id: int, *, now: dt.datetime, window: dt.timedelta) -> int:
    with transaction.atomic():
        event = Event.objects.select_for_update(no_key=True).filter(pk=event_id).first()
        if event is None or not (now < event.starts_at <= now + window):
            return 0  # deleted, or moved out of the window since it was selected
        due = _mark_reminded(event_id, now=now, enrolled_by=event.starts_at - REMINDER_MIN_LEAD)
        if due:
            notifications.notify_participants(
                kind=Kind.EVENT_REMINDER,
                event=event,
                participants=[(participant_id, None) for participant_id, _ in due],
                checkin_codes=dict(due),
            )
            transaction.on_commit(lambda: metrics.REMINDERS.inc(len(due)))
    return len(due)


def _mark_reminded(event_id: int, *, now: dt.datetime, enrolled_by: dt.datetime) -> list[tuple[int, str]]:
    """Sets `reminded_at` on the event's enrollments that are due, returning (participant id,
    check-in code) of each. One statement, so that it is the claim: a concurrent run's update
    waits for this one's commit and then finds `reminded_at` set."""
    quote = connection.ops.quote_name
    table = quote(Enrollment._meta.db_table)
    # Only the model's own identifiers are formatted in; the values are parameters.
    sql = (
        f"UPDATE {table} SET {quote('reminded_at')} = %s"  # noqa: S608
        f" WHERE {quote('event_id')} = %s AND {quote('reminded_at')} IS NULL AND {quote('created_at')} <= %s"
        f" RETURNING {quote('participant_id')}, {quote('checkin_code')}"
    )
    ops = connection.ops
    with connection.cursor() as cursor:
        cursor.execute(
            sql, [ops.adapt_datetimefield_value(now), event_id, ops.adapt_datetimefield_value(enrolled_by)]
        )
        return [(participant_id, code) for participant_id, code in cursor.fetchall()]
