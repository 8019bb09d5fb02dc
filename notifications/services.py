"""Notifying participants and delivering notifications (emails through Django's email framework).

Participants' notifications (`notify_participant`, `notify_participants`) cost the business
transaction one outbox message, carrying what the worker needs: the kind, the event's id and a
snapshot of it (title, date, time, location: the event may be gone when the worker runs), and the
participants with their waiting-list positions. The `notifications.notify` task (batched: one
broker message carries many such messages) creates the `Notification` rows, idempotently (each
row's `key` is the message's key and the participant), pushes them, and sends their emails over one
email connection. Other emails (report_ready) are recorded as rows at once with `queue_email` and
delivered one by one by `notifications.send_notification`, as are an admin's resends.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends import filebased
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from config.outbox import services as outbox
from notifications import calendar, emails, metrics, realtime
from notifications.domain import Kind, Status
from notifications.models import Notification
from participants import selectors as participant_selectors

log = logging.getLogger(__name__)

SEND_TASK = "notifications.send_notification"
NOTIFY_TASK = "notifications.notify"
# Attempts beyond the retries mean the worker died mid-send again and again: stop the loop.
CRASH_ATTEMPTS_ALLOWANCE = 3
# New notifications are sent and marked sent in transactions of at most this many: the first ones
# of a big batch are visible as sent without waiting for the last.
SEND_CHUNK = 25
# Participants per outbox message of notify_participants. A broker message carries up to 50 outbox
# messages (notifications.tasks), so one task sends at most 10,000 emails: minutes at SMTP's pace,
# within the tasks' time limit and RabbitMQ's consumer timeout (30 minutes by default, past which it
# takes an unacknowledged message back and delivers it again). An event's cancellation used to email
# all its participants from one message, however many they were.
PARTICIPANTS_PER_MESSAGE = 200
# The advisory locks that keep two senders of one notification apart (`_hold_for_sending`): the
# first key names this use (the platform takes no other advisory locks), the second is the id's
# int4 residue.
SENDING_LOCK_CLASS = 0x6E6F7469  # "noti"
SENDING_LOCK_KEYS = 2**31 - 1
RECORD_ATTEMPTS = 3
DEADLOCK = "40P01"  # PostgreSQL's SQLSTATE for deadlock_detected


class DeliveryFailed(Exception):
    """The email backend refused; the task retries with backoff."""


def event_context(event: Any) -> dict[str, Any]:
    """The event as notifications keep it (it may be gone or changed when the worker runs): what the
    email says, and what its calendar entry needs (the event's id is its UID)."""
    return {
        "title": event.title,
        "date": event.date.isoformat(),
        # To the minute, as people read it, unless the event starts on a second (the API takes
        # HH:MM:SS): the calendar entry starts when the event does.
        "time": event.time.strftime("%H:%M:%S" if event.time.second else "%H:%M"),
        "duration_minutes": event.duration_minutes,
        "location": event.location,
        "sequence": event.calendar_sequence,
    }


def queue_email(
    *,
    kind: Kind,
    to_email: str,
    context: Mapping[str, Any],
    user_id: int | None = None,
    event_id: int | None = None,
    attachment: str = "",
    attachment_name: str = "",
) -> Notification:
    """Records a notification and its delivery task in the caller's transaction."""
    subject, body = emails.render(kind, context)
    notification = Notification.objects.create(
        kind=kind.value,
        to_email=to_email,
        user_id=user_id,
        event_id=event_id,
        subject=subject,
        body=body,
        attachment=attachment,
        attachment_name=attachment_name,
    )
    realtime.push_on_commit(notification)  # first: owners see it queued before they see it sent
    outbox.enqueue(SEND_TASK, notification_id=notification.pk)
    return notification


def notify_participant(
    *,
    kind: Kind,
    participant_id: int,
    event: Any,
    position: int | None = None,
    checkin_code: str | None = None,
) -> None:
    """Notifies one participant about `event` (email and `/ws/notifications/`), once the caller's
    transaction commits: the transaction writes one outbox message, the worker the Notification.

    `position`: the waiting-list position, for `waitlisted` (it goes into the email's context).
    `checkin_code`: the enrollment's code, for the kinds that confirm a seat.
    """
    notify_participants(
        kind=kind,
        event=event,
        participants=[(participant_id, position)],
        checkin_codes={participant_id: checkin_code} if checkin_code else None,
    )


def notify_participants(
    *,
    kind: Kind,
    event: Any,
    participants: Sequence[tuple[int, int | None]],
    checkin_codes: Mapping[int, str] | None = None,
) -> None:
    """Notifies many participants about one event, in the caller's transaction: one outbox message
    for every PARTICIPANTS_PER_MESSAGE of them.

    `participants`: `(participant_id, position)` pairs, `position` being the waiting-list position
    (for `waitlisted`) or None. `checkin_codes`: participant id → their enrollment's check-in code,
    for the kinds whose email carries it (confirmation, promotion, update, reminder). Meant for
    decisions that commit together, e.g. a batch of admission decisions: one call per kind
    (`enrollment_confirmed` for those admitted, `waitlisted` with their positions for the others).
    Each participant gets a notification of their own, exactly as with `notify_participant`, created
    and sent by the notifications worker after the commit; a participant whose account is gone by
    then is skipped. The event is snapshotted now, so the email still says what and when if the
    event is deleted before the worker runs.
    """
    if not participants:
        return
    snapshot, all_codes = event_context(event), checkin_codes or {}
    for start in range(0, len(participants), PARTICIPANTS_PER_MESSAGE):
        some = participants[start : start + PARTICIPANTS_PER_MESSAGE]
        codes = {pid: all_codes[pid] for pid, _ in some if pid in all_codes}
        outbox.enqueue(
            NOTIFY_TASK,
            **_notify_kwargs(kind=kind, event_id=event.pk, participants=some, checkin_codes=codes),
            event=snapshot,
        )


def notify_participant_statement(
    *, kind: Kind, participant_id: int, event_id: int, event_relation: str, checkin_code: str | None = None
) -> tuple[str, list[Any]]:
    """notify_participant as SQL (PostgreSQL), for a change written as ONE statement (a data-modifying
    CTE): the INSERT of the same outbox message, with its parameters. The event's snapshot is read
    from `event_relation`, a relation of that statement with the event's columns as the change left
    them (title, date, time, duration_minutes, location, calendar_sequence); no row there, no
    message. The caller publishes the returned id once the statement has committed
    (config.outbox.services.publish_after_commit)."""
    known = _notify_kwargs(
        kind=kind,
        event_id=event_id,
        participants=[(participant_id, None)],
        checkin_codes={participant_id: checkin_code} if checkin_code else None,
    )
    # event_context, formatted by the database as Python formats it (tests hold the two equal).
    r = event_relation
    snapshot = (
        f"jsonb_build_object('title', {r}.title, 'date', to_char({r}.date, 'YYYY-MM-DD'),"
        f" 'time', to_char({r}.time, CASE WHEN date_part('second', {r}.time) >= 1"
        f" THEN 'HH24:MI:SS' ELSE 'HH24:MI' END), 'duration_minutes', {r}.duration_minutes,"
        f" 'location', {r}.location, 'sequence', {r}.calendar_sequence)"
    )
    return outbox.insert_statement(
        NOTIFY_TASK,
        kwargs_sql=f"CAST(%s AS jsonb) || jsonb_build_object('event', {snapshot})",
        kwargs_params=[json.dumps(known)],
        select_from=r,
    )


def _notify_kwargs(
    *,
    kind: Kind,
    event_id: int,
    participants: Sequence[tuple[int, int | None]],
    checkin_codes: Mapping[int, str] | None,
) -> dict[str, Any]:
    """A notify message's kwargs but for the event's snapshot (`event`)."""
    return {
        "key": uuid.uuid4().hex,
        # When the change was made: its calendar entry's DTSTAMP. Messages of one participant may be
        # delivered out of order (one waits for the relay while a later one goes at once), and a
        # calendar app keeps the entry with the latest DTSTAMP of the same SEQUENCE.
        "at": timezone.now().isoformat(),
        "kind": Kind(kind).value,
        "event_id": event_id,
        "participants": [[participant_id, position] for participant_id, position in participants],
        # JSON object keys are strings: the worker reads them back with str(participant_id).
        "checkin_codes": {str(pid): code for pid, code in (checkin_codes or {}).items()},
    }


@dataclass(frozen=True)
class Failure:
    """A notification whose email could not be sent this time."""

    item_key: str
    notification_id: int
    error: str


def notify(items: Sequence[Mapping[str, Any]]) -> list[Failure]:
    """The worker's side of notify_participants: creates the notifications of these outbox items
    (once, however often they are delivered), pushes them, and sends their emails.

    Returns the notifications whose emails failed (each keeps its error and stays queued). Rows
    this call creates count their first attempt in the creating commit and are sent together over
    one email connection; rows that already existed (a redelivery after a crash, a retry) are
    delivered one by one by `deliver`, which also ends a crash loop.
    """
    created, existing = _create_notifications(items)
    item_of = {n.pk: str(n.key).rsplit(":", 1)[0] for n in [*created, *existing]}
    failures: list[Failure] = []
    for start in range(0, len(created), SEND_CHUNK):
        for notification_id, error in _send_new(created[start : start + SEND_CHUNK]):
            failures.append(Failure(item_of[notification_id], notification_id, error))
    for notification in existing:
        if notification.status != Status.QUEUED:
            continue
        try:
            deliver(notification_id=notification.pk)
        except DeliveryFailed as exc:
            failures.append(Failure(item_of[notification.pk], notification.pk, str(exc)))
    return failures


def _create_notifications(
    items: Sequence[Mapping[str, Any]], *, tries: int = 3
) -> tuple[list[Notification], list[Notification]]:
    """The items' notifications: (created now, found already). A concurrent delivery of the same
    message that creates them first makes this one find them on its next try."""
    wanted = {
        f"{item['key']}:{participant_id}": (item, participant_id, position)
        for item in items
        for participant_id, position in item["participants"]
    }
    for attempt in range(tries):
        try:
            with transaction.atomic():
                existing = list(Notification.objects.filter(key__in=list(wanted)).order_by("id"))
                found = {n.key for n in existing}
                todo = {key: spec for key, spec in wanted.items() if key not in found}
                created = Notification.objects.bulk_create(_build(todo)) if todo else []
                for notification in created:
                    realtime.push_on_commit(notification)
            return created, existing
        except IntegrityError:
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


def _build(todo: Mapping[str, tuple[Mapping[str, Any], int, int | None]]) -> list[Notification]:
    users = {
        user.pk: user
        for user in participant_selectors.accounts()
        .only("email", "full_name")
        # A deactivated account gave its seats and places back (events.receivers): a message about
        # them written before that, delivered after, would hand it a ticket that no longer holds.
        .filter(pk__in={participant_id for _, participant_id, _ in todo.values()}, is_active=True)
    }
    alive = existing_events({item["event_id"] for item, _, _ in todo.values() if item["event_id"]})
    now = timezone.now()
    rows = []
    for key, (item, participant_id, position) in todo.items():
        user = users.get(participant_id)
        if user is None:
            continue  # the account is gone or deactivated, and its notifications with it
        context: dict[str, Any] = {"full_name": user.full_name, "event": item["event"]}
        if position is not None:
            context["position"] = position
        kind = Kind(item["kind"])
        # Messages written before calendars and codes existed carry neither: their emails go without.
        code = (
            (item.get("checkin_codes") or {}).get(str(participant_id), "")
            if kind in emails.CHECKIN_KINDS
            else ""
        )
        if code:
            context["checkin_code"] = emails.display_checkin_code(code)
        try:
            ics = _calendar(kind, item, user, now=_changed_at(item) or now)
        except (ValueError, OverflowError):
            # An entry the calendar cannot hold (a date at the edge of what Python's dates can
            # hold: events stored before their dates were bounded) must not cost the notification,
            # nor the batch's others, whose outbox message is spent: it goes without a calendar.
            log.exception("Notification %s goes without a calendar: its event's dates do not fit one", key)
            ics = ""
        if ics:
            context["calendar"] = calendar.method_of(ics)
        subject, body = emails.render(kind, context)
        rows.append(
            Notification(
                key=key,
                kind=kind.value,
                user_id=user.pk,
                to_email=user.email,
                event_id=item["event_id"] if item["event_id"] in alive else None,
                subject=subject,
                body=body,
                calendar=ics,
                checkin_code=code,
                attempts=1,  # counted in the creating commit: a crash while sending leaves a trace
            )
        )
    return rows


def _calendar(kind: Kind, item: Mapping[str, Any], user: Any, *, now: Any) -> str:
    """The .ics of a participant's notification ('' for kinds without one): REQUEST while the seat
    stands, CANCEL when it is gone; DTSTAMP is when the worker made the row."""
    method = calendar.METHOD_OF_KIND.get(kind)
    snapshot = item.get("event")
    if method is None or not item.get("event_id") or not snapshot or "date" not in snapshot:
        return ""
    return calendar.render(
        method, [(item["event_id"], snapshot)], attendee=(user.email, user.full_name), now=now
    )


def _changed_at(item: Mapping[str, Any]) -> dt.datetime | None:
    """When the item's change was made (None for a message written before they said)."""
    return dt.datetime.fromisoformat(item["at"]) if item.get("at") else None


def existing_events(event_ids: set[int]) -> set[int]:
    """Those of the events that exist, kept from being deleted until this transaction ends (on
    PostgreSQL: FOR KEY SHARE, which enrollments' updates of the row do not wait for), so that
    notifications can refer to them; a deleted event's notifications refer to none. An event being
    deleted is waited for, and then found gone."""
    if not event_ids:
        return set()
    event_model = apps.get_model("events", "Event")
    if connection.vendor != "postgresql":  # SQLite: one writer at a time, no race
        return set(event_model.objects.filter(pk__in=event_ids).values_list("pk", flat=True))
    table = connection.ops.quote_name(event_model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {table} WHERE id = ANY(%s) FOR KEY SHARE", [sorted(event_ids)])  # noqa: S608
        return {row[0] for row in cursor.fetchall()}


def _hold_for_sending(notification_ids: Sequence[int]) -> None:
    """Makes every other sender of these notifications wait until this transaction ends, so that
    one email is not sent twice at the same moment (the second sender then finds it sent).

    Advisory locks, not the rows' own: a row lock held through an SMTP exchange made everything that
    writes those rows wait for the mail server (an account's or an event's deletion, whose cascade
    deletes or updates its notifications, while holding the locks of its events). SQLite has one
    writer at a time, whose transaction already excludes every other sender.
    """
    if connection.vendor != "postgresql":
        return
    # Two-key advisory locks take int4 keys: an id beyond that range shares a key with another one,
    # which costs at most a wait. Taken in the keys' order, so that two senders never deadlock.
    keys = sorted({notification_id % SENDING_LOCK_KEYS for notification_id in notification_ids})
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, key) FROM unnest(%s::integer[]) AS key",
            [SENDING_LOCK_CLASS, keys],
        )


def _send_new(notifications: Sequence[Notification]) -> list[tuple[int, str]]:
    """Sends the emails of freshly created notifications over one connection, while holding them
    for sending, and marks those that went out sent in the same transaction. Returns (id, error) of
    the others."""
    failures: list[tuple[int, str]] = []
    with transaction.atomic():
        ids = [n.pk for n in notifications]
        _hold_for_sending(ids)
        queued = list(Notification.objects.filter(pk__in=ids, status=Status.QUEUED).order_by("id"))
        sent: list[Notification] = []
        mail = get_connection()
        # One connection for the batch (an SMTP session, not one per email); the file backend
        # writes everything one instance sends into one file (named at its first write after the
        # second and the instance's id()), so it gets a fresh instance per email, each kept alive
        # until the batch ends so that no two share an id(): one file per email under var/mail/.
        reuse = not isinstance(mail, filebased.EmailBackend)
        file_connections: list[Any] = []
        opened: Exception | None = None
        try:
            if reuse:
                mail.open()
        except Exception as exc:  # e.g. the SMTP server is away: every email of the batch failed
            opened = exc
        for notification in queued:
            try:
                if opened is not None:
                    raise opened
                if not reuse:
                    file_connections.append(get_connection())
                (mail if reuse else file_connections[-1]).send_messages([_email(notification)])
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:2000]
                notification.error = error
                failures.append((notification.pk, error))
                continue
            sent.append(notification)
        if reuse and opened is None:
            try:
                mail.close()
            except Exception:  # the emails are sent; a failed goodbye changes nothing
                log.warning("closing the email connection failed", exc_info=True)
        sent_at = timezone.now()  # the batch's emails went out within milliseconds of each other
        sent_ids = {n.pk for n in sent}
        for notification in sent:
            notification.status, notification.sent_at, notification.error = Status.SENT, sent_at, ""
        _record_sending(sent, [n for n in queued if n.pk not in sent_ids])
        for notification in sent:
            realtime.push_on_commit(notification)
        if sent:
            transaction.on_commit(lambda: metrics.SENT.inc(len(sent)))
    return failures


def _record_sending(sent: Sequence[Notification], unsent: Sequence[Notification]) -> None:
    """Marks the sent notifications sent and records the others' errors.

    Tried again after a deadlock: the emails are out, and rolling back would leave them queued, to
    be sent twice. A deletion (its cascade, or an event's SET NULL) may lock some of these rows in
    another order; once it has committed, this finds them gone or updated and writes the rest.
    """
    for attempt in range(1, RECORD_ATTEMPTS + 1):
        try:
            with transaction.atomic():  # a savepoint: a deadlock fails the statement, not the batch
                if sent:
                    Notification.objects.filter(pk__in=[n.pk for n in sent]).update(
                        status=Status.SENT, sent_at=sent[0].sent_at, error=""
                    )
                if unsent:
                    Notification.objects.bulk_update(unsent, ["error"])
            return
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != DEADLOCK or attempt == RECORD_ATTEMPTS:
                raise


def deliver(*, notification_id: int) -> str | None:
    """Sends the notification's email unless it is already sent or failed. Idempotent.

    Returns the final status, or None when there is no such notification. Raises DeliveryFailed
    when the email backend fails (the notification stays queued, with the error recorded).
    """
    with transaction.atomic():
        # Count the attempt in its own commit, so that a worker dying mid-send leaves a trace. Held
        # for sending first: a duplicate delivery waits for the send in progress and finds it sent,
        # instead of counting an attempt against the crash-loop guard.
        _hold_for_sending([notification_id])
        notification = Notification.objects.select_for_update().filter(pk=notification_id).first()
        if notification is None or notification.status != Status.QUEUED:
            return notification.status if notification else None
        notification.attempts += 1
        notification.save(update_fields=["attempts"])
    if notification.attempts > settings.NOTIFICATION_MAX_RETRIES + 1 + CRASH_ATTEMPTS_ALLOWANCE:
        mark_failed(notification_id=notification_id, error="Gave up: delivery was interrupted too often.")
        return Status.FAILED

    failure: Exception | None = None
    with transaction.atomic():
        _hold_for_sending([notification_id])  # (again: the first hold ended with its commit)
        notification = Notification.objects.filter(pk=notification_id).first()
        if notification is None or notification.status != Status.QUEUED:
            return notification.status if notification else None
        try:
            _email(notification).send()
        except Exception as exc:  # any failure of the backend (or of the attachment's storage)
            failure = exc
        else:
            notification.status, notification.sent_at, notification.error = Status.SENT, timezone.now(), ""
            _record_sending([notification], [])
            realtime.push_on_commit(notification)
            transaction.on_commit(metrics.SENT.inc)
    if failure is not None:
        error = f"{type(failure).__name__}: {failure}"[:2000]
        Notification.objects.filter(pk=notification_id).update(error=error)
        raise DeliveryFailed(error) from failure
    return Status.SENT


def mark_failed(*, notification_id: int, error: str) -> None:
    with transaction.atomic():
        updated = Notification.objects.filter(pk=notification_id, status=Status.QUEUED).update(
            status=Status.FAILED, error=error[:2000]
        )
        if updated:
            realtime.push_on_commit(Notification.objects.get(pk=notification_id))
            transaction.on_commit(metrics.FAILED.inc)


def resend(*, notification_id: int) -> bool:
    """Queues a failed notification again (an admin's action). False: it was not failed (any more)."""
    with transaction.atomic():
        updated = Notification.objects.filter(pk=notification_id, status=Status.FAILED).update(
            status=Status.QUEUED, attempts=0, error=""
        )
        if updated:
            outbox.enqueue(SEND_TASK, notification_id=notification_id)
            realtime.push_on_commit(Notification.objects.get(pk=notification_id))
    return bool(updated)


def _email(notification: Notification) -> EmailMessage:
    """The email of a notification, from what its row holds (a resend sends the same email): the
    text, an HTML twin with the check-in code's QR code inline when it has a code, the stored
    attachment, and its calendar file."""
    message = emails.EmailWithInlineImages(
        subject=notification.subject,
        body=notification.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.to_email],
        headers={"X-Notification-ID": str(notification.pk)},
    )
    if notification.checkin_code:
        # Stable per notification (no random part): a resend is byte for byte the same email.
        cid = f"checkin-{notification.pk}@{calendar.uid_domain()}"
        message.inline_images = [(cid, emails.qr_png(notification.checkin_code))]
        html = emails.html_body(
            notification.body,
            checkin_code=emails.display_checkin_code(notification.checkin_code),
            image_cid=cid,
        )
        message.attach_alternative(html, "text/html")
    if notification.calendar:
        message.attach(emails.calendar_part(notification.calendar, calendar.method_of(notification.calendar)))
    if notification.attachment:
        with default_storage.open(notification.attachment, "rb") as stored:
            message.attach(notification.attachment_name or "attachment", stored.read(), "application/json")
    return message
