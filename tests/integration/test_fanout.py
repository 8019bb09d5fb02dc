"""The in-process fan-out of seat counts (config/fanout.py): merged under load with the newest
last, corrected from the database when a stale count comes late, and nothing left in Redis when
every socket goes at once."""

import asyncio
import json
import os

import pytest
import redis
import websockets
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connections
from rest_framework_simplejwt.tokens import AccessToken

from config import fanout
from config.asgi import application
from events import realtime, services
from events.models import Event
from notifications.realtime import user_group
from tests.factories import EventFactory, UserFactory
from tests.helpers import asgi_server, needs_service, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def token(user):
    return str(AccessToken.for_user(user))


def seats_socket(event, user):
    return WebsocketCommunicator(application, f"/ws/events/{event.pk}/?token={token(user)}")


def test_a_slow_socket_gets_the_newest_count_not_every_count():
    """While a send is in flight, newer states replace the one waiting: no queue grows."""

    async def scenario():
        sent = []
        gate = asyncio.Event()
        gate.set()

        async def send(text):
            sent.append(json.loads(text)["enrolled"])
            await gate.wait()

        watcher = fanout.Watcher(send)
        await watcher.start({"enrolled": 0})
        gate.clear()  # the next send hangs, like one to a client that does not read
        watcher.offer({"enrolled": 1}, json.dumps({"enrolled": 1}))
        await asyncio.sleep(0.05)
        for enrolled in range(2, 51):
            watcher.offer({"enrolled": enrolled}, json.dumps({"enrolled": enrolled}))
        gate.set()
        async with asyncio.timeout(5):
            while sent[-1] != 50:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        watcher.stop()
        return sent

    assert asyncio.run(scenario()) == [0, 1, 50]


def test_a_burst_of_counts_reaches_a_socket_merged_with_the_newest_last(participant):
    event = EventFactory(capacity=100)
    group = realtime.seats_group(event.pk)

    async def scenario():
        watcher = seats_socket(event, participant)
        assert (await watcher.connect())[0]
        assert (await watcher.receive_json_from(timeout=5))["enrolled"] == 0
        # The database says 50, as it would after the burst (the fan-out re-reads it later).
        await database_sync_to_async(Event.objects.filter(pk=event.pk).update)(enrolled_count=50)
        layer = get_channel_layer()
        for enrolled in range(1, 51):
            state = realtime.seats_message(event_id=event.pk, capacity=100, enrolled=enrolled)
            await layer.group_send(group, fanout.state_message(group, state))
        received = []
        while not received or received[-1]["enrolled"] != 50:
            received.append(await watcher.receive_json_from(timeout=5))
        # Nothing more: not the counts merged away, and the re-read finds nothing to correct.
        assert await watcher.receive_nothing(timeout=1.0)
        await watcher.disconnect()
        return [message["enrolled"] for message in received]

    counts = async_to_sync(scenario)()
    assert counts[-1] == 50
    assert len(counts) < 50  # merged
    assert counts == sorted(counts)  # never an older count after a newer one


def test_a_stale_count_that_comes_late_is_corrected_from_the_database(participant):
    """Two web processes can publish in the opposite order of their commits: the newest wins."""
    event = EventFactory(capacity=10)
    other = UserFactory()
    group = realtime.seats_group(event.pk)

    async def scenario():
        watcher = seats_socket(event, participant)
        assert (await watcher.connect())[0]
        assert (await watcher.receive_json_from(timeout=5))["enrolled"] == 0
        await database_sync_to_async(services.enroll)(event_id=event.pk, participant_id=other.pk)
        assert (await watcher.receive_json_from(timeout=5))["enrolled"] == 1
        stale = realtime.seats_message(event_id=event.pk, capacity=10, enrolled=0)
        await get_channel_layer().group_send(group, fanout.state_message(group, stale))
        assert (await watcher.receive_json_from(timeout=5))["enrolled"] == 0
        corrected = await watcher.receive_json_from(timeout=5)
        await watcher.disconnect()
        return corrected

    assert async_to_sync(scenario)() == realtime.seats_message(event_id=event.pk, capacity=10, enrolled=1)


def test_a_lost_message_is_made_up_for_by_the_periodic_re_read(participant):
    """Redis pub/sub delivers at most once: a change whose message never came still arrives."""
    event = EventFactory(capacity=10)

    async def scenario():
        fanout.hub().resync_interval = 0.5
        watcher = seats_socket(event, participant)
        assert (await watcher.connect())[0]
        assert (await watcher.receive_json_from(timeout=5))["enrolled"] == 0
        # Committed without a broadcast, as if its message had been lost.
        await database_sync_to_async(Event.objects.filter(pk=event.pk).update)(enrolled_count=3)
        resynced = await watcher.receive_json_from(timeout=5)
        await watcher.disconnect()
        return resynced

    assert async_to_sync(scenario)() == realtime.seats_message(event_id=event.pk, capacity=10, enrolled=3)


def test_the_process_leaves_the_group_with_its_last_socket(participant):
    """Sockets join and leave the process's fan-out; the channel layer sees one member."""
    event = EventFactory()
    group = realtime.seats_group(event.pk)

    async def scenario():
        hub = fanout.hub()
        sockets = [seats_socket(event, participant) for _ in range(50)]
        assert all(ok for ok, _ in await asyncio.gather(*(s.connect() for s in sockets)))
        await asyncio.gather(*(s.receive_json_from(timeout=30) for s in sockets))
        assert hub.watchers(group) == 50
        assert group in hub.joined and hub.channel is not None
        await asyncio.gather(*(s.disconnect() for s in sockets[:49]))
        assert hub.watchers(group) == 1 and group in hub.joined  # still one socket watching
        await sockets[49].disconnect()
        return hub.watchers(group), group in hub.joined, hub.channel, hub.receiver

    assert async_to_sync(scenario)() == (0, False, None, None)


# --- A real server, real clients, Redis ------------------------------------------------------------


def enroll_and_close(event_id, participant_id):
    """In a thread of its own, which must not keep a connection to the test database open."""
    try:
        services.enroll(event_id=event_id, participant_id=participant_id)
    finally:
        connections.close_all()


def numsub(client, channel):
    return dict(client.pubsub_numsub(channel)).get(channel.encode(), 0)


@needs_service("REDIS_URL")
def test_a_disconnect_storm_leaves_no_subscription_behind(tmp_path):
    """Hundreds of seat sockets and notification sockets on a real server close at once (a deploy,
    a network blip): the server must leave no group membership or subscription in Redis, log no
    error, and have held one subscription per event, not one per socket."""
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"].startswith("channels_redis.")
    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"].get("prefix", "asgi")
    event = EventFactory(capacity=1000)
    watcher, enrollee = UserFactory(), UserFactory()
    readers = UserFactory.create_batch(40)
    seats_channel = f"{prefix}__group__{realtime.seats_group(event.pk)}"
    user_channels = [f"{prefix}__group__{user_group(user.pk)}" for user in readers]
    client = redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=5)
    before = set(client.pubsub_channels(f"{prefix}*"))

    with asgi_server(tmp_path, CELERY_BROKER_URL="") as base:
        ws_base = base.replace("http", "ws", 1)

        async def scenario():
            seat_url = f"{ws_base}/ws/events/{event.pk}/?token={token(watcher)}"
            seats = await asyncio.gather(*(websockets.connect(seat_url) for _ in range(300)))
            firsts = await asyncio.gather(*(asyncio.wait_for(ws.recv(), 30) for ws in seats))
            assert {json.loads(first)["enrolled"] for first in firsts} == {0}
            notes = await asyncio.gather(
                *(websockets.connect(f"{ws_base}/ws/notifications/?token={token(u)}") for u in readers)
            )
            async with asyncio.timeout(15):  # notification sockets subscribe without a first message
                while not all(numsub(client, channel) == 1 for channel in user_channels):
                    await asyncio.sleep(0.1)
            # One subscription for the 300 seat sockets: the server's, not one per socket.
            assert numsub(client, seats_channel) == 1
            # A change committed here (another process) reaches every socket.
            await asyncio.to_thread(enroll_and_close, event.pk, enrollee.pk)
            updates = await asyncio.gather(*(asyncio.wait_for(ws.recv(), 30) for ws in seats))
            assert {json.loads(update)["enrolled"] for update in updates} == {1}
            await asyncio.gather(*(ws.close() for ws in seats + notes))

        asyncio.run(scenario())

        def nothing_left():
            return (
                numsub(client, seats_channel) == 0
                and all(numsub(client, channel) == 0 for channel in user_channels)
                and not set(client.pubsub_channels(f"{prefix}*")) - before
            )

        wait_until(nothing_left, timeout=20)
        log = (tmp_path / "server.log").read_text()
    client.close()
    assert "ERROR" not in log and "Traceback" not in log, log[-3000:]
