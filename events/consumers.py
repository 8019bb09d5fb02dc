from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from config import fanout
from config.websockets import CLOSE_NOT_FOUND, CLOSE_SERVER_ERROR, PlatformConsumer, log
from events import realtime


class EventSeatsConsumer(PlatformConsumer):
    """`/ws/events/{id}/`: the event's seats on connect, then after committed changes (merged
    under load, newest wins: the contract's WebSockets section).

    The socket has no channel of its own on the channel layer: its process is the member of the
    event's group and fans the seats out to its sockets (config.fanout). Connecting and
    disconnecting cost the layer nothing, so a storm of either leaves nothing behind in Redis.
    """

    channel_layer_alias = fanout.NO_CHANNEL_LAYER
    group = ""
    watcher: fanout.Watcher | None = None

    async def on_authenticated(self, user: Any) -> None:
        event_id = self.scope["url_route"]["kwargs"]["event_id"]
        hub = fanout.hub()
        self.group = realtime.seats_group(event_id)
        self.watcher = fanout.Watcher(self._send_text)
        # Join before reading: a change committed meanwhile is then sent after the first message.
        try:
            await hub.join(self.group, self.watcher, refresh=lambda: _current_seats(event_id))
        except Exception:
            log.warning("could not watch %s", self.group, exc_info=True)
            self.watcher = None
            await self.close(code=CLOSE_SERVER_ERROR)
            return
        seats = await _current_seats(event_id)
        if seats is None:
            await self._leave()
            await self.close(code=CLOSE_NOT_FOUND)
            return
        try:
            await self.watcher.start(seats)
        except OSError:  # the client left before its first message (uvicorn's ClientDisconnected)
            await self._leave()

    async def disconnect(self, code: int) -> None:
        await self._leave()

    async def _leave(self) -> None:
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            await fanout.hub().leave(self.group, watcher)

    async def _send_text(self, text: str) -> None:
        await self.send(text_data=text)


async def _current_seats(event_id: int) -> dict[str, Any] | None:
    return await database_sync_to_async(realtime.current_seats)(event_id)
