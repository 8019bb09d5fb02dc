"""Broadcasts to WebSocket groups, from synchronous code, after commit, never failing the caller."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)


def broadcast_on_commit(group: str, message: dict[str, Any]) -> None:
    """Sends `message` to the group once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: broadcast(group, message))


def broadcast(group: str, message: dict[str, Any]) -> None:
    """Sends now; a channel layer that is down or slow costs at most BROADCAST_TIMEOUT_SECONDS."""
    try:
        async_to_sync(_send)(group, message)
    except Exception:
        log.warning("broadcast to %s failed", group, exc_info=True)


async def _send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await asyncio.wait_for(layer.group_send(group, message), settings.BROADCAST_TIMEOUT_SECONDS)
