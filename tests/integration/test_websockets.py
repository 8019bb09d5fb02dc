"""The WebSocket consumers through Channels' WebsocketCommunicator (the ASGI app in this process)."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from config.asgi import application
from events import services
from notifications.models import Notification
from tests.conftest import client_for
from tests.factories import EventFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def run(scenario):
    async_to_sync(scenario)()


def socket(path, user=None, token=None):
    if user is not None:
        token = str(AccessToken.for_user(user))
    return WebsocketCommunicator(application, path + (f"?token={token}" if token else ""))


async def closed_with(communicator):
    connected, _ = await communicator.connect()
    assert connected  # accepted first, so that the client sees the close code
    output = await communicator.receive_output(timeout=5)
    assert output["type"] == "websocket.close"
    return output["code"]


@pytest.mark.parametrize("path", ["/ws/events/1/", "/ws/notifications/"])
def test_sockets_need_a_valid_token(participant, path):
    async def scenario():
        assert await closed_with(socket(path)) == 4401
        assert await closed_with(socket(path, token="not-a-jwt")) == 4401
        refresh_as_access = str(AccessToken.for_user(participant))[:-2] + "xx"
        assert await closed_with(socket(path, token=refresh_as_access)) == 4401

    run(scenario)


def test_a_deleted_accounts_token_is_rejected(event):
    user = UserFactory()
    token = str(AccessToken.for_user(user))
    user.delete()

    async def scenario():
        assert await closed_with(socket(f"/ws/events/{event.pk}/", token=token)) == 4401

    run(scenario)


def test_unknown_event_closes_4404(participant):
    async def scenario():
        assert await closed_with(socket("/ws/events/424242/", participant)) == 4404

    run(scenario)


def test_seats_on_connect_and_after_each_change(participant, admin):
    event = EventFactory(capacity=3)
    other = UserFactory()

    async def scenario():
        watcher = socket(f"/ws/events/{event.pk}/", participant)
        assert (await watcher.connect())[0]
        first = await watcher.receive_json_from(timeout=5)
        assert first == {
            "type": "event.seats",
            "event": event.pk,
            "capacity": 3,
            "enrolled": 0,
            "seats_left": 3,
        }

        await database_sync_to_async(services.enroll)(event_id=event.pk, participant_id=other.pk)
        assert (await watcher.receive_json_from(timeout=5))["seats_left"] == 2
        await database_sync_to_async(services.cancel_enrollment)(event_id=event.pk, participant_id=other.pk)
        assert (await watcher.receive_json_from(timeout=5))["seats_left"] == 3
        await database_sync_to_async(services.update_event)(event_id=event.pk, capacity=5)
        assert await watcher.receive_json_from(timeout=5) == {
            "type": "event.seats",
            "event": event.pk,
            "capacity": 5,
            "enrolled": 0,
            "seats_left": 5,
        }
        # A refused enrollment changes nothing and says nothing.
        await database_sync_to_async(services.update_event)(event_id=event.pk, title="Renamed")
        assert (await watcher.receive_json_from(timeout=5))["seats_left"] == 5
        assert await watcher.receive_nothing(timeout=0.3)
        await watcher.disconnect()

    run(scenario)


def test_client_messages_get_an_error_and_never_crash_the_socket(participant):
    event = EventFactory()

    async def scenario():
        watcher = socket(f"/ws/events/{event.pk}/", participant)
        await watcher.connect()
        await watcher.receive_json_from(timeout=5)
        for junk in ("{not json", '{"type": "enroll"}', " "):
            await watcher.send_to(text_data=junk)
            assert (await watcher.receive_json_from(timeout=5))["type"] == "error"
        await watcher.send_to(bytes_data=b"\x00\x01")
        assert (await watcher.receive_json_from(timeout=5))["type"] == "error"
        # Still subscribed.
        await database_sync_to_async(services.enroll)(event_id=event.pk, participant_id=participant.pk)
        assert (await watcher.receive_json_from(timeout=5))["seats_left"] == event.capacity - 1
        await watcher.disconnect()

    run(scenario)


def test_notifications_reach_their_owner_only(participant):
    event = EventFactory(title="Town hall")
    stranger = UserFactory()

    async def scenario():
        mine = socket("/ws/notifications/", participant)
        theirs = socket("/ws/notifications/", stranger)
        assert (await mine.connect())[0] and (await theirs.connect())[0]
        await database_sync_to_async(services.enroll)(event_id=event.pk, participant_id=participant.pk)
        created = await mine.receive_json_from(timeout=5)
        sent = await mine.receive_json_from(timeout=5)  # tasks run in-process: sent at once
        assert created["type"] == sent["type"] == "notification"
        assert (created["notification"]["status"], sent["notification"]["status"]) == ("queued", "sent")
        assert sent["notification"]["subject"] == "You are enrolled: Town hall"
        assert await theirs.receive_nothing(timeout=0.3)
        await mine.disconnect()
        await theirs.disconnect()
        return sent["notification"]

    pushed = async_to_sync(scenario)()
    listed = client_for(participant).get("/api/v1/me/notifications/").json()["results"][0]
    assert pushed == listed  # the socket's item is the API's item
    assert Notification.objects.get().status == "sent"


def test_broadcasts_never_fail_the_request_when_the_layer_is_down(participant_api, settings, monkeypatch):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": "redis://127.0.0.1:1/0", "socket_connect_timeout": 0.2}]},
        }
    }
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    from config import realtime

    attempts = []
    send = realtime._send

    async def counting_send(*args):
        attempts.append(args)
        await send(*args)

    monkeypatch.setattr(realtime, "_send", counting_send)
    try:
        event = EventFactory()
        assert participant_api.post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201
        assert participant_api.get(f"/api/v1/events/{event.pk}/").json()["seats_left"] == event.capacity - 1
        assert len(attempts) >= 1
        # Paused after the failure: later requests do not wait on the dead layer again.
        tried = len(attempts)
        assert client_for(UserFactory()).post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201
        assert len(attempts) == tried
    finally:
        channel_layers.backends.clear()
        realtime._paused_until = 0.0
