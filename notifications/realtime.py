"""Live notifications: each account's WebSocket group and the item its sockets get."""

from __future__ import annotations

from typing import Any

from config import realtime
from notifications.api.serializers import NotificationSerializer
from notifications.models import Notification


def user_group(user_id: int) -> str:
    return f"user-notifications-{user_id}"


# One serializer instance for every item: a ModelSerializer builds its fields once per instance,
# which a worker pushing a batch of notifications twice each would pay per push (what that costs:
# docs/architecture.md, "Measurements behind design choices").
_serializer = NotificationSerializer()


def item(notification: Notification) -> dict[str, Any]:
    """The notification exactly as GET /me/notifications/ shows it (same serializer)."""
    return dict(_serializer.to_representation(notification))


def push_on_commit(notification: Notification) -> None:
    """Sends the notification to its owner's sockets once the current transaction commits."""
    if notification.user_id is not None:
        realtime.broadcast_on_commit(
            user_group(notification.user_id), {"type": "notification", "notification": item(notification)}
        )
