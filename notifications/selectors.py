from django.db.models import QuerySet

from notifications.models import Notification


def notifications_of(*, user_id: int) -> QuerySet[Notification]:
    """A user's own notifications, newest first."""
    return Notification.objects.filter(user_id=user_id).order_by("-created_at", "-id")
