"""Queued admission: enrollment for a rush (events whose `admission` is "queue").

Accepting is one statement: the request row, durable once committed; the answer is 202. Nothing
answered 202 is lost, since the row is the queue of record. Then the consumer is woken through
RabbitMQ (events.wakeups: one batched hint for everything a process accepted meanwhile, and the
outbox relay's sweep for hints lost to a crash or a broker outage).

The consumer (the `admissions` queue's worker, events.tasks) decides an event's pending requests
in id order, many per transaction, under the event's row lock: seats first, then the waiting list.
Deciding is idempotent: a request that is no longer pending is skipped, so a redelivered message or
a second consumer decides nothing twice, and a consumer killed mid-batch rolls back and finds the
same requests pending again.

Queue order is the order requests were stored: `queued_at`, stamped by the database's clock in the
inserting statement, then the id. On PostgreSQL an id is drawn before its row commits, so two
overlapping requests can commit in the opposite order; before deciding, the consumer waits for
every request that is being inserted (a momentary SHARE lock on the table) and decides only ids up
to the newest committed one, in queue order. So a request never loses its place to one stored
after it, except between two stored within the same microseconds across a batch's edge.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Exists, F, Max, OuterRef
from django.utils import timezone

from config.prepared import prepared_row
from events import domain, metrics, services, wakeups
from events.models import AdmissionRequest, Enrollment, Event, WaitlistEntry
from events.services import EventNotFound, _rejected, _seats_changed
from notifications import services as notifications
from notifications.domain import Kind
from participants.selectors import active_participant_params, active_participant_sql, active_participants

log = logging.getLogger(__name__)

DECIDE_TASK = wakeups.DECIDE_TASK
# Requests decided in one transaction.
BATCH_SIZE = 1000
# How long the consumer waits for the requests being inserted before it decides (`_committed_bound`):
# normally microseconds to a few milliseconds; every accept waits behind it meanwhile. It tries
# BOUND_LOCK_ATTEMPTS times, as long apart, then lets the accepts be for TABLE_BUSY_PAUSE_SECONDS.
BOUND_LOCK_TIMEOUT_MS = 100
BOUND_LOCK_ATTEMPTS = 3
TABLE_BUSY_PAUSE_SECONDS = 1.0
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for a lock_timeout that expired

Status = domain.RequestStatus


def enroll_or_queue(
    *, event_id: int, participant_id: int, check_account: bool = False
) -> Enrollment | AdmissionRequest:
    """The API's enrollment: a seat at once on a direct event (Enrollment), a queued request on a
    queued one (AdmissionRequest, decided later). Direct events pay nothing for the check: the
    seat's conditional update includes the mode, and only a miss reads the event. A queued event
    seen recently by this process goes straight to the queue.

    `check_account`: the caller has not loaded the account (it trusts a signed token for the id):
    the seat's or the request's own statement checks that the account is an active participant's,
    and PermissionDenied is raised, before any other answer, when it is not."""
    known = services.queued_events.get(event_id)
    if known is not None and known[0] > time.monotonic():
        return request_admission(
            event_id=event_id, participant_id=participant_id, starts_at=known[1], check_account=check_account
        )
    try:
        return services.enroll(
            event_id=event_id,
            participant_id=participant_id,
            direct_only=True,
            check_account=check_account,
        )
    except services.EventQueued as queued:
        services.queued_events[event_id] = (
            time.monotonic() + QUEUED_EVENT_MEMORY_SECONDS,
            queued.starts_at,
        )
        return request_admission(
            event_id=event_id,
            participant_id=participant_id,
            starts_at=queued.starts_at,
            check_account=check_account,
        )


# Events this process found queued, and when they start, are remembered this long (in
# services.queued_events): in a rush every request is for the same event, and reading it again per
# request doubles the work. Another process's change of mode or date takes this long to be seen
# here, and does no harm meanwhile: a request queued on an event that just went direct is still
# decided by the consumer, which also checks the start again. This process's own event writes
# forget them at once.
QUEUED_EVENT_MEMORY_SECONDS = 1.0


def request_admission(
    *,
    event_id: int,
    participant_id: int,
    now: dt.datetime | None = None,
    starts_at: dt.datetime | None = None,
    check_account: bool = False,
) -> AdmissionRequest:
    """Queues the participant's request (or returns the one still pending). Raises EventNotFound,
    EventClosed, AlreadyEnrolled or AlreadyWaitlisted. `starts_at`: the event's start, when the
    caller knows it. `check_account`: the account is not loaded; the insert itself requires it to
    be an active participant's, and PermissionDenied comes before any other answer when it is not.

    A rush's every request comes here, so the usual case is one statement: the request row,
    inserted (and committed) only if the participant holds no seat or place and has no request
    yet; then the consumer is woken (events.wakeups). A row not inserted takes the slow path that
    finds out why."""
    now = now or timezone.now()
    if starts_at is None:
        event = Event.objects.filter(pk=event_id).only("date", "time").first()
        if event is None:
            _check_account(participant_id, check_account)
            raise EventNotFound()
        starts_at = event.starts_at
    if domain.is_closed(starts_at, now):
        _check_account(participant_id, check_account)
        _rejected(domain.EventClosed())
    try:
        inserted = _insert_request(
            event_id=event_id, participant_id=participant_id, check_account=check_account
        )
    except EventNotFound:
        _check_account(participant_id, check_account)  # a foreign key: the event's, or the account's
        raise
    if inserted is None:
        _check_account(participant_id, check_account)
        existing = _already_asked(event_id=event_id, participant_id=participant_id)
        if existing is not None:
            return existing
        # What stood in the way went meanwhile (a cancellation committed since): insert again.
        inserted = _insert_request(event_id=event_id, participant_id=participant_id)
        if inserted is None:
            raise services.ConcurrentChange()
    request_id, queued_at = inserted
    transaction.on_commit(lambda: wakeups.wake(event_id))  # at once, unless inside a transaction
    return AdmissionRequest(
        id=request_id, event_id=event_id, participant_id=participant_id, queued_at=queued_at
    )


def _check_account(participant_id: int, check: bool) -> None:
    """With `check`, PermissionDenied unless the account is an active participant's (the
    condition `_insert_request` puts in its statement)."""
    if check and not _accounts().filter(pk=participant_id, is_active=True, is_staff=False).exists():
        raise PermissionDenied("Not an active participant's account.")


def _accounts() -> Any:
    return get_user_model()._default_manager


def _insert_request(
    *, event_id: int, participant_id: int, check_account: bool = False
) -> tuple[int, dt.datetime] | None:
    """The new request's id and queued_at, or None when the participant already has a request, a
    seat or a place (or, with `check_account`, is not an active participant). One statement
    (committed on its own outside a transaction: no BEGIN, no COMMIT round trip). On PostgreSQL
    the database's clock stamps the row as it is written, so queued_at follows the order in which
    requests were stored."""
    pair = [event_id, participant_id]
    params: list[Any] = [*pair, Status.PENDING, *pair, *pair]
    if check_account:
        params.extend(active_participant_params(participant_id))
    sql = _insert_request_sql(connection.vendor, check_account)
    field = AdmissionRequest._meta.get_field("queued_at")
    try:
        row = prepared_row(sql, params, binary_results=True)  # every request of a rush runs it
    except IntegrityError as exc:  # the event was deleted (its foreign key)
        services.queued_events.pop(event_id, None)
        raise EventNotFound() from exc
    if row is None:
        return None
    queued_at = row[1]
    if not isinstance(queued_at, dt.datetime):
        queued_at = field.to_python(queued_at)
    if settings.USE_TZ and timezone.is_naive(queued_at):
        # SQLite returns the time naive (text, or parsed by its column type's converter), in the
        # connection's time zone (UTC), as the ORM's own converter reads it; left naive, the answer
        # took it for TIME_ZONE's time, hours off on a server outside UTC.
        queued_at = timezone.make_aware(queued_at, connection.timezone)
    return int(row[0]), queued_at


@functools.cache
def _insert_request_sql(vendor: str, check_account: bool) -> str:
    """_insert_request's SQL, made once per database and shape: a rush's every request needs it.
    Its parameters: event, participant, status, then (event, participant) for each NOT EXISTS, then
    with `check_account` the account's id, True, False."""
    quote = connection.ops.quote_name
    table = quote(AdmissionRequest._meta.db_table)
    enrollments = quote(Enrollment._meta.db_table)
    waitlist = quote(WaitlistEntry._meta.db_table)
    # The database's clock, read while the row is being written: on PostgreSQL clock_timestamp();
    # on SQLite, whose writers take turns, the time under the write lock (to the millisecond; equal
    # stamps keep their commit order through the id).
    stamp = (
        "clock_timestamp()"
        if vendor == "postgresql"
        else "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now') || '000'"
    )
    # Only the models' own identifiers are formatted in; every value is a parameter.
    conditions = [
        f"NOT EXISTS (SELECT 1 FROM {enrollments} WHERE event_id = %s AND participant_id = %s)",  # noqa: S608
        f"NOT EXISTS (SELECT 1 FROM {waitlist} WHERE event_id = %s AND participant_id = %s)",  # noqa: S608
    ]
    if check_account:
        # The token's account, checked in the same statement as the authentication would have
        # checked it loaded: the accept needs no query to load it.
        conditions.append(active_participant_sql())
    return (
        f"INSERT INTO {table} (event_id, participant_id, status, queued_at)"  # noqa: S608
        f" SELECT %s, %s, %s, {stamp}"
        f" WHERE {' AND '.join(conditions)}"
        " ON CONFLICT (event_id, participant_id) DO NOTHING RETURNING id, queued_at"
    )


def _already_asked(*, event_id: int, participant_id: int) -> AdmissionRequest | None:
    """No row was inserted: a request already stands (returned while pending), or the participant
    holds a seat or a place (refused). None: none of these stands any more."""
    # A seat or a place first: an admin may have given one while the request was pending.
    if Enrollment.objects.filter(event_id=event_id, participant_id=participant_id).exists():
        _rejected(domain.AlreadyEnrolled())
    if WaitlistEntry.objects.filter(event_id=event_id, participant_id=participant_id).exists():
        _rejected(domain.AlreadyWaitlisted())
    request = AdmissionRequest.objects.filter(event_id=event_id, participant_id=participant_id).first()
    if request is None:
        return None
    if request.status == Status.PENDING:
        return request  # asking again while pending: the same request
    _check_repeated(request)
    return request


def _check_repeated(request: AdmissionRequest) -> None:
    """Asking again: the pending request stands; a decided one says where the participant is."""
    if request.status == Status.CONFIRMED:
        _rejected(domain.AlreadyEnrolled())
    if request.status == Status.WAITLISTED:
        _rejected(domain.AlreadyWaitlisted())
    if request.status == Status.CLOSED:
        _rejected(domain.EventClosed())


# While requests keep coming, a consumer process decides at most this often: a batch costs about
# 12 ms whatever its size plus about 80 us per request, and during a rush the wake-ups (one per web
# process per 200 ms) made batches of about 55 requests, so the consumer's fixed costs were most
# of its 0.3 ms per accept, on the cores the accepts need (docs/architecture.md, "Performance").
# A wake-up after a quiet spell is decided at once; the decision target (2 s) leaves room.
DECIDE_INTERVAL_SECONDS = 0.5
_last_decided = 0.0  # time.monotonic() of this process's last decision (the consumer's own)
_table_busy_until = 0.0  # time.monotonic() before which this process does not lock the table again


def decide_pending(*, event_ids: Iterable[int] | None = None, now: dt.datetime | None = None) -> int:
    """Decides the pending requests of the given events (all events when None), in queue order.
    Returns how many were decided (or dropped: a retired account's)."""
    global _last_decided
    if event_ids is not None:
        event_ids = set(event_ids)
    _pace(event_ids)
    bound = _committed_bound()
    if bound is None:
        return 0
    if event_ids is None:
        event_ids = (
            AdmissionRequest.objects.filter(status=Status.PENDING, id__lte=bound)
            .values_list("event_id", flat=True)
            .distinct()
        )
    decided = 0
    for event_id in sorted(set(event_ids)):
        while True:
            count = _decide_batch(event_id=event_id, bound=bound, now=now)
            decided += count
            if count < BATCH_SIZE:
                break
    if decided:
        _last_decided = time.monotonic()
    return decided


def _pace(event_ids: set[int] | None) -> None:
    """In the consumer: waits until DECIDE_INTERVAL_SECONDS after its last decision, if that was
    more recent, or until the pause after finding the table busy, if there is something to decide
    (a wake-up for requests decided already returns at once). In-process deciding (the embedded
    default, CELERY_TASK_ALWAYS_EAGER) never waits: it runs inside the accepting request."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return
    wait = max(_last_decided + DECIDE_INTERVAL_SECONDS, _table_busy_until) - time.monotonic()
    if wait <= 0:
        return
    pending = AdmissionRequest.objects.filter(status=Status.PENDING)
    if event_ids is not None:
        pending = pending.filter(event_id__in=event_ids)
    if pending.exists():
        _sleep(wait)


_sleep = time.sleep  # (replaced in tests)


def _committed_bound() -> int | None:
    """The highest request id below which every request has committed (or never will). None when
    there is no request, or when the table stayed busy through BOUND_LOCK_ATTEMPTS tries."""
    global _table_busy_until
    # In-process deciding (no broker) runs inside an accepting request: one try, no sleep, and none
    # at all during the pause; the in-process sweep decides the requests after it.
    eager = settings.CELERY_TASK_ALWAYS_EAGER
    if eager and time.monotonic() < _table_busy_until:
        return None
    attempts = 1 if eager else BOUND_LOCK_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            with transaction.atomic():
                if connection.vendor == "postgresql":
                    # SHARE waits for every transaction that is inserting a request, and holds new
                    # ones back for as long as this transaction lasts: one index look-up. Only
                    # briefly: while it waits, every accept queues behind it, and a writer that kept
                    # the table long (an account's withdrawal waiting on a slow lock) stopped the
                    # whole rush. An autovacuum (its analyze) also holds SHARE off, for a moment.
                    with connection.cursor() as cursor:
                        timeout = f"{BOUND_LOCK_TIMEOUT_MS}ms"
                        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [timeout])
                        cursor.execute(f"LOCK TABLE {AdmissionRequest._meta.db_table} IN SHARE MODE")
                # (SQLite runs one write transaction at a time: ids commit in order.)
                bound: int | None = AdmissionRequest.objects.aggregate(bound=Max("id"))["bound"]
                return bound
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
        if attempt < attempts:
            time.sleep(BOUND_LOCK_TIMEOUT_MS / 1000)  # the accepts queued behind the lock go on
    # The requests left pending are decided at the next wake-up after a pause (`_pace`); the relay's
    # sweep (events.wakeups.wake_stale) wakes them if no wake-up comes.
    _table_busy_until = time.monotonic() + TABLE_BUSY_PAUSE_SECONDS
    log.warning("admission: the requests' table stayed busy; deciding at the next wake-up")
    return None


def _decide_batch(*, event_id: int, bound: int, now: dt.datetime | None) -> int:
    with transaction.atomic():
        # NO KEY UPDATE: the batch excludes other writers of the event's seats, but not the
        # foreign-key checks of requests being accepted meanwhile (FOR UPDATE would hold every
        # accept of the rush until this batch commits).
        event = Event.objects.select_for_update(no_key=True).filter(pk=event_id).first()
        if event is None:
            return 0  # deleted: its requests went with it
        now = now or timezone.now()  # once the lock is held: a wait for it may cross the start
        pending = list(
            AdmissionRequest.objects.filter(event_id=event_id, status=Status.PENDING, id__lte=bound)
            .order_by("queued_at", "id")
            .annotate(taking_part=Exists(active_participants().filter(pk=OuterRef("participant_id"))))
            .values_list("id", "participant_id", "taking_part")[:BATCH_SIZE]
        )
        if not pending:
            return 0
        # An account retired (deactivated, or made an administrator's) while its request was being
        # accepted: the withdrawal ran before the accept committed, so the request is dropped here.
        retired: list[int] = []
        taking_part: list[tuple[int, int]] = []
        for request_id, participant_id, still_taking_part in pending:
            if still_taking_part:
                taking_part.append((request_id, participant_id))
            else:
                retired.append(request_id)
        if retired:
            AdmissionRequest.objects.filter(pk__in=retired).delete()
        request_ids = [request_id for request_id, _ in taking_part]
        if domain.is_closed(event.starts_at, now):
            AdmissionRequest.objects.filter(pk__in=request_ids).update(status=Status.CLOSED, decided_at=now)
            transaction.on_commit(
                lambda: metrics.ADMISSION_DECISIONS.labels(Status.CLOSED).inc(len(request_ids))
            )
            return len(pending)

        participant_ids = [participant_id for _, participant_id in taking_part]
        # Enrolled or waiting already (an admin's hand, or before the event was queued): the request
        # is answered by where they are, and takes nothing.
        enrolled = set(
            Enrollment.objects.filter(event_id=event_id, participant_id__in=participant_ids).values_list(
                "participant_id", flat=True
            )
        )
        waiting = set(
            WaitlistEntry.objects.filter(event_id=event_id, participant_id__in=participant_ids).values_list(
                "participant_id", flat=True
            )
        )
        decisions = domain.decide_in_order(
            [p for p in participant_ids if p not in enrolled and p not in waiting],
            seats_left=event.seats.left,
            waitlist_length=event.waitlist_count,
        )
        confirmed = [d for d in decisions if d.status == Status.CONFIRMED]
        waitlisted = [d for d in decisions if d.status == Status.WAITLISTED]
        # Created in queue order: the waiting list's order is its ids' order.
        created = Enrollment.objects.bulk_create(
            [
                Enrollment(event_id=event_id, participant_id=d.participant_id, created_at=now)
                for d in confirmed
            ]
        )
        WaitlistEntry.objects.bulk_create(
            [
                WaitlistEntry(event_id=event_id, participant_id=d.participant_id, joined_at=now)
                for d in waitlisted
            ]
        )
        Event.objects.filter(pk=event_id).update(
            enrolled_count=F("enrolled_count") + len(confirmed),
            waitlist_count=F("waitlist_count") + len(waitlisted),
        )
        confirmed_ids = {d.participant_id for d in confirmed} | enrolled
        AdmissionRequest.objects.filter(pk__in=request_ids, participant_id__in=confirmed_ids).update(
            status=Status.CONFIRMED, decided_at=now
        )
        AdmissionRequest.objects.filter(pk__in=request_ids).exclude(participant_id__in=confirmed_ids).update(
            status=Status.WAITLISTED, decided_at=now
        )
        # One outbox message per kind for the whole batch (the worker writes the notifications).
        if confirmed:
            notifications.notify_participants(
                kind=Kind.ENROLLMENT_CONFIRMED,
                event=event,
                participants=[(d.participant_id, None) for d in confirmed],
                checkin_codes={e.participant_id: e.checkin_code for e in created},
            )
        if waitlisted:
            notifications.notify_participants(
                kind=Kind.WAITLISTED,
                event=event,
                participants=[(d.participant_id, d.position) for d in waitlisted],
            )
        seats = domain.Seats(capacity=event.capacity, enrolled=event.enrolled_count + len(confirmed))
        transaction.on_commit(lambda: _seats_changed(event_id, seats))

        def count() -> None:
            metrics.ENROLLMENTS.inc(len(confirmed))
            metrics.WAITLISTED.inc(len(waitlisted))
            metrics.ADMISSION_DECISIONS.labels(Status.CONFIRMED).inc(len(confirmed))
            metrics.ADMISSION_DECISIONS.labels(Status.WAITLISTED).inc(len(waitlisted))

        transaction.on_commit(count)
        return len(pending)
