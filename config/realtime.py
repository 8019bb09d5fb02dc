"""Broadcasts to WebSocket groups, from synchronous code, after commit, never failing the caller."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)

# After a failed broadcast, this process skips broadcasting until then (monotonic time): with the
# channel layer down, only the first request pays the timeout. Live updates are best effort: a
# client that reconnects gets the current seats first.
_paused_until = 0.0


def broadcast_on_commit(group: str, message: dict[str, Any]) -> None:
    """Sends `message` to the group once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: broadcast(group, message))


def broadcast(group: str, message: dict[str, Any]) -> None:
    """Sends now; a channel layer that is down or slow costs at most BROADCAST_TIMEOUT_SECONDS,
    once per BROADCAST_PAUSE_SECONDS."""
    global _paused_until
    if time.monotonic() < _paused_until:
        return
    try:
        async_to_sync(_send)(group, message)
    except Exception:
        _paused_until = time.monotonic() + settings.BROADCAST_PAUSE_SECONDS
        log.warning("broadcast to %s failed; pausing broadcasts", group, exc_info=True)


async def _send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await asyncio.wait_for(layer.group_send(group, message), settings.BROADCAST_TIMEOUT_SECONDS)
