"""Live notifications: each account's WebSocket group and the item its sockets get."""

from __future__ import annotations

from typing import Any

from config import realtime
from notifications.models import Notification


def user_group(user_id: int) -> str:
    return f"user-notifications-{user_id}"


def item(notification: Notification) -> dict[str, Any]:
    """The notification as GET /me/notifications/ shows it."""
    return {
        "id": notification.pk,
        "kind": notification.kind,
        "subject": notification.subject,
        "body": notification.body,
        "status": notification.status,
        "created_at": notification.created_at.isoformat().replace("+00:00", "Z"),
        "sent_at": notification.sent_at.isoformat().replace("+00:00", "Z") if notification.sent_at else None,
        "event": notification.event_id,
    }


def push_on_commit(notification: Notification) -> None:
    """Sends the notification to its owner's sockets once the current transaction commits."""
    if notification.user_id is not None:
        realtime.broadcast_on_commit(
            user_group(notification.user_id), {"type": "notification", "notification": item(notification)}
        )
