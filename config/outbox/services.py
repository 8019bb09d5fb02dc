from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from prometheus_client import Counter

from config.celery import app as celery_app
from config.outbox.models import OutboxMessage

log = logging.getLogger(__name__)

PUBLISHED = Counter("outbox_published", "Outbox messages published (by web processes or the relay).")

# Monotonic time before which this process leaves publishing to the relay (after a failed publish).
_inline_paused_until = 0.0


def enqueue(task: str, **kwargs: Any) -> OutboxMessage:
    """Records a task in the current transaction; it is published once that transaction commits."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("enqueue() belongs inside the transaction of the change it follows")
    message = OutboxMessage.objects.create(task=task, kwargs=kwargs)
    transaction.on_commit(lambda: publish_after_commit(message.pk))
    return message


def publish_after_commit(message_id: int) -> None:
    """The web process's attempt right after commit. Never raises: the relay is the safety net."""
    global _inline_paused_until
    if time.monotonic() < _inline_paused_until:
        return
    try:
        publish(message_id)
    except Exception:
        _inline_paused_until = time.monotonic() + settings.OUTBOX_INLINE_BACKOFF_SECONDS
        log.warning("outbox: publishing message %s failed; the relay will retry", message_id, exc_info=True)


def publish_pending(*, limit: int = 100) -> int:
    """Publishes up to `limit` pending messages, oldest first. Returns how many were published."""
    ids = list(
        OutboxMessage.objects.filter(published_at__isnull=True)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    published = 0
    for message_id in ids:
        if publish(message_id):
            published += 1
    return published


def publish(message_id: int) -> bool:
    """Publishes one message unless it is published already or being published by someone else.

    The row lock (SKIP LOCKED) lets the web process and any number of relays work side by side
    without publishing a message twice. Raises when the broker refuses; the row stays pending.
    """
    with transaction.atomic():
        message = (
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(pk=message_id, published_at__isnull=True)
            .first()
        )
        if message is None:
            return False
        try:
            _dispatch(message)
        except Exception as exc:
            # Recorded in this (committing) transaction; raised once it has committed.
            message.attempts += 1
            message.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            message.save(update_fields=["attempts", "last_error"])
            failure = exc
        else:
            message.published_at = timezone.now()
            message.save(update_fields=["published_at"])
            PUBLISHED.inc()
            return True
    raise failure


def _dispatch(message: OutboxMessage) -> None:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        # Embedded default: run the task here and now (its own failures are its own business).
        celery_app.tasks[message.task].apply(kwargs=message.kwargs)
        return
    # retry=False: fail at once when the broker is away instead of blocking the caller.
    celery_app.send_task(message.task, kwargs=message.kwargs, retry=False)
