from __future__ import annotations

from typing import Any

from config.websockets import PlatformConsumer
from notifications import realtime


class NotificationsConsumer(PlatformConsumer):
    """`/ws/notifications/`: the signed-in user's notifications as they are created or change."""

    group = ""

    async def on_authenticated(self, user: Any) -> None:
        self.group = realtime.user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def notification(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "notification", "notification": message["notification"]})
