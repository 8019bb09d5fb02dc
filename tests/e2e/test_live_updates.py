"""Live updates end to end: a real server process (make run's uvicorn), real WebSocket clients."""

import asyncio
import contextlib
import json
import os

import httpx
import pytest
import websockets
from rest_framework_simplejwt.tokens import AccessToken

from notifications.models import Notification
from tests.factories import EventFactory, UserFactory
from tests.helpers import asgi_server, needs_service

pytestmark = pytest.mark.django_db(transaction=True)


def token(user):
    return str(AccessToken.for_user(user))


async def next_message(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), 15))


def test_two_watchers_see_a_third_participant_enroll(tmp_path):
    event = EventFactory(capacity=3)
    first, second, enrollee = UserFactory(), UserFactory(), UserFactory()
    with asgi_server(tmp_path, CELERY_BROKER_URL="") as base:
        ws_base = base.replace("http", "ws", 1) + f"/ws/events/{event.pk}/"

        async def scenario():
            async with (
                websockets.connect(f"{ws_base}?token={token(first)}") as a,
                websockets.connect(f"{ws_base}?token={token(second)}") as b,
            ):
                assert (await next_message(a))["seats_left"] == 3
                assert (await next_message(b))["seats_left"] == 3
                async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                    response = await http.post(
                        f"/api/v1/events/{event.pk}/enrollments/",
                        headers={"Authorization": f"Bearer {token(enrollee)}"},
                    )
                assert response.status_code == 201
                for watcher in (a, b):
                    assert await next_message(watcher) == {
                        "type": "event.seats",
                        "event": event.pk,
                        "capacity": 3,
                        "enrolled": 1,
                        "seats_left": 2,
                    }

        asyncio.run(scenario())


def test_a_real_client_sees_the_close_codes(tmp_path):
    user = UserFactory()
    with asgi_server(tmp_path, CELERY_BROKER_URL="") as base:
        ws_base = base.replace("http", "ws", 1)

        async def close_code(path):
            async with websockets.connect(ws_base + path) as ws:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 15)
                return closed.value.rcvd.code

        async def scenario():
            assert await close_code("/ws/notifications/") == 4401
            assert await close_code("/ws/events/1/?token=bad") == 4401
            assert await close_code(f"/ws/events/424242/?token={token(user)}") == 4404

        asyncio.run(scenario())


@needs_service("REDIS_URL")
@needs_service("CELERY_BROKER_URL")
def test_a_notification_sent_by_a_worker_reaches_the_users_socket(tmp_path, celery_worker):
    """Server, worker and socket in different places: only the Redis channel layer connects them."""
    event = EventFactory(title="Offsite")
    participant = UserFactory()
    with asgi_server(tmp_path, CELERY_BROKER_URL=os.environ["CELERY_BROKER_URL"]) as base:
        ws_url = base.replace("http", "ws", 1) + f"/ws/notifications/?token={token(participant)}"

        async def scenario():
            async with websockets.connect(ws_url) as ws:
                async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                    response = await http.post(
                        f"/api/v1/events/{event.pk}/enrollments/",
                        headers={"Authorization": f"Bearer {token(participant)}"},
                    )
                assert response.status_code == 201
                statuses = []
                while "sent" not in statuses:
                    message = await next_message(ws)
                    assert message["type"] == "notification"
                    assert message["notification"]["subject"] == "You are enrolled: Offsite"
                    statuses.append(message["notification"]["status"])
                return statuses

        assert asyncio.run(scenario()) == ["queued", "sent"]
    assert Notification.objects.get().status == "sent"


def test_after_a_burst_of_enrollments_a_watcher_ends_on_the_final_count(tmp_path):
    """Enrollments at the same moment: seat messages may merge, but the last one a watcher gets
    is the final count (the contract: newest wins, within a second of the last change)."""
    event = EventFactory(capacity=50)
    watcher = UserFactory()
    enrollees = UserFactory.create_batch(12)
    with asgi_server(tmp_path, CELERY_BROKER_URL="") as base:
        ws_url = base.replace("http", "ws", 1) + f"/ws/events/{event.pk}/?token={token(watcher)}"

        async def scenario():
            async with websockets.connect(ws_url) as ws:
                assert (await next_message(ws))["enrolled"] == 0
                async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                    answers = await asyncio.gather(
                        *(
                            http.post(
                                f"/api/v1/events/{event.pk}/enrollments/",
                                headers={"Authorization": f"Bearer {token(enrollee)}"},
                            )
                            for enrollee in enrollees
                        )
                    )
                assert [answer.status_code for answer in answers] == [201] * len(enrollees)
                counts = []
                # Every message until a quiet 1.5 s (the contract's bound is a second).
                with contextlib.suppress(TimeoutError):
                    while True:
                        counts.append(json.loads(await asyncio.wait_for(ws.recv(), 1.5))["enrolled"])
                return counts

        counts = asyncio.run(scenario())
    assert counts[-1] == len(enrollees)
