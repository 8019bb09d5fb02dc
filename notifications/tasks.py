from celery import shared_task
from django.conf import settings

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
