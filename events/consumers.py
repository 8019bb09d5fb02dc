from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from config.websockets import CLOSE_NOT_FOUND, PlatformConsumer
from events import realtime


class EventSeatsConsumer(PlatformConsumer):
    """`/ws/events/{id}/`: the event's seats on connect, then after every committed change."""

    group = ""

    async def on_authenticated(self, user: Any) -> None:
        event_id = self.scope["url_route"]["kwargs"]["event_id"]
        # Join before reading: a change committed meanwhile is then sent after the first message.
        self.group = realtime.seats_group(event_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        seats = await database_sync_to_async(realtime.current_seats)(event_id)
        if seats is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.send_json(seats)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def event_seats(self, message: dict[str, Any]) -> None:
        await self.send_json(message)
