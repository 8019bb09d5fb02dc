"""Broadcasts to WebSocket groups, from synchronous code, after commit, never failing the caller.

With the in-memory channel layer (the embedded default: one process serves the sockets) a
broadcast is sent at once on the server's own event loop. With a cross-process layer (Redis) it is
handed to this process's broadcaster thread, which keeps one event loop and its Redis connections
for the life of the process and sends in order: the caller neither waits for Redis nor pays for a
new event loop and connection per message (what that cost: docs/architecture.md, "Measurements
behind design choices").

Two kinds of broadcast:
- `broadcast(group, message)`: an event (a notification): every message is sent, in order, to
  the group's channels (one per socket).
- `broadcast_state(group, state)`: a state (an event's seats), fanned out to sockets by each
  WebSocket process itself (`config.fanout`): the group's members are processes, not sockets.
  Newest wins: a state still waiting for the broadcaster is replaced by a newer one of its group,
  and a process sends a group's state at most every STATE_INTERVAL_SECONDS (the embedded default,
  whose one process serves the sockets, sends every state at once).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.db import transaction

from config import fanout
from config.process_threads import ProcessThread

log = logging.getLogger(__name__)

# After a failed broadcast, this process skips broadcasting until then (monotonic time): with the
# channel layer down, requests pay nothing and the broadcaster does not pile up timeouts. Live
# updates are best effort: a client that reconnects gets the current seats first.
_paused_until = 0.0
# Messages waiting for the broadcaster beyond this are dropped (the layer cannot keep up or is down).
MAX_PENDING = 10_000
# A state group (an event's seats) is sent at most this often by one process (seconds): the contract
# lets an event's seat messages merge as long as watchers have the current count within 1 s.
STATE_INTERVAL_SECONDS = 0.1


def broadcast_on_commit(group: str, message: dict[str, Any]) -> None:
    """Sends `message` to the group once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: broadcast(group, message))


def broadcast(group: str, message: dict[str, Any], *, latest_only: bool = False) -> None:
    """Sends now (in-memory layer) or hands over to the broadcaster (other layers). Never raises.

    `latest_only`: each message supersedes the group's earlier ones (a state, not an event): while
    one is still waiting for the broadcaster, it is replaced, not queued.
    """
    if time.monotonic() < _paused_until:
        return
    try:
        if isinstance(get_channel_layer(), InMemoryChannelLayer):
            async_to_sync(_send)(group, message)
        else:
            _Broadcaster.instance().submit(group, message, latest_only)
    except Exception:
        _pause(group)


def broadcast_state(group: str, state: dict[str, Any]) -> None:
    """Sends `state` to the sockets watching `group` through `config.fanout` (newest wins)."""
    broadcast(group, fanout.state_message(group, state), latest_only=True)


def _pause(group: str) -> None:
    global _paused_until
    _paused_until = time.monotonic() + settings.BROADCAST_PAUSE_SECONDS
    log.warning("broadcast to %s failed; pausing broadcasts", group, exc_info=True)


async def _send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation.
        async with asyncio.timeout(settings.BROADCAST_TIMEOUT_SECONDS):
            await layer.group_send(group, message)


class _Broadcaster(ProcessThread):
    """One daemon thread per process running an event loop that sends queued broadcasts in order
    (made again in a forked child, whose copy of the parent's loop has no thread to run it).

    A state group is sent at most once per STATE_INTERVAL_SECONDS by this process: the first state
    after a quiet moment at once, then the newest of what was submitted meanwhile. In a rush every
    enrollment changes its event's seats; submitting a state while one of its group waits costs a
    dictionary update under a lock, with no wake-up of the loop, and one message on the layer
    carries them all (the WebSocket processes read the state again after each fan-out, so states
    of several web processes arriving out of order settle: config.fanout)."""

    thread_name = "broadcaster"
    _instance = None

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        # (group, message); the message is None for a state group: it is in self.latest.
        self.queue: asyncio.Queue[tuple[str, dict[str, Any] | None]] = asyncio.Queue(MAX_PENDING)
        # The newest state of each group waiting to be sent (written by submitters, popped by _drain).
        self.latest: dict[str, dict[str, Any]] = {}
        self.latest_lock = threading.Lock()
        # When each state group was last sent (monotonic; read and written on the loop only).
        self.state_sent_at: dict[str, float] = {}
        super().__init__()

    def submit(self, group: str, message: dict[str, Any], latest_only: bool = False) -> None:
        if not latest_only:
            self.loop.call_soon_threadsafe(self._enqueue, group, message)
            return
        with self.latest_lock:
            waiting = group in self.latest
            self.latest[group] = message
        if not waiting:  # else the state on its way will be this newer one
            self.loop.call_soon_threadsafe(self._schedule_state, group)

    def _schedule_state(self, group: str) -> None:
        sent_at = self.state_sent_at.get(group)
        wait = 0.0 if sent_at is None else sent_at + STATE_INTERVAL_SECONDS - time.monotonic()
        if wait > 0:
            self.loop.call_later(wait, self._enqueue, group, None)
        else:
            self._enqueue(group, None)

    def _enqueue(self, group: str, message: dict[str, Any] | None) -> None:
        try:
            self.queue.put_nowait((group, message))
        except asyncio.QueueFull:
            if message is None:
                with self.latest_lock:
                    self.latest.pop(group, None)
            log.warning("broadcast to %s dropped: %d messages already waiting", group, MAX_PENDING)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._drain())

    async def _drain(self) -> None:
        while True:
            group, message = await self.queue.get()
            if message is None:
                with self.latest_lock:
                    message = self.latest.pop(group)
                self.state_sent_at[group] = time.monotonic()
            if time.monotonic() < _paused_until:
                continue
            try:
                await _send(group, message)
            except Exception:
                _pause(group)
