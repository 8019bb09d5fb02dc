"""WebSocket plumbing: JWT authentication from `?token=` and the base consumer of the platform."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth import get_user_model
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings

log = logging.getLogger(__name__)

# Close codes (the 4000s are the application's own; 1011: the server failed, try again later).
CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_SERVER_ERROR = 1011


@database_sync_to_async
def _user_for(raw_token: str) -> Any:
    access_token = api_settings.AUTH_TOKEN_CLASSES[0]  # the access token class the settings name
    try:
        token = access_token(raw_token)
    except TokenError:
        return None
    user_id = token.get(api_settings.USER_ID_CLAIM)
    # The account must still exist and be active: a deleted user's token opens nothing.
    return get_user_model()._default_manager.filter(pk=user_id, is_active=True).first()


class TokenQueryAuthMiddleware:
    """Puts the account of `?token=<access JWT>` in scope["user"] (None when missing or invalid)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        query = parse_qs(scope.get("query_string", b"").decode())
        raw_token = (query.get("token") or [""])[0]
        scope = dict(scope, user=await _user_for(raw_token) if raw_token else None)
        return await self.app(scope, receive, send)


class PlatformConsumer(AsyncJsonWebsocketConsumer):
    """Accepts, then closes with 4401 without a valid token (closing before accepting would make
    the server answer the handshake with HTTP 403, and the client would never see the code).
    Sockets are read-only: anything a client sends gets an error message, never a crash."""

    groups: list[str] = []

    async def connect(self) -> None:
        await self.accept()
        if self.scope.get("user") is None:
            await self.close(code=CLOSE_NOT_AUTHENTICATED)
            return
        await self.on_authenticated(self.scope["user"])

    async def on_authenticated(self, user: Any) -> None:
        raise NotImplementedError

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        await self.send_json({"type": "error", "detail": "This socket only sends; messages are ignored."})

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return json.dumps(content, default=str)


class UnknownPathConsumer(AsyncJsonWebsocketConsumer):
    """Every other `/ws/` path (the router's last route): accepted, then closed with 4404, as an
    unknown event's socket is. Without it the router raised on an unknown path and the server
    answered the handshake with HTTP 500."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND)
