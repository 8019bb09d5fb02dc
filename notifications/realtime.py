"""Live notifications: each account's WebSocket group and the item its sockets get."""

from __future__ import annotations

from typing import Any

from config import realtime
from notifications.api.serializers import NotificationSerializer
from notifications.models import Notification


def user_group(user_id: int) -> str:
    return f"user-notifications-{user_id}"


def item(notification: Notification) -> dict[str, Any]:
    """The notification exactly as GET /me/notifications/ shows it (same serializer)."""
    return dict(NotificationSerializer(notification).data)


def push_on_commit(notification: Notification) -> None:
    """Sends the notification to its owner's sockets once the current transaction commits."""
    if notification.user_id is not None:
        realtime.broadcast_on_commit(
            user_group(notification.user_id), {"type": "notification", "notification": item(notification)}
        )
