"""A rush end to end over HTTP: many participants at once on a queued event, and a promotion from
the waiting list that its participant sees live."""

import asyncio
import contextlib
import json
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import websockets
from rest_framework_simplejwt.tokens import AccessToken

from events import services
from events.models import AdmissionRequest
from tests.factories import EventFactory, UserFactory
from tests.helpers import asgi_server, broker, wait_until
from tests.integration.test_admission import assert_decided_in_queue_order, consumer, stop
from tests.integration.test_concurrency import fire_together

pytestmark = pytest.mark.django_db(transaction=True)


def rush(requests, *, connections=40):
    """The requests as fast as `connections` clients can send them (a test server opens a database
    connection per client, and PostgreSQL's default allows 100 in all)."""
    with ThreadPoolExecutor(max_workers=connections) as pool:
        return list(pool.map(lambda request: fire_together([request])[0], requests))


def test_two_hundred_clients_rush_a_twenty_seat_queued_event(live_server, tmp_path):
    """Embedded default: decided in-process after each commit. Services pass: by two admission
    consumers on RabbitMQ at once (running two is safe), as deployed."""
    from config.celery import app as celery_app

    event = EventFactory(capacity=20, admission="queue")
    users = UserFactory.create_batch(200)
    url = f"{live_server.url}/api/v1/events/{event.pk}/enrollments/"
    broker_url = os.environ.get("CELERY_BROKER_URL")
    workers = [consumer(tmp_path, "first"), consumer(tmp_path, "second")] if broker_url else []
    try:
        with broker(broker_url) if broker_url else contextlib.nullcontext():
            if broker_url:
                celery_app.control.purge()
            results = Counter(rush([("POST", url, str(AccessToken.for_user(u))) for u in users]))
            assert results == {(202, None): 200}
            assert AdmissionRequest.objects.filter(event=event).count() == 200
            wait_until(
                lambda: not AdmissionRequest.objects.filter(event=event, status="pending").exists(),
                timeout=120,
            )
    finally:
        for worker in workers:
            stop(worker)
    assert_decided_in_queue_order(event, 20)
    event.refresh_from_db()
    assert (event.enrolled_count, event.waitlist_count) == (20, 180)
    # Each participant reads the outcome; the waiting list's positions are 1..180 in queue order.
    statuses = Counter()
    positions = []
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        for request in (
            AdmissionRequest.objects.filter(event=event)
            .order_by("queued_at", "id")
            .select_related("participant")
        ):
            token = str(AccessToken.for_user(request.participant))
            body = http.get(
                f"/api/v1/events/{event.pk}/enrollments/me/", headers={"Authorization": f"Bearer {token}"}
            ).json()
            statuses[body["status"]] += 1
            if body["status"] == "waitlisted":
                positions.append(body["position"])
    assert statuses == {"confirmed": 20, "waitlisted": 180}
    assert positions == list(range(1, 181))


def test_a_cancellation_promotes_the_first_waiting_who_sees_it_live(tmp_path):
    event = EventFactory(capacity=1, title="Launch party")
    holder, first, second = UserFactory.create_batch(3)
    services.enroll(event_id=event.pk, participant_id=holder.pk)
    services.join_waitlist(event_id=event.pk, participant_id=first.pk)
    services.join_waitlist(event_id=event.pk, participant_id=second.pk)
    with asgi_server(tmp_path, CELERY_BROKER_URL="") as base:
        ws_url = base.replace("http", "ws", 1) + f"/ws/notifications/?token={AccessToken.for_user(first)}"

        async def scenario():
            async with websockets.connect(ws_url) as ws, httpx.AsyncClient(base_url=base, timeout=30) as http:
                response = await http.delete(
                    f"/api/v1/events/{event.pk}/enrollments/me/",
                    headers={"Authorization": f"Bearer {AccessToken.for_user(holder)}"},
                )
                assert response.status_code == 204
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 15))
                    assert message["type"] == "notification"
                    if message["notification"]["kind"] == "waitlist_promoted":
                        break
                assert message["notification"]["event"] == event.pk
                assert "Launch party" in message["notification"]["subject"]
                status = await http.get(
                    f"/api/v1/events/{event.pk}/enrollments/me/",
                    headers={"Authorization": f"Bearer {AccessToken.for_user(first)}"},
                )
                assert status.json()["status"] == "confirmed"

        asyncio.run(scenario())
