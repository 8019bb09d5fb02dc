"""Use cases that change events and enrollments. Each owns its transaction and raises domain errors.

Capacity is enforced by the database: a conditional UPDATE takes a seat only while seats are left
(under PostgreSQL's Read Committed the condition is re-checked after waiting on a concurrent writer;
SQLite runs writes as IMMEDIATE transactions, one at a time). The insert of the enrollment follows
in the same transaction (on PostgreSQL, in the same statement), and the table constraints are the
backstop.

Enrolling is the hottest write, so it is shaped by round trips and by how long it holds the event's
row: the seat is taken first, and the same statement returns what the rest needs (the event for the
email, the seats for the watchers). On PostgreSQL the seat, the enrollment and the confirmation's
outbox message are ONE statement that commits by itself, so the event's row is locked only while the
database runs it. Refusals are rare and take the slow path that finds out which answer applies.

The waiting list keeps one invariant: before an event starts, nobody waits while a seat is free.
Every path that frees a seat (a cancellation, an admin's removal, a capacity increase, a deleted
participant) gives it to the head of the list in the same transaction, under the event's row lock,
so no direct enroller can jump the line and two cancellations never promote the same person.
Queued admission (`admission: "queue"` events) lives in events.admission.

Event rows are locked FOR NO KEY UPDATE (as an UPDATE of their counters locks them) wherever the
event itself stays: that excludes the other writers of its seats but not the foreign-key checks of
rows inserted for it meanwhile (enrollments, waiting-list places, queued requests). Only deleting
an event locks it FOR UPDATE.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import operator
from collections.abc import Sequence
from typing import Any, NoReturn

from django.core.exceptions import PermissionDenied
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, models, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from config.outbox import services as outbox
from config.prepared import prepared_row
from events import cache as event_cache
from events import domain, metrics, realtime, wakeups
from events.models import AdmissionRequest, Enrollment, Event, RevokedCheckinCode, WaitlistEntry
from notifications import services as notifications
from notifications.domain import Kind
from participants import selectors as participant_selectors
from participants.selectors import active_participant_params, active_participant_sql

log = logging.getLogger(__name__)

EVENT_FIELDS = (
    "title",
    "description",
    "date",
    "time",
    "duration_minutes",
    "location",
    "capacity",
    "admission",
)
# A change of these moves the event in people's calendars: everyone enrolled gets an update.
CALENDAR_FIELDS = ("date", "time", "duration_minutes", "location")


# Queued events this process has seen, with their start (events.admission reads and fills it; every
# event write of this process empties it, so an edited, deleted or reused id is never answered from
# it here).
queued_events: dict[int, tuple[float, dt.datetime]] = {}

# (Their home is events.domain, with the other errors; named here for the callers of the services.)
EventNotFound = domain.EventNotFound
ConcurrentChange = domain.ConcurrentChange


def _event_changed(event_id: int) -> None:
    """Everything that must follow a committed write of the event itself (created, edited, deleted)."""
    queued_events.clear()
    event_cache.invalidate()
    realtime.broadcast_seats(event_id)


def _seats_changed(event_id: int, seats: domain.Seats | None = None) -> None:
    """Everything that must follow a committed change of the event's seats and nothing else of it
    (its `enrolled_count` and `waitlist_count`; `seats`: the committed seats when the caller knows
    them; they are read otherwise)."""
    event_cache.seats_changed()
    realtime.broadcast_seats(event_id, seats)


def create_event(
    *,
    title: str,
    date: dt.date,
    time: dt.time,
    location: str,
    capacity: int,
    description: str = "",
    admission: str = domain.Admission.DIRECT,
    duration_minutes: int = 60,
) -> Event:
    domain.check_capacity(capacity)
    _check_admission(admission)
    with transaction.atomic():
        event = Event.objects.create(
            title=title,
            description=description,
            date=date,
            time=time,
            duration_minutes=duration_minutes,
            location=location,
            capacity=capacity,
            admission=admission,
        )
        transaction.on_commit(lambda: _event_changed(event.pk))
    return event


def _check_admission(admission: str) -> None:
    if admission not in domain.Admission.CHOICES:
        raise domain.InvalidValue("admission", f"Must be one of: {', '.join(domain.Admission.CHOICES)}.")


def update_event(*, event_id: int, **changes: Any) -> Event:
    """Changes the event. Moving it (date, time, duration or location) raises its calendar
    SEQUENCE and sends everyone enrolled an update with the new calendar entry; moving its start
    later clears their reminders, so that the reminder comes again before the new start."""
    unknown = set(changes) - set(EVENT_FIELDS)
    if unknown:
        raise TypeError(f"update_event() got unknown fields: {sorted(unknown)}")
    with transaction.atomic():
        # The row lock makes the capacity check and concurrent enrollments take turns.
        event = Event.objects.select_for_update(no_key=True).filter(pk=event_id).first()
        if event is None:
            raise EventNotFound()
        if "capacity" in changes:
            domain.check_capacity(changes["capacity"], enrolled=event.enrolled_count)
        if "admission" in changes:
            _check_admission(changes["admission"])
        old_start = event.starts_at
        moved = any(field in changes and changes[field] != getattr(event, field) for field in CALENDAR_FIELDS)
        for field, value in changes.items():
            setattr(event, field, value)
        if moved:
            event.calendar_sequence += 1
        event.save()
        if moved:
            if event.starts_at > old_start:
                Enrollment.objects.filter(event_id=event_id, reminded_at__isnull=False).update(
                    reminded_at=None
                )
            enrolled = list(
                Enrollment.objects.filter(event_id=event_id).values_list("participant_id", "checkin_code")
            )
            notifications.notify_participants(
                kind=Kind.EVENT_UPDATED,
                event=event,
                participants=[(participant_id, None) for participant_id, _ in enrolled],
                checkin_codes=dict(enrolled),
            )
        now = timezone.now()
        if moved and not domain.is_closed(event.starts_at, now):
            _reopen_closed_requests(event_id)
        promoted = promote_from_waitlist(event=event, now=now)
        event.enrolled_count += promoted
        event.waitlist_count -= promoted
        transaction.on_commit(lambda: _event_changed(event_id))
    return event


def _reopen_closed_requests(event_id: int) -> None:
    """The event moved to a start still ahead: the requests closed because it had started (the
    admission consumer's `closed`) are pending again, in their old place in the queue, and the
    consumer is woken to decide them."""
    reopened = AdmissionRequest.objects.filter(event_id=event_id, status=domain.RequestStatus.CLOSED).update(
        status=domain.RequestStatus.PENDING, decided_at=None
    )
    if reopened:
        transaction.on_commit(lambda: wakeups.wake(event_id))


def delete_event(*, event_id: int, now: dt.datetime | None = None) -> None:
    """Deletes the event; if it had not started yet, its participants and those on its waiting list
    are told it is cancelled (one outbox message for every 200 of them)."""
    now = now or timezone.now()
    with transaction.atomic():
        event = Event.objects.select_for_update().filter(pk=event_id).first()
        if event is None:
            raise EventNotFound()
        if not domain.is_closed(event.starts_at, now):
            enrolled = Enrollment.objects.filter(event_id=event_id).values_list("participant_id", flat=True)
            waiting = WaitlistEntry.objects.filter(event_id=event_id).values_list("participant_id", flat=True)
            told = [(participant_id, None) for participant_id in [*enrolled, *waiting]]
            if told:
                notifications.notify_participants(kind=Kind.EVENT_CANCELLED, event=event, participants=told)
        event.delete()
        transaction.on_commit(lambda: _event_changed(event_id))


class EventQueued(Exception):
    """Not a refusal: the event takes enrollments through the queue (events.admission), and starts
    at `starts_at`."""

    def __init__(self, event_id: int, starts_at: dt.datetime):
        super().__init__(event_id)
        self.starts_at = starts_at


def enroll(
    *,
    event_id: int,
    participant_id: int,
    now: dt.datetime | None = None,
    direct_only: bool = False,
    check_account: bool = False,
) -> Enrollment:
    """Gives the participant a seat, or raises EventNotFound, EventClosed, AlreadyEnrolled or
    EventFull. `direct_only`: raise EventQueued for a queued event instead (an admin's hand enrolls anyway).
    `check_account`: the caller has not loaded the account (it trusts a signed token for the id):
    the seat's own statement checks that the account is an active participant's, and
    PermissionDenied is raised, before any other answer, when it is not."""
    now = now or timezone.now()
    # The row inserted with the seat; its check-in code comes from the model's default.
    enrollment = Enrollment(event_id=event_id, participant_id=participant_id, created_at=now)
    checked_participant = participant_id if check_account else None
    try:
        opens_after = _wall_clock_if_steady(now) if connection.vendor == "postgresql" else None
        seats: domain.Seats | None
        if opens_after is not None:
            seats = _enroll_in_one_statement(
                enrollment,
                opens_after=opens_after,
                direct_only=direct_only,
                participant_id=checked_participant,
            )
        else:
            event = _enroll_in_transaction(
                enrollment, now=now, direct_only=direct_only, participant_id=checked_participant
            )
            seats = event.seats if event is not None else None
        if seats is not None:
            # Outside a transaction (the one statement's case) these run at once.
            transaction.on_commit(lambda: _seats_changed(event_id, seats))
            transaction.on_commit(metrics.ENROLLMENTS.inc)
            return enrollment
    except IntegrityError:
        pass  # the unique (event, participant) constraint: the seat was given back with it
    # No seat was taken, or a duplicate's was given back: the slow path tells which answer applies
    # (a closed event's answer comes before the duplicate's).
    _refuse_enrollment(
        event_id=event_id,
        participant_id=participant_id,
        now=now,
        direct_only=direct_only,
        check_account=check_account,
    )


def _enroll_in_transaction(
    enrollment: Enrollment, *, now: dt.datetime, direct_only: bool, participant_id: int | None
) -> Event | None:
    """The seat, the enrollment and its confirmation's outbox message in one transaction (every
    database; the way on PostgreSQL when _enroll_in_one_statement cannot tell a closed event)."""
    with transaction.atomic():
        statement = _seat_statement(
            enrollment.event_id, direct_only=direct_only, participant_id=participant_id
        )
        row = _enrollment_insert(enrollment, statement)
        if row is None:
            return None
        event = _event_as_returned(enrollment.event_id, row)
        if domain.is_closed(event.starts_at, now):
            _rejected(domain.EventClosed())  # raising gives the seat back (rollback)
        notifications.notify_participant(
            kind=Kind.ENROLLMENT_CONFIRMED,
            participant_id=enrollment.participant_id,
            event=event,
            checkin_code=enrollment.checkin_code,
        )
        return event


def _enroll_in_one_statement(
    enrollment: Enrollment, *, opens_after: dt.datetime, direct_only: bool, participant_id: int | None
) -> domain.Seats | None:
    """The seat, the enrollment and its confirmation's outbox message as ONE statement (PostgreSQL),
    which commits by itself outside a transaction: the event's row is locked only while the database
    runs it and flushes its commit, not for the round trips of a transaction (in a rush every
    enrollment of the event waits for that lock in turn: this is what bounds their rate).
    `opens_after`: the wall-clock time (naive, in the platform's zone) the event must start after:
    a closed event takes no seat. The message is published once the statement has committed.
    Returns the event's seats after the enrollment, or None when no seat was taken."""
    seat = _seat_statement(
        enrollment.event_id, direct_only=direct_only, participant_id=participant_id, opens_after=opens_after
    )
    message, message_params = notifications.notify_participant_statement(
        kind=Kind.ENROLLMENT_CONFIRMED,
        participant_id=enrollment.participant_id,
        event_id=enrollment.event_id,
        event_relation="seat",
        checkin_code=enrollment.checkin_code,
    )
    with transaction.atomic() if transaction.get_connection().in_atomic_block else contextlib.nullcontext():
        # (Within a caller's transaction, a savepoint: a duplicate's error must not break it.)
        row = _enrollment_insert(enrollment, seat, message=(message, message_params))
    if row is None:
        return None
    row, message_id = row[:-1], row[-1]
    transaction.on_commit(lambda: outbox.publish_after_commit(message_id))
    # Only the seats are needed here (the message took the rest in SQL): no Event to build.
    return domain.Seats(capacity=row[_CAPACITY_AT], enrolled=row[_ENROLLED_AT])


_EVENT_COLUMNS = (
    "title",
    "date",
    "time",
    "duration_minutes",
    "location",
    "capacity",
    "enrolled_count",
    "calendar_sequence",
)
_CAPACITY_AT, _ENROLLED_AT = _EVENT_COLUMNS.index("capacity"), _EVENT_COLUMNS.index("enrolled_count")


def _seat_statement(
    event_id: int,
    *,
    direct_only: bool = False,
    participant_id: int | None = None,
    opens_after: dt.datetime | None = None,
) -> tuple[str, list[Any]]:
    """The UPDATE ... RETURNING that takes a seat if one is left (on PostgreSQL and SQLite alike),
    returning the event as it is now (_EVENT_COLUMNS), with its parameters: a read, an update and,
    after commit, another read for the watchers in one statement. `direct_only`: only on a direct
    event. `participant_id`: only if that account is an active participant's (checked in the same
    statement, so that callers trusting a token need no query to load the account). `opens_after`:
    only if the event starts after this wall-clock time (naive, in the platform's zone)."""
    params: list[Any] = [event_id]
    if direct_only:
        params.append(domain.Admission.DIRECT)
    if participant_id is not None:
        params.extend(active_participant_params(participant_id))
    if opens_after is not None:
        params.append(opens_after)
    sql = _seat_sql(connection.vendor, direct_only, participant_id is not None, opens_after is not None)
    return sql, params


@functools.cache
def _seat_sql(vendor: str, direct_only: bool, check_account: bool, check_opening: bool) -> str:
    """_seat_statement's SQL, made once per shape (and database): a rush's every request needs it."""
    quote = connection.ops.quote_name
    conditions: list[str] = ["id = %s", "enrolled_count < capacity"]
    if direct_only:
        conditions.append("admission = %s")
    if check_account:
        conditions.append(active_participant_sql())
    if check_opening:
        conditions.append("date + time > %s")
    # Only the models' own identifiers are formatted in; the values are parameters.
    return (
        f"UPDATE {quote(Event._meta.db_table)} SET enrolled_count = enrolled_count + 1"  # noqa: S608
        f" WHERE {' AND '.join(conditions)}"
        f" RETURNING {', '.join(map(quote, _EVENT_COLUMNS))}"
    )


def _enrollment_insert(
    enrollment: Enrollment, seat: tuple[str, list[Any]], *, message: tuple[str, list[Any]] | None = None
) -> tuple[Any, ...] | None:
    """Runs the seat's statement and inserts `enrollment` if it took one; returns the event's
    columns as the seat's statement returned them (None: no seat taken, nothing inserted).
    IntegrityError: the participant holds a seat already (the seat goes back with the rollback).

    On PostgreSQL the insert is in the seat's statement (a data-modifying CTE): the event's row is
    locked from that statement until the commit, and every round trip in between holds up the
    event's other enrollments. `message`: an outbox INSERT ... RETURNING id and its parameters
    (config.outbox.services.insert_statement), written by the same statement; its id ends the row
    returned (PostgreSQL only)."""
    seat_sql, params = seat
    db = connections[DEFAULT_DB_ALIAS]  # (the proxy `connection` would look it up at each use)
    in_one = db.vendor == "postgresql"
    if in_one:
        # Every column the ORM would insert, with the values it would send (defaults applied).
        fields = _enrollment_fields()
        params = [*params, *(f.get_db_prep_save(f.pre_save(enrollment, True), db) for f in fields)]
        if message is not None:
            params.extend(message[1])
        sql = _seat_and_insert_sql(seat_sql, message[0] if message is not None else None)
    elif message is not None:
        raise NotImplementedError("one statement needs PostgreSQL")
    else:
        sql = seat_sql
    # Prepared on PostgreSQL, which planned the one statement anew for every enrollment.
    row = prepared_row(sql, params)
    if row is None:
        return None
    if in_one:
        enrollment.id = row[len(_EVENT_COLUMNS)]
        enrollment._state.adding, enrollment._state.db = False, db.alias
        return (*row[: len(_EVENT_COLUMNS)], *row[len(_EVENT_COLUMNS) + 1 :])
    enrollment.save(force_insert=True)
    return tuple(row)


@functools.cache
def _enrollment_fields() -> list[Any]:
    """The columns an enrollment's INSERT writes: all but the id and any the database fills in."""
    return [
        f
        for f in Enrollment._meta.local_concrete_fields
        if not f.primary_key and f.db_default is models.NOT_PROVIDED
    ]


@functools.cache
def _seat_and_insert_sql(seat_sql: str, message_sql: str | None) -> str:
    """The seat's statement with the enrollment's INSERT (and the outbox message's, when given) as
    one data-modifying CTE (PostgreSQL), made once per shape."""
    quote = connection.ops.quote_name
    fields = _enrollment_fields()
    casts = ", ".join(f"CAST(%s AS {f.db_type(connection)})" for f in fields)
    names = ["seat", "enrolled"]
    ctes = [
        f"seat AS ({seat_sql})",
        f"enrolled AS (INSERT INTO {quote(Enrollment._meta.db_table)}"  # noqa: S608
        f" ({', '.join(quote(f.column) for f in fields)}) SELECT {casts} FROM seat RETURNING id)",
    ]
    if message_sql is not None:
        names.append("message")
        ctes.append(f"message AS ({message_sql})")
    returned = [f"seat.{quote(column)}" for column in _EVENT_COLUMNS]
    returned.extend(f"{name}.id" for name in names[1:])
    return f"WITH {', '.join(ctes)} SELECT {', '.join(returned)} FROM {', '.join(names)}"  # noqa: S608


def _event_as_returned(event_id: int, row: Sequence[Any]) -> Event:
    """The event from the seat statement's _EVENT_COLUMNS (SQLite returns dates and times as text:
    the fields read them as the ORM would)."""
    fields: list[Any] = [Event._meta.get_field(name) for name in _EVENT_COLUMNS]
    return Event(id=event_id, **{f.name: f.to_python(value) for f, value in zip(fields, row, strict=True)})


# How far from now the platform's zone must keep one UTC offset for a wall-clock comparison to tell
# a closed event exactly (no zone moves its clocks by more).
_STEADY_OFFSET_WINDOW = dt.timedelta(hours=26)


def _wall_clock_if_steady(now: dt.datetime) -> dt.datetime | None:
    """`now` as the platform zone's wall-clock time (naive), when that zone keeps one UTC offset
    around now: an event (a wall-clock date and time in that zone) has then started exactly when its
    date and time are not after this. None near a clock change, where the two orders can differ
    (an event in the skipped or repeated hour): the caller compares the real start instead."""
    zone = timezone.get_default_timezone()
    offset = now.astimezone(zone).utcoffset()
    for moment in (now - _STEADY_OFFSET_WINDOW, now + _STEADY_OFFSET_WINDOW):
        if moment.astimezone(zone).utcoffset() != offset:
            return None
    return timezone.localtime(now, zone).replace(tzinfo=None)


def _refuse_enrollment(
    *, event_id: int, participant_id: int, now: dt.datetime, direct_only: bool, check_account: bool = False
) -> NoReturn:
    """No seat was taken: the domain tells which answer applies (closed, duplicate, full); first,
    with `check_account`, whether the account may enroll itself at all (PermissionDenied).

    Once a popular event is full, the rest of its rush ends here: what the answer needs is read with
    one prepared statement (three ORM queries made a refusal cost twice an enrollment)."""
    params = [*active_participant_params(participant_id), event_id, participant_id, event_id]
    admission, date, time, active_participant, already = prepared_row(_refusal_sql(connection.vendor), params)
    if check_account and not active_participant:
        raise PermissionDenied("Not an active participant's account.")
    if admission is None:
        raise EventNotFound()
    # (Dates and times are converted as the model's fields would: SQLite may hand back text.)
    starts_at = Event(date=_EVENT_DATE.to_python(date), time=_EVENT_TIME.to_python(time)).starts_at
    if direct_only and admission == domain.Admission.QUEUE:
        raise EventQueued(event_id, starts_at)
    full = domain.Seats(capacity=1, enrolled=1)
    try:
        domain.check_can_enroll(starts_at=starts_at, now=now, seats=full, already_enrolled=bool(already))
    except domain.Conflict as refusal:
        _rejected(refusal)
    raise AssertionError("a full event must be refused")  # check_can_enroll raised for `full`


_EVENT_DATE, _EVENT_TIME = Event._meta.get_field("date"), Event._meta.get_field("time")


@functools.cache
def _refusal_sql(vendor: str) -> str:
    """_refuse_enrollment's one row (made once per database): the event's mode and start (NULL: no
    such event), whether the account is an active participant's, and whether it holds a seat."""
    quote = connection.ops.quote_name
    enrollments = quote(Enrollment._meta.db_table)
    # Only the models' own identifiers are formatted in; the values are parameters.
    return (
        f"SELECT e.admission, e.date, e.time, {active_participant_sql()},"  # noqa: S608
        f" EXISTS (SELECT 1 FROM {enrollments} WHERE event_id = %s AND participant_id = %s)"
        f" FROM (SELECT 1 AS one) AS one LEFT JOIN {quote(Event._meta.db_table)} AS e ON e.id = %s"
    )


def _rejected(refusal: domain.Conflict, cause: Exception | None = None) -> NoReturn:
    metrics.REJECTED.labels(refusal.code).inc()
    raise refusal from cause


def cancel_enrollment(*, event_id: int, participant_id: int, now: dt.datetime | None = None) -> None:
    """A participant gives their seat back, or withdraws their request still pending on a queued
    event; neither is possible once the event has started."""
    with transaction.atomic():
        # The event's row lock first: the admission consumer decides requests under it, so a
        # request is here either still pending or already decided (a seat, or a place).
        event = Event.objects.select_for_update(no_key=True).filter(pk=event_id).first()
        if event is None:
            raise EventNotFound()
        now = now or timezone.now()  # once the lock is held: a wait for it may cross the start
        domain.check_can_cancel(starts_at=event.starts_at, now=now)
        try:
            _release_seat(event=event, participant_id=participant_id, now=now)
        except domain.NotEnrolled:
            pending = AdmissionRequest.objects.filter(
                event_id=event_id, participant_id=participant_id, status=domain.RequestStatus.PENDING
            )
            withdrawn, _ = pending.delete()
            if not withdrawn:
                raise


def remove_participant(*, event_id: int, participant_id: int) -> None:
    """An admin takes a participant off an event, at any time."""
    with transaction.atomic():
        # The row lock first, as cancel_enrollment takes it: the cancellation's e-mail carries the
        # event as it stands (a move committed meanwhile raised its calendar SEQUENCE, and a
        # cancellation with the old one is ignored by calendar apps).
        event = Event.objects.select_for_update(no_key=True).filter(pk=event_id).first()
        if event is None:
            raise EventNotFound()
        _release_seat(event=event, participant_id=participant_id)


def withdraw_from_all_events(
    *, participant_id: int, now: dt.datetime | None = None, only_if_retired: bool = False
) -> list[int] | None:
    """Frees every seat the participant holds, takes them off every waiting list and drops their
    requests (before the account is deleted, or once it can no longer enroll: events.receivers);
    freed seats go to the heads of the waiting lists. Returns the ids of the events whose seat was
    freed. `only_if_retired`: nothing is done, and None returned, if under the account's lock the
    account is an active participant's (the sweep's case: it may have been taken back meanwhile)."""
    with transaction.atomic():
        events = _lock_events_then_account(participant_id)
        if only_if_retired and participant_selectors.active_participants().filter(pk=participant_id).exists():
            return None
        # Read under the locks: a cancellation, a departure, a promotion or a decision of the
        # participant's request may have changed these while this waited for them, and only what
        # is still there is given back (counting a seat that a cancellation had already freed gave
        # it away twice).
        enrolled_in = list(
            Enrollment.objects.filter(participant_id=participant_id).values_list("event_id", flat=True)
        )
        waiting_for = list(
            WaitlistEntry.objects.filter(participant_id=participant_id).values_list("event_id", flat=True)
        )
        now = now or timezone.now()  # once the locks are held: a wait for them may cross a start
        _revoke_checkin_codes(Enrollment.objects.filter(participant_id=participant_id))
        Enrollment.objects.filter(participant_id=participant_id).delete()
        WaitlistEntry.objects.filter(participant_id=participant_id).delete()
        AdmissionRequest.objects.filter(participant_id=participant_id).delete()
        Event.objects.filter(pk__in=enrolled_in).update(enrolled_count=F("enrolled_count") - 1)
        Event.objects.filter(pk__in=waiting_for).update(waitlist_count=F("waitlist_count") - 1)
        for event_id in enrolled_in:
            event = events[event_id]
            event.enrolled_count -= 1
            if event_id in waiting_for:  # cannot happen (enrolled people do not wait), but stay exact
                event.waitlist_count -= 1
            promote_from_waitlist(event=event, now=now)

        def seats_changed() -> None:
            for event_id in sorted({*enrolled_in, *waiting_for}):
                _seats_changed(event_id)

        if enrolled_in or waiting_for:
            transaction.on_commit(seats_changed)
    return enrolled_in


# Celery beat's job (config.settings.CELERY_BEAT_SCHEDULE), on the admission consumer's queue.
WITHDRAW_RETIRED_TASK = "events.withdraw_retired_accounts"


def withdraw_retired_accounts() -> list[int]:
    """Withdraws every account that can no longer take part but still holds a seat, a place or a
    request, and returns their ids (one taken back meanwhile keeps what it holds, and is not). An
    account is withdrawn as it is retired (events.receivers); this sweep catches what a
    transaction that read the account before its retirement committed took after it (a direct
    seat, a waiting list's join or promotion) and a flag changed by QuerySet.update(), which sends
    no signal."""
    retired = (
        participant_selectors.accounts()
        .exclude(pk__in=participant_selectors.active_participants().values("pk"))
        .filter(functools.reduce(operator.or_, (Exists(held) for held in _holdings(OuterRef("pk")))))
    )
    withdrawn = [
        account_id
        for account_id in sorted(retired.values_list("pk", flat=True))
        if withdraw_from_all_events(participant_id=account_id, only_if_retired=True) is not None
    ]
    if withdrawn:
        log.warning("retired accounts still taking part, withdrawn: %s", withdrawn)
    return withdrawn


class _HoldsMore(Exception):
    """The account took part in events not locked yet: lock again, these included."""

    def __init__(self, event_ids: set[int]):
        self.event_ids = event_ids


def _lock_events_then_account(participant_id: int) -> dict[int, Event]:
    """Locks the rows of every event where the participant holds a seat, a place or a request
    (_holdings), then the account's row, and returns the events as they stand.

    The events' locks come first, in id order, as every writer takes them: the admission consumer,
    a promotion or a seat holds an event's lock when its commit takes its key-share lock on the
    account (Django's foreign keys are checked at commit), so the account's lock taken first
    deadlocked with them. Once the account's lock is held, nothing new can refer to it until this
    transaction ends: a seat committed before it in an event not locked yet is found by reading
    again, and the locks are taken again with that event included (a savepoint gives back those
    taken meanwhile, so that an event's lock is never waited for while the account's is held)."""
    accounts = participant_selectors.accounts().select_for_update().filter(pk=participant_id)
    to_lock = _events_held_by(participant_id)
    while True:
        try:
            with transaction.atomic():  # a savepoint: a retry gives back the locks taken in it
                locked = Event.objects.select_for_update(no_key=True).filter(pk__in=to_lock).order_by("pk")
                events = {event.pk: event for event in locked}
                list(accounts.values_list("pk", flat=True))
                held = _events_held_by(participant_id)
                if not held <= to_lock:
                    raise _HoldsMore(held)
                return events
        except _HoldsMore as more:
            to_lock = to_lock | more.event_ids


def _holdings(participant: Any) -> list[models.QuerySet[Any]]:
    """What an account (an id, or an OuterRef to one) holds in events: its seats, its places, and
    its requests, pending or decided (the withdrawal deletes them all, and a closed one is pending
    again once its event moves)."""
    models_held: list[Any] = [Enrollment, WaitlistEntry, AdmissionRequest]
    return [model.objects.filter(participant_id=participant) for model in models_held]


def _events_held_by(participant_id: int) -> set[int]:
    """The events where the participant holds a seat, a place or a request."""
    return {event for held in _holdings(participant_id) for event in held.values_list("event_id", flat=True)}


def takes_part(participant_id: int) -> bool:
    """Whether the account holds a seat, a place or a request in any event."""
    return any(held.exists() for held in _holdings(participant_id))


def _release_seat(*, event: Event, participant_id: int, now: dt.datetime | None = None) -> None:
    """Gives the participant's seat back, and it to the head of the waiting list."""
    enrollment = Enrollment.objects.filter(event_id=event.pk, participant_id=participant_id)
    _revoke_checkin_codes(enrollment)
    deleted, _ = enrollment.delete()
    if not deleted:
        raise domain.NotEnrolled()
    # The row lock this update takes orders every seat change of the event until commit.
    Event.objects.filter(pk=event.pk).update(enrolled_count=F("enrolled_count") - 1)
    AdmissionRequest.objects.filter(event_id=event.pk, participant_id=participant_id).delete()
    notifications.notify_participant(
        kind=Kind.ENROLLMENT_CANCELLED, participant_id=participant_id, event=event
    )
    current = Event.objects.get(pk=event.pk)
    promote_from_waitlist(event=current, now=now or timezone.now())
    transaction.on_commit(lambda: _seats_changed(event.pk))
    transaction.on_commit(metrics.CANCELLATIONS.inc)


def _revoke_checkin_codes(enrollments: Any) -> None:
    """Remembers the codes of enrollments about to be deleted: at the door they answer
    `not_enrolled` instead of being unknown. (A code is random and used once: no reuse clash.)"""
    RevokedCheckinCode.objects.bulk_create(
        [
            RevokedCheckinCode(code=code, event_id=event_id, participant_id=participant_id)
            for event_id, participant_id, code in enrollments.values_list(
                "event_id", "participant_id", "checkin_code"
            )
        ],
        ignore_conflicts=True,
    )


# --- The waiting list ----------------------------------------------------------------------------


def promote_from_waitlist(*, event: Event, now: dt.datetime) -> int:
    """Gives the event's free seats to the head of its waiting list, in the caller's transaction,
    which must hold the event's row lock and pass the event as it now stands. Returns how many
    were promoted (none once the event has started)."""
    count = domain.seats_to_promote(
        seats=event.seats, waitlist_length=event.waitlist_count, closed=domain.is_closed(event.starts_at, now)
    )
    if count == 0:
        return 0
    heads = list(
        WaitlistEntry.objects.filter(event_id=event.pk)
        .order_by("id")
        .values_list("id", "participant_id")[:count]
    )
    participant_ids = [participant_id for _, participant_id in heads]
    WaitlistEntry.objects.filter(pk__in=[entry_id for entry_id, _ in heads]).delete()
    enrolled = Enrollment.objects.bulk_create(
        [Enrollment(event_id=event.pk, participant_id=pid, created_at=now) for pid in participant_ids]
    )
    Event.objects.filter(pk=event.pk).update(
        enrolled_count=F("enrolled_count") + len(heads), waitlist_count=F("waitlist_count") - len(heads)
    )
    AdmissionRequest.objects.filter(event_id=event.pk, participant_id__in=participant_ids).update(
        status=domain.RequestStatus.CONFIRMED, decided_at=now
    )
    notifications.notify_participants(
        kind=Kind.WAITLIST_PROMOTED,
        event=event,
        participants=[(pid, None) for pid in participant_ids],
        checkin_codes={e.participant_id: e.checkin_code for e in enrolled},
    )
    transaction.on_commit(lambda: metrics.PROMOTIONS.inc(len(heads)))
    return len(heads)


def join_waitlist(
    *, event_id: int, participant_id: int, now: dt.datetime | None = None, ahead_of_the_queue: bool = False
) -> domain.WaitlistPlace:
    """Puts the participant at the end of a full event's waiting list. Raises EventNotFound,
    EventClosed, AlreadyEnrolled, AlreadyWaitlisted, or SeatsAvailable (enroll instead; also while
    queued requests are still pending, which the list must take first). `ahead_of_the_queue`: an
    admin's hand in the Django admin, which may put someone on the list before pending requests."""
    with transaction.atomic():
        # The event row first, as every seat change takes it: the seats checked below are the
        # ones the newcomer is counted against, and a seat cannot free between this check and the
        # insert without the freeing promoting them. (Counting with a conditional UPDATE instead
        # took no lock when the event was not full yet, so one filled meanwhile let an uncounted
        # place in.)
        event = Event.objects.select_for_update(no_key=True).filter(pk=event_id).first()
        if event is None:
            raise EventNotFound()
        now = now or timezone.now()  # once the lock is held: a wait for it may cross the start
        already_enrolled = Enrollment.objects.filter(
            event_id=event_id, participant_id=participant_id
        ).exists()
        already_waitlisted = WaitlistEntry.objects.filter(
            event_id=event_id, participant_id=participant_id
        ).exists()
        # The consumer decides under the event's lock, held here: what is pending now stays so. (Also
        # on an event switched to direct since: its requests queued before are still decided.)
        requests_pending = (
            not ahead_of_the_queue
            and AdmissionRequest.objects.filter(
                event_id=event_id, status=domain.RequestStatus.PENDING
            ).exists()
        )
        try:
            domain.check_can_join_waitlist(
                starts_at=event.starts_at,
                now=now,
                seats=event.seats,
                already_enrolled=already_enrolled,
                already_waitlisted=already_waitlisted,
                requests_pending=requests_pending,
            )
        except domain.Conflict as refusal:
            _rejected(refusal)
        Event.objects.filter(pk=event_id).update(waitlist_count=F("waitlist_count") + 1)
        event.waitlist_count += 1
        WaitlistEntry.objects.create(event_id=event_id, participant_id=participant_id, joined_at=now)
        notifications.notify_participant(
            kind=Kind.WAITLISTED, participant_id=participant_id, event=event, position=event.waitlist_count
        )
        transaction.on_commit(lambda: _seats_changed(event_id, event.seats))
        transaction.on_commit(lambda: metrics.WAITLISTED.inc())
    return domain.WaitlistPlace(
        event_id=event_id, participant_id=participant_id, position=event.waitlist_count, joined_at=now
    )


def leave_waitlist(*, event_id: int, participant_id: int) -> None:
    """Takes the participant off the waiting list; everyone behind moves up one place."""
    with transaction.atomic():
        # The event row first, as every other writer of the list takes it.
        event = Event.objects.select_for_update(no_key=True).filter(pk=event_id).first()
        if event is None:
            raise EventNotFound()
        deleted, _ = WaitlistEntry.objects.filter(event_id=event_id, participant_id=participant_id).delete()
        if not deleted:
            raise domain.NotWaitlisted()
        Event.objects.filter(pk=event_id).update(waitlist_count=F("waitlist_count") - 1)
        AdmissionRequest.objects.filter(event_id=event_id, participant_id=participant_id).delete()
        transaction.on_commit(lambda: _seats_changed(event_id))


# --- Check-in at the door ------------------------------------------------------------------------


def check_in(*, event_id: int, code: str, now: dt.datetime | None = None) -> Enrollment:
    """Records that the holder of this check-in code came to the event; the first check-in counts.
    Raises EventNotFound, UnknownCheckinCode (no such code at this event), CheckinCancelled (the
    enrollment was cancelled or removed) or AlreadyCheckedIn (with the first check-in's time)."""
    now = now or timezone.now()
    code = domain.normalize_checkin_code(code)
    with transaction.atomic():
        if not Event.objects.filter(pk=event_id).exists():
            raise EventNotFound()
        # Conditional: of two scanners reading the same code at once, exactly one records it (the
        # other's update finds the time set once the first commits, and answers already_checked_in).
        recorded = Enrollment.objects.filter(
            event_id=event_id, checkin_code=code, checked_in_at__isnull=True
        ).update(checked_in_at=now)
        enrollment = (
            Enrollment.objects.select_related("participant")
            .filter(event_id=event_id, checkin_code=code)
            .first()
        )
        if enrollment is None:
            if RevokedCheckinCode.objects.filter(event_id=event_id, code=code).exists():
                raise domain.CheckinCancelled()
            raise domain.UnknownCheckinCode()
        if not recorded:
            assert enrollment.checked_in_at is not None
            raise domain.AlreadyCheckedIn(enrollment.checked_in_at)
        transaction.on_commit(metrics.CHECK_INS.inc)
    return enrollment
