"""The event list and detail come from the cache, and never show seats older than the last write."""

import pytest
from django.core.cache import cache

from events import cache as event_cache
from tests.conftest import client_for
from tests.factories import EventFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_repeated_reads_are_served_from_the_cache(participant_api, django_assert_num_queries):
    event = EventFactory()
    first = participant_api.get("/api/v1/events/")
    with django_assert_num_queries(0):  # not even the account: reads trust the signed token
        again = participant_api.get("/api/v1/events/")
    assert again.content == first.content
    participant_api.get(f"/api/v1/events/{event.pk}/")
    with django_assert_num_queries(0):
        participant_api.get(f"/api/v1/events/{event.pk}/")


def test_every_write_that_changes_seats_or_fields_invalidates(participant_api, admin_api):
    event = EventFactory(capacity=5)
    detail = f"/api/v1/events/{event.pk}/"

    def seen():
        listed = participant_api.get("/api/v1/events/").json()["results"][0]
        one = participant_api.get(detail).json()
        assert listed == one
        return one

    assert seen()["seats_left"] == 5
    assert participant_api.post(f"{detail}enrollments/").status_code == 201
    assert seen()["seats_left"] == 4
    other = UserFactory()
    assert admin_api.post(f"{detail}enrollments/", {"participant": other.pk}).status_code == 201
    assert seen()["seats_left"] == 3
    assert participant_api.delete(f"{detail}enrollments/me/").status_code == 204
    assert seen()["seats_left"] == 4
    assert admin_api.delete(f"{detail}participants/{other.pk}/").status_code == 204
    assert seen()["seats_left"] == 5
    assert admin_api.patch(detail, {"capacity": 7, "title": "Bigger"}).status_code == 200
    assert (seen()["seats_left"], seen()["title"]) == (7, "Bigger")
    client_for(UserFactory()).post(f"{detail}enrollments/")
    enrolled = UserFactory()
    client_for(enrolled).post(f"{detail}enrollments/")
    assert admin_api.delete(f"/api/v1/participants/{enrolled.pk}/").status_code == 204
    assert seen()["seats_left"] == 6
    assert admin_api.delete(detail).status_code == 204
    assert participant_api.get("/api/v1/events/").json()["count"] == 0


def test_new_events_appear_at_once(participant_api, admin_api):
    assert participant_api.get("/api/v1/events/").json()["count"] == 0
    payload = {"title": "New", "date": "2031-01-01", "time": "09:00", "location": "L", "capacity": 1}
    assert admin_api.post("/api/v1/events/", payload).status_code == 201
    assert participant_api.get("/api/v1/events/").json()["count"] == 1


def test_answers_differ_by_query(participant_api):
    EventFactory.create_batch(3)
    assert len(participant_api.get("/api/v1/events/?page_size=1").json()["results"]) == 1
    assert len(participant_api.get("/api/v1/events/?page_size=2").json()["results"]) == 2


def test_lost_generation_token_never_resurrects_old_answers(participant_api):
    event = EventFactory(capacity=5)
    participant_api.get("/api/v1/events/")
    client_for(UserFactory()).post(f"/api/v1/events/{event.pk}/enrollments/")
    cache.delete(event_cache.GENERATION_KEY)  # as if evicted
    assert participant_api.get("/api/v1/events/").json()["results"][0]["seats_left"] == 4


def test_requests_succeed_when_redis_is_down(participant_api, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    event = EventFactory(capacity=2)
    assert participant_api.get("/api/v1/events/").json()["results"][0]["seats_left"] == 2
    assert participant_api.post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201
    assert participant_api.get(f"/api/v1/events/{event.pk}/").json()["seats_left"] == 1
