"""Queueing and delivering notifications (emails through Django's email framework)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone

from config.outbox import services as outbox
from notifications import emails, metrics, realtime
from notifications.domain import Kind, Status
from notifications.models import Notification
from participants import selectors as participant_selectors

SEND_TASK = "notifications.send_notification"
# Attempts beyond the retries mean the worker died mid-send again and again: stop the loop.
CRASH_ATTEMPTS_ALLOWANCE = 3


class DeliveryFailed(Exception):
    """The email backend refused; the task retries with backoff."""


def event_context(event: Any) -> dict[str, str]:
    return {
        "title": event.title,
        "date": event.date.isoformat(),
        "time": event.time.strftime("%H:%M"),
        "location": event.location,
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
    account: Any = None,
    position: int | None = None,
) -> None:
    """Notifies one participant about `event`, in the caller's transaction (email and live push).

    `account`: the participant's account when the caller has it loaded (spares a query).
    `position`: the waiting-list position, for `waitlisted` (it goes into the email's context).
    """
    notify_participants(kind=kind, event=event, participants=[(participant_id, position)], account=account)


def notify_participants(
    *,
    kind: Kind,
    event: Any,
    participants: Sequence[tuple[int, int | None]],
    account: Any = None,
) -> None:
    """Notifies many participants about one event at once, in the caller's transaction.

    `participants`: `(participant_id, position)` pairs, `position` being the waiting-list
    position or None. Meant for a batch of decisions that commit together (e.g. a batch of
    admission decisions: `enrollment_confirmed` for some, `waitlisted` with positions for others,
    one call per kind). Each participant gets a notification of their own, exactly as with
    `notify_participant`.
    """
    if not participants:
        return
    wanted = {participant_id for participant_id, _ in participants}
    users = {}
    if account is not None and account.pk in wanted:
        users[account.pk] = account
    missing = wanted - set(users)
    if missing:
        users.update(
            (user.pk, user)
            for user in participant_selectors.accounts().only("email", "full_name").filter(pk__in=missing)
        )
    snapshot = event_context(event)
    for participant_id, position in participants:
        user = users.get(participant_id)
        if user is None:
            continue
        context: dict[str, Any] = {"full_name": user.full_name, "event": snapshot}
        if position is not None:
            context["position"] = position
        queue_email(kind=kind, to_email=user.email, user_id=user.pk, event_id=event.pk, context=context)


def deliver(*, notification_id: int) -> str | None:
    """Sends the notification's email unless it is already sent or failed. Idempotent.

    Returns the final status, or None when there is no such notification. Raises DeliveryFailed
    when the email backend fails (the notification stays queued, with the error recorded).
    """
    with transaction.atomic():
        # Count the attempt in its own commit, so that a worker dying mid-send leaves a trace.
        notification = Notification.objects.select_for_update().filter(pk=notification_id).first()
        if notification is None or notification.status != Status.QUEUED:
            return notification.status if notification else None
        notification.attempts += 1
        notification.save(update_fields=["attempts"])
    if notification.attempts > settings.NOTIFICATION_MAX_RETRIES + 1 + CRASH_ATTEMPTS_ALLOWANCE:
        mark_failed(notification_id=notification_id, error="Gave up: delivery was interrupted too often.")
        return Status.FAILED

    try:
        with transaction.atomic():
            # Under the row lock: a duplicate delivery waits here, then finds the email sent.
            notification = Notification.objects.select_for_update().get(pk=notification_id)
            if notification.status != Status.QUEUED:
                return notification.status
            _email(notification).send()
            notification.status = Status.SENT
            notification.sent_at = timezone.now()
            notification.error = ""
            notification.save(update_fields=["status", "sent_at", "error"])
            realtime.push_on_commit(notification)
            transaction.on_commit(metrics.SENT.inc)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        Notification.objects.filter(pk=notification_id).update(error=error)
        raise DeliveryFailed(error) from exc
    return Status.SENT


def mark_failed(*, notification_id: int, error: str) -> None:
    with transaction.atomic():
        updated = Notification.objects.filter(pk=notification_id, status=Status.QUEUED).update(
            status=Status.FAILED, error=error[:2000]
        )
        if updated:
            realtime.push_on_commit(Notification.objects.get(pk=notification_id))
            transaction.on_commit(metrics.FAILED.inc)


def resend(*, notification_id: int) -> None:
    """Queues a failed notification again (an admin's action)."""
    with transaction.atomic():
        updated = Notification.objects.filter(pk=notification_id, status=Status.FAILED).update(
            status=Status.QUEUED, attempts=0, error=""
        )
        if updated:
            outbox.enqueue(SEND_TASK, notification_id=notification_id)
            realtime.push_on_commit(Notification.objects.get(pk=notification_id))


def _email(notification: Notification) -> EmailMessage:
    message = EmailMessage(
        subject=notification.subject,
        body=notification.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.to_email],
        headers={"X-Notification-ID": str(notification.pk)},
    )
    if notification.attachment:
        with default_storage.open(notification.attachment, "rb") as stored:
            message.attach(notification.attachment_name or "attachment", stored.read(), "application/json")
    return message
