"""No token or password reaches any log line of a real run."""

import asyncio
import json

import httpx
import pytest
import websockets
from rest_framework_simplejwt.tokens import RefreshToken

from config.redaction import redact
from tests.factories import PASSWORD, EventFactory, UserFactory
from tests.helpers import asgi_server

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_real_server_logs_no_token_and_no_password(tmp_path):
    event = EventFactory()
    user = UserFactory()
    with asgi_server(tmp_path, CELERY_BROKER_URL="", LOG_LEVEL="DEBUG") as base:
        with httpx.Client(base_url=base, timeout=30) as http:
            # (The test process hashes passwords with a test-only hasher the server does not have:
            # this sign-in fails, but its body, password included, goes through the whole stack.)
            http.post("/api/v1/auth/token/", json={"email": user.email, "password": PASSWORD})
            pair = RefreshToken.for_user(user)
            access, refresh = str(pair.access_token), str(pair)
            headers = {"Authorization": f"Bearer {access}"}
            assert http.post(f"/api/v1/events/{event.pk}/enrollments/", headers=headers).status_code == 201
            assert http.post("/api/v1/auth/token/refresh/", json={"refresh": refresh}).status_code == 200
            http.get(f"/api/v1/events/?token={access}", headers=headers)  # a token where none belongs

        async def sockets():
            ws_base = base.replace("http", "ws", 1)
            for path in (f"/ws/notifications/?token={access}", f"/ws/events/{event.pk}/?token={access}"):
                async with websockets.connect(ws_base + path) as ws:
                    if "events" in path:
                        await asyncio.wait_for(ws.recv(), 15)  # the seats: the socket is in
            async with websockets.connect(f"{ws_base}/ws/notifications/?token=not-a-token") as ws:
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 15)

        asyncio.run(sockets())
    log = (tmp_path / "server.log").read_text()
    assert "WebSocket /ws/notifications/" in log  # the handshakes were logged, redacted
    for secret in (access, refresh, PASSWORD, access.split(".")[1], "not-a-token"):
        assert secret not in log
    for line in log.splitlines():  # every JSON line stays JSON
        if line.startswith("{"):
            json.loads(line)


def test_redaction_of_query_parameters_and_bare_tokens():
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    assert redact(f'"WebSocket /ws/events/1/?token={token}" [accepted]') == (
        '"WebSocket /ws/events/1/?token=[redacted]" [accepted]'
    )
    assert redact(f"/x?a=1&password=hunter2&b=2 {token}") == "/x?a=1&password=[redacted]&b=2 [redacted]"
    assert redact("GET /api/v1/events/?page=2") == "GET /api/v1/events/?page=2"
