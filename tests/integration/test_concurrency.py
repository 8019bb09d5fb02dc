"""Simultaneous enrollments through real HTTP: each request in its own server thread and connection.

Runs against the configured database: SQLite in the embedded pass, PostgreSQL in the services pass.
"""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from rest_framework_simplejwt.tokens import AccessToken

from events import services
from events.models import Enrollment
from tests.factories import EventFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def fire_together(requests):
    """Sends every (method, url, token[, JSON body]) request at the same moment (no token: no
    Authorization header); returns (status, code) pairs."""
    barrier = threading.Barrier(len(requests))

    def send(request):
        method, url, token, *body = request
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with httpx.Client(timeout=60) as http:
            barrier.wait()
            response = http.request(method, url, headers=headers, json=body[0] if body else None)
        code = response.json().get("code") if response.status_code >= 400 else None
        return response.status_code, code

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(send, requests))


def assert_consistent(event):
    event.refresh_from_db()
    rows = Enrollment.objects.filter(event=event).count()
    assert event.enrolled_count == rows <= event.capacity
    return rows


def test_sixty_simultaneous_enrollments_fill_ten_seats_exactly(live_server):
    event = EventFactory(capacity=10)
    users = UserFactory.create_batch(60)
    url = f"{live_server.url}/api/v1/events/{event.pk}/enrollments/"
    results = fire_together([("POST", url, str(AccessToken.for_user(u))) for u in users])
    assert Counter(results) == {(201, None): 10, (409, "event_full"): 50}
    assert assert_consistent(event) == 10


def test_interleaved_cancels_and_enrollments_never_overbook(live_server):
    event = EventFactory(capacity=10)
    holders, newcomers = UserFactory.create_batch(10), UserFactory.create_batch(40)
    for user in holders:
        services.enroll(event_id=event.pk, participant_id=user.pk)
    base = f"{live_server.url}/api/v1/events/{event.pk}/enrollments/"
    requests = [("DELETE", base + "me/", str(AccessToken.for_user(u))) for u in holders]
    requests += [("POST", base, str(AccessToken.for_user(u))) for u in newcomers]
    results = Counter(fire_together(requests))
    assert results[(204, None)] == 10  # every holder could cancel
    assert set(results) <= {(204, None), (201, None), (409, "event_full")}
    # Every newcomer got an answer; each seat freed went to exactly one of them (or stayed free).
    assert results[(201, None)] + results[(409, "event_full")] == 40
    assert assert_consistent(event) == results[(201, None)]
    assert 0 < results[(201, None)] <= 10


def test_the_same_participant_enrolling_twenty_times_at_once_gets_one_seat(live_server):
    event = EventFactory(capacity=10)
    token = str(AccessToken.for_user(UserFactory()))
    url = f"{live_server.url}/api/v1/events/{event.pk}/enrollments/"
    results = Counter(fire_together([("POST", url, token)] * 20))
    assert results == {(201, None): 1, (409, "already_enrolled"): 19}
    assert assert_consistent(event) == 1


def test_capacity_lowered_while_enrollments_happen(live_server):
    """The capacity edit locks the event row: it and the enrollments take turns, so either the
    edit sees the seats taken (and is refused below them) or the enrollments see the new capacity."""
    event = EventFactory(capacity=30)
    users = UserFactory.create_batch(30)
    url = f"{live_server.url}/api/v1/events/{event.pk}/enrollments/"
    results = []

    def lower():
        try:
            services.update_event(event_id=event.pk, capacity=10)
            results.append("lowered")
        except services.domain.InvalidValue:
            results.append("refused")

    edit = threading.Thread(target=lower)
    edit.start()
    answers = Counter(fire_together([("POST", url, str(AccessToken.for_user(u))) for u in users]))
    edit.join()
    taken = assert_consistent(event)
    assert set(answers) <= {(201, None), (409, "event_full")}
    assert answers[(201, None)] == taken
    if results == ["lowered"]:
        assert taken <= 10 and event.capacity == 10
    else:
        assert results == ["refused"] and taken > 10 and event.capacity == 30


def test_eighty_sign_ups_at_once_never_answer_500(live_server, settings):
    """SQLite in the embedded pass has one writer at a time: the passwords are hashed before the
    write transaction, and a lock that still times out answers 503 with Retry-After, never 500."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # the real cost
    barrier = threading.Barrier(80)
    answers = []

    def sign_up(n):
        body = {"email": f"rush{n}@example.com", "password": "Str0ng-Passw0rd!", "full_name": f"Rush {n}"}
        with httpx.Client(timeout=120) as http:
            barrier.wait()
            response = http.post(f"{live_server.url}/api/v1/auth/register/", json=body)
        answers.append((response.status_code, response.headers.get("Retry-After")))

    threads = [threading.Thread(target=sign_up, args=(n,)) for n in range(80)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 80  # every request answered (a thread that failed answers nothing)
    statuses = Counter(status for status, _ in answers)
    assert set(statuses) <= {201, 503}, statuses
    assert all(retry for status, retry in answers if status == 503)
    from participants.models import User

    assert User.objects.filter(email__startswith="rush").count() == statuses[201]
