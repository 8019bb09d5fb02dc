"""The WebSocket consumers through Channels' WebsocketCommunicator (the ASGI app in this process)."""

import asyncio
import threading
import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from config import fanout
from config.asgi import application
from events import realtime, services
from notifications.models import Notification
from tests.factories import EventFactory, UserFactory
from tests.helpers import client_for, needs_service, wait_until

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


@pytest.mark.parametrize(
    "path", ["/ws/events/-1/", "/ws/events/abc/", "/ws/notifications", "/ws/", "/elsewhere/"]
)
def test_an_unknown_path_closes_4404(path, participant):
    """The router used to raise on them: the server answered the handshake with HTTP 500."""

    async def scenario():
        assert await closed_with(socket(path, participant)) == 4404
        assert await closed_with(socket(path)) == 4404  # whoever asks

    run(scenario)


async def next_state(watcher, last):
    """The next seat state other than `last`. A web process merges an event's states (at most one
    per 100 ms, the newest), so a state may come again; the contract promises the current count
    within a second, not one message per change."""
    while True:
        state = await watcher.receive_json_from(timeout=5)
        if state != last:
            return state


def test_seats_on_connect_and_after_each_change(participant, admin):
    event = EventFactory(capacity=3)
    other = UserFactory()

    async def scenario():
        watcher = socket(f"/ws/events/{event.pk}/", participant)
        assert (await watcher.connect())[0]
        state = await watcher.receive_json_from(timeout=5)
        assert state == {
            "type": "event.seats",
            "event": event.pk,
            "capacity": 3,
            "enrolled": 0,
            "seats_left": 3,
        }

        await database_sync_to_async(services.enroll)(event_id=event.pk, participant_id=other.pk)
        state = await next_state(watcher, state)
        assert state["seats_left"] == 2
        await database_sync_to_async(services.cancel_enrollment)(event_id=event.pk, participant_id=other.pk)
        state = await next_state(watcher, state)
        assert state["seats_left"] == 3
        await database_sync_to_async(services.update_event)(event_id=event.pk, capacity=5)
        state = await next_state(watcher, state)
        assert state == {
            "type": "event.seats",
            "event": event.pk,
            "capacity": 5,
            "enrolled": 0,
            "seats_left": 5,
        }
        # An edit that keeps the seats sends them again (watchers resynchronise on every edit).
        await database_sync_to_async(services.update_event)(event_id=event.pk, title="Renamed")
        assert (await watcher.receive_json_from(timeout=5)) == state
        # A refused enrollment (the event is full) changes nothing and says nothing: the next
        # state the watcher gets is the next change, whatever time the refusal took.
        await database_sync_to_async(services.update_event)(event_id=event.pk, capacity=1)
        state = await next_state(watcher, state)
        assert state["seats_left"] == 1
        await database_sync_to_async(services.enroll)(event_id=event.pk, participant_id=other.pk)
        state = await next_state(watcher, state)
        assert state["seats_left"] == 0
        with pytest.raises(services.domain.EventFull):
            await database_sync_to_async(services.enroll)(event_id=event.pk, participant_id=participant.pk)
        await database_sync_to_async(services.update_event)(event_id=event.pk, capacity=4)
        assert (await next_state(watcher, state))["capacity"] == 4
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
        # The stranger's first message is their own notification, sent after the participant's:
        # had the participant's leaked to them, it would have come first (no waiting for nothing).
        await database_sync_to_async(services.enroll)(event_id=event.pk, participant_id=stranger.pk)
        first = await theirs.receive_json_from(timeout=5)
        assert first["notification"]["status"] == "queued"
        assert first["notification"]["id"] != created["notification"]["id"]
        assert first["notification"]["subject"] == "You are enrolled: Town hall"
        await mine.disconnect()
        await theirs.disconnect()
        return sent["notification"]

    pushed = async_to_sync(scenario)()
    listed = client_for(participant).get("/api/v1/me/notifications/").json()["results"][0]
    assert pushed == listed  # the socket's item is the API's item
    assert Notification.objects.get(user=participant).status == "sent"


def test_broadcasts_never_fail_the_request_when_the_layer_is_down(participant_api, settings, monkeypatch):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": "redis://127.0.0.1:1/0", "socket_connect_timeout": 0.2}]},
        }
    }
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    from config import realtime as broadcasting

    attempts = []
    send = broadcasting._send

    async def counting_send(*args):
        attempts.append(args)
        await send(*args)

    monkeypatch.setattr(broadcasting, "_send", counting_send)
    try:
        event = EventFactory()
        assert participant_api.post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201
        assert participant_api.get(f"/api/v1/events/{event.pk}/").json()["seats_left"] == event.capacity - 1
        # The failure happens off the request (the broadcaster thread) and pauses broadcasting.
        wait_until(lambda: attempts and broadcasting._paused_until > time.monotonic())
        tried = len(attempts)
        assert client_for(UserFactory()).post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201
        # Paused: broadcast() dropped this one in the request itself, before any thread could try
        # it (and the broadcaster drops what is queued while paused), so no wait is needed here.
        assert broadcasting._paused_until > time.monotonic()
        assert len(attempts) == tried  # nobody waits on the dead layer again
    finally:
        channel_layers.backends.clear()
        broadcasting._paused_until = 0.0


def test_a_storm_of_sockets_joins_and_leaves_cleanly(participant):
    """Hundreds of sockets connecting and closing at once (a deploy, a network blip): every one
    gets the seats, and once they are gone the process has left the event's group."""
    event = EventFactory()
    token = str(AccessToken.for_user(participant))
    group = realtime.seats_group(event.pk)
    count = 250

    async def scenario():
        watchers = [socket(f"/ws/events/{event.pk}/", token=token) for _ in range(count)]
        connected = await asyncio.gather(*(w.connect() for w in watchers))
        assert all(ok for ok, _ in connected)
        firsts = await asyncio.gather(*(w.receive_json_from(timeout=30) for w in watchers))
        assert {f["type"] for f in firsts} == {"event.seats"}
        await asyncio.gather(*(w.disconnect() for w in watchers))
        hub = fanout.hub()
        return hub.watchers(group), group in hub.joined

    assert async_to_sync(scenario)() == (0, False)  # nobody left behind in the group


@needs_service("REDIS_URL")
def test_an_idle_socket_stays_open_past_the_layers_blocking_timeout(participant):
    event = EventFactory(capacity=4)

    async def scenario():
        watcher = socket(f"/ws/events/{event.pk}/", participant)
        await watcher.connect()
        await watcher.receive_json_from(timeout=5)
        await asyncio.sleep(7)  # longer than the channel layer's 5 s blocking pop
        await database_sync_to_async(services.enroll)(event_id=event.pk, participant_id=participant.pk)
        assert (await watcher.receive_json_from(timeout=5))["seats_left"] == 3
        await watcher.disconnect()

    run(scenario)


@needs_service("REDIS_URL")
def test_consumers_stop_when_cancelled_while_the_layer_talks_to_redis():
    """A consumer cancelled in the middle of a channel-layer command must still finish. Each
    consumer closes (4401) and is cancelled at once, while its receive is still setting up its
    Redis connection: with a client-side socket timeout, redis-py writes through
    asyncio.wait_for, which on Python 3.11 can swallow the cancellation and leave the consumer
    (and the server that waits for it) running for ever. The scenario runs on its own loop in a
    daemon thread, so a hang fails this test instead of hanging the test process."""

    async def one_round():
        # Notification sockets: each has a channel of its own on the layer (seat sockets have none).
        sockets = [socket("/ws/notifications/") for _ in range(3)]
        for communicator in sockets:
            await closed_with(communicator)
        pending = [communicator.future for communicator in sockets]
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    finished = []

    def rounds():
        loop = asyncio.new_event_loop()
        for _ in range(40):
            loop.run_until_complete(one_round())
        finished.append(True)

    thread = threading.Thread(target=rounds, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert finished, "a cancelled consumer never finished"
