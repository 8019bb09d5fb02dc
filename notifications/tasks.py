from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError

from notifications import services
from notifications.domain import retry_delay

# A database that is away (restarting, failing over, unreachable): the same task succeeds once it
# is back. Other database errors (a value too long, a constraint) would fail every time.
DATABASE_AWAY = (OperationalError, InterfaceError)


def retry_while_database_away(task: Any, exc: Exception) -> NoReturn:
    """Raises the task's retry, with backoff, for as long as the database stays away: the broker
    keeps the message meanwhile, and acknowledging a failed task instead (acks_late does) lost its
    work for good (a notification left queued, a report left pending). In-process (the embedded
    default, where a retry runs at once) only NOTIFICATION_MAX_RETRIES times, then the error stands."""
    if task.request.is_eager and task.request.retries >= settings.NOTIFICATION_MAX_RETRIES:
        raise exc
    delay = retry_delay(task.request.retries, base_seconds=settings.NOTIFICATION_RETRY_BASE_SECONDS)
    raise task.retry(exc=exc, countdown=delay, max_retries=None) from exc


@shared_task(bind=True, name=services.SEND_TASK, max_retries=None)
def send_notification(self, notification_id: int) -> None:
    """Delivers one notification; retried with exponential backoff, then marked failed."""
    try:
        services.deliver(notification_id=notification_id)
    except DATABASE_AWAY as exc:
        retry_while_database_away(self, exc)
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
    except DATABASE_AWAY as exc:
        retry_while_database_away(self, exc)
    except DatabaseError as exc:
        # Another error of the database (a statement it refused, perhaps a moment's conflict): the
        # message is acknowledged after this task, and the notifications exist nowhere else yet
        # (the outbox row is published), so try again a few times before the error stands.
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
