from collections.abc import Mapping, Sequence
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError

from notifications import services
from notifications.domain import retry_delay


@shared_task(bind=True, name=services.SEND_TASK, max_retries=None)
def send_notification(self, notification_id: int) -> None:
    """Delivers one notification; retried with exponential backoff, then marked failed."""
    try:
        services.deliver(notification_id=notification_id)
    except services.DeliveryFailed as exc:
        if self.request.retries >= settings.NOTIFICATION_MAX_RETRIES:
            services.mark_failed(notification_id=notification_id, error=str(exc))
            return
        delay = retry_delay(self.request.retries, base_seconds=settings.NOTIFICATION_RETRY_BASE_SECONDS)
        raise self.retry(exc=exc, countdown=delay) from exc


# At most 50 items per broker message: a backlog (the relay after an outage) is shared by the
# worker's processes instead of landing in one task.
@shared_task(bind=True, name=services.NOTIFY_TASK, max_retries=None, batched=True, batch_max_items=50)
def notify(self, items: Sequence[Mapping[str, Any]]) -> None:
    """Creates, pushes and sends the notifications of many outbox messages (one per item).

    Items whose emails failed are retried (only they) with exponential backoff; after the last
    retry their notifications are marked failed.
    """
    try:
        failures = services.notify(items)
    except DatabaseError as exc:
        # The database away for a moment: the message is acknowledged after this task, and the
        # notifications exist nowhere else yet (the outbox row is published), so try again later.
        if self.request.retries >= settings.NOTIFICATION_MAX_RETRIES:
            raise
        delay = retry_delay(self.request.retries, base_seconds=settings.NOTIFICATION_RETRY_BASE_SECONDS)
        raise self.retry(exc=exc, countdown=delay) from exc
    if not failures:
        return
    if self.request.retries >= settings.NOTIFICATION_MAX_RETRIES:
        for failure in failures:
            services.mark_failed(notification_id=failure.notification_id, error=failure.error)
        return
    retry_keys = {failure.item_key for failure in failures}
    delay = retry_delay(self.request.retries, base_seconds=settings.NOTIFICATION_RETRY_BASE_SECONDS)
    raise self.retry(
        kwargs={"items": [item for item in items if item["key"] in retry_keys]},
        exc=services.DeliveryFailed(failures[0].error),
        countdown=delay,
    )
