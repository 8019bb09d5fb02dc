"""Idempotency-Key: a retried creating POST replays its first answer instead of running twice."""

import threading
from collections import Counter

import httpx
import pytest
from rest_framework_simplejwt.tokens import AccessToken

from events.models import AdmissionRequest, Enrollment, Event
from participants.models import User
from tests.factories import PASSWORD, EventFactory, UserFactory
from tests.helpers import assert_problem, client_for

pytestmark = pytest.mark.django_db(transaction=True)

NEW_EVENT = {"title": "Launch", "date": "2031-01-01", "time": "10:00", "location": "Hall", "capacity": 5}


def test_a_retried_creation_replays_the_first_answer(admin_api):
    first = admin_api.post("/api/v1/events/", NEW_EVENT, format="json", HTTP_IDEMPOTENCY_KEY="create-1")
    again = admin_api.post("/api/v1/events/", NEW_EVENT, format="json", HTTP_IDEMPOTENCY_KEY="create-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Event.objects.count() == 1
    # Without a key, or with another, it is a new request.
    assert (
        admin_api.post(
            "/api/v1/events/", NEW_EVENT, format="json", HTTP_IDEMPOTENCY_KEY="create-2"
        ).status_code
        == 201
    )
    assert Event.objects.count() == 2


def test_an_enrollment_retry_replays_its_status_body_and_location(participant_api):
    event = EventFactory(admission="queue")
    url = f"/api/v1/events/{event.pk}/enrollments/"
    first = participant_api.post(url, HTTP_IDEMPOTENCY_KEY="enroll-abc")
    again = participant_api.post(url, HTTP_IDEMPOTENCY_KEY="enroll-abc")
    assert first.status_code == again.status_code == 202
    assert again["Location"] == first["Location"] and again.json() == first.json()
    assert AdmissionRequest.objects.filter(event=event).count() == 1
    # A refusal is an answer too: replayed, not run again.
    full = EventFactory(capacity=1)
    client_for(UserFactory()).post(f"/api/v1/events/{full.pk}/enrollments/")
    refused = participant_api.post(f"/api/v1/events/{full.pk}/enrollments/", HTTP_IDEMPOTENCY_KEY="full-1")
    assert_problem(refused, 409, "event_full")
    assert (
        participant_api.post(f"/api/v1/events/{full.pk}/enrollments/", HTTP_IDEMPOTENCY_KEY="full-1").json()
        == refused.json()
    )


def test_the_same_key_with_another_body_is_422(admin_api):
    admin_api.post("/api/v1/events/", NEW_EVENT, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    other = admin_api.post(
        "/api/v1/events/", {**NEW_EVENT, "title": "Other"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert_problem(other, 422, "idempotency_key_reused")
    assert Event.objects.count() == 1


def test_keys_belong_to_their_account(make_participants):
    ann, bob = make_participants(2)
    event = EventFactory()
    url = f"/api/v1/events/{event.pk}/enrollments/"
    assert client_for(ann).post(url, HTTP_IDEMPOTENCY_KEY="same").status_code == 201
    assert client_for(bob).post(url, HTTP_IDEMPOTENCY_KEY="same").status_code == 201  # not Ann's answer
    assert set(Enrollment.objects.filter(event=event).values_list("participant_id", flat=True)) == {
        ann.pk,
        bob.pk,
    }


def test_anonymous_sign_up_keys_belong_to_the_address(anon):
    body = {"email": "new@example.com", "password": PASSWORD, "full_name": "New"}
    first = anon.post("/api/v1/auth/register/", body, format="json", HTTP_IDEMPOTENCY_KEY="signup")
    again = anon.post("/api/v1/auth/register/", body, format="json", HTTP_IDEMPOTENCY_KEY="signup")
    assert first.status_code == again.status_code == 201 and again.json() == first.json()
    assert User.objects.filter(email="new@example.com").count() == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "naïve"])
def test_a_malformed_key_is_400(key, admin_api):
    answer = admin_api.post("/api/v1/events/", NEW_EVENT, format="json", HTTP_IDEMPOTENCY_KEY=key)
    problem = assert_problem(answer, 400, "validation_error")
    assert "Idempotency-Key" in problem["errors"]
    assert not Event.objects.exists()


def test_routes_that_create_nothing_ignore_the_key(participant_api):
    event = EventFactory()
    participant_api.post(f"/api/v1/events/{event.pk}/enrollments/")
    for _ in range(2):  # a DELETE, and a POST that creates nothing, run every time
        participant_api.delete(f"/api/v1/events/{event.pk}/enrollments/me/", HTTP_IDEMPOTENCY_KEY="d")
    assert not Enrollment.objects.filter(event=event).exists()


def test_simultaneous_requests_with_one_key_do_the_work_once(live_server):
    event = EventFactory(capacity=50)
    user = UserFactory()
    token = str(AccessToken.for_user(user))
    url = f"{live_server.url}/api/v1/events/{event.pk}/enrollments/"
    barrier = threading.Barrier(12)
    answers = []

    def send():
        with httpx.Client(timeout=30) as http:
            barrier.wait()
            response = http.post(
                url, headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "rush-1"}
            )
        answers.append(
            (response.status_code, response.headers.get("Idempotent-Replayed"), response.json().get("code"))
        )

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = Counter(answers)
    assert counts[(201, None, None)] == 1  # the one that did the work
    assert set(counts) <= {(201, None, None), (201, "true", None), (409, None, "request_in_progress")}
    assert Enrollment.objects.filter(event=event, participant=user).count() == 1


def test_without_a_valid_token_the_route_answers_401_whatever_the_key(anon, admin_api):
    admin_api.post("/api/v1/events/", NEW_EVENT, format="json", HTTP_IDEMPOTENCY_KEY="taken")
    answer = anon.post("/api/v1/events/", {"other": 1}, format="json", HTTP_IDEMPOTENCY_KEY="taken")
    assert_problem(answer, 401, "not_authenticated")


def test_a_keyed_request_while_the_cache_is_away_answers_503_at_once(admin_api, settings):
    """The cache keeps nothing (it swallows its errors): the middleware took that for a key gone a
    moment ago and asked again, for ever (a RecursionError, a 500; with slow connects, a hang)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    body = {"title": "Launch", "date": "2031-01-01", "time": "10:00", "location": "Hall", "capacity": 5}
    answer = admin_api.post("/api/v1/events/", body, format="json", HTTP_IDEMPOTENCY_KEY="while-away")
    assert_problem(answer, 503, "service_unavailable")
    assert answer["Retry-After"] == "5"
    assert not Event.objects.exists()  # nothing done that a retry would do again
