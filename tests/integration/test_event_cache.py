"""The event list and detail come from the cache, and never show seats older than the last write."""

import os
import threading
import time

import pytest
from django.core.cache import cache
from django.test import RequestFactory

from events import admission, selectors
from events import cache as event_cache
from events.api import reads
from events.api import views as event_views
from events.models import AdmissionRequest, Event
from tests.factories import EventFactory, UserFactory
from tests.helpers import assert_problem, client_for, needs_service

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


@pytest.mark.parametrize("lost", ["generation", "seats token"])
def test_a_lost_token_never_resurrects_old_answers(lost, participant_api, admin_api):
    """A token evicted after a write comes back as a new random one, never as one answers were
    stored under: an edit's generation, an enrollment's seats token."""
    event = EventFactory(capacity=5, title="Before")
    participant_api.get("/api/v1/events/")  # stored
    if lost == "generation":
        assert admin_api.patch(f"/api/v1/events/{event.pk}/", {"title": "After"}).status_code == 200
        cache.delete(event_cache.GENERATION_KEY)  # as if evicted
        assert participant_api.get("/api/v1/events/").json()["results"][0]["title"] == "After"
    else:
        client_for(UserFactory()).post(f"/api/v1/events/{event.pk}/enrollments/")
        cache.delete(event_cache.SEATS_KEY)
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


# --- The fast path of cached reads (events/api/reads.py) ------------------------------------------


def _drf_calls(monkeypatch) -> list[str]:
    """Counts the DRF view's list/retrieve calls: a read the fast path answered makes none."""
    calls: list[str] = []
    for action in ("list", "retrieve"):
        original = getattr(event_views.EventViewSet, action)

        def counted(self, request, *args, _original=original, _action=action, **kwargs):
            calls.append(_action)
            return _original(self, request, *args, **kwargs)

        monkeypatch.setattr(event_views.EventViewSet, action, counted)
    return calls


@pytest.mark.parametrize("path", ["/api/v1/events/", "/api/v1/events/?page_size=2&ordering=-date", "detail"])
def test_a_cache_hit_answers_the_drf_views_bytes_and_headers_without_drf(
    path, participant_api, monkeypatch, django_assert_num_queries
):
    events = EventFactory.create_batch(3)
    if path == "detail":
        path = f"/api/v1/events/{events[0].pk}/"
    calls = _drf_calls(monkeypatch)
    built = participant_api.get(path)  # a miss: built and stored (by DRF, but with no query)
    assert built.status_code == 200 and len(calls) == (1 if "?" in path else 0)
    calls.clear()
    with django_assert_num_queries(0):
        hit = participant_api.get(path)
    assert not calls, "the hit went through DRF"
    assert hit.status_code == 200
    assert hit.content == built.content
    for header in ("Content-Type", "Allow", "Vary", "X-Frame-Options", "X-Content-Type-Options"):
        assert hit.get(header) == built.get(header), header
    assert hit["X-Request-ID"] and hit["X-Request-ID"] != built["X-Request-ID"]


def test_everything_but_a_plain_hit_or_a_plain_miss_is_answered_by_drf_as_before(
    participant_api, monkeypatch, settings
):
    from datetime import timedelta

    from rest_framework_simplejwt.tokens import AccessToken

    event = EventFactory(capacity=5)
    participant_api.get("/api/v1/events/")  # stored
    calls = _drf_calls(monkeypatch)
    anon = client_for(None)
    assert_problem(anon.get("/api/v1/events/"), 401, "not_authenticated")
    anon.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert_problem(anon.get("/api/v1/events/"), 401, "token_not_valid")
    expired = AccessToken.for_user(UserFactory())
    expired.set_exp(lifetime=-timedelta(seconds=1))
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {expired}")
    assert_problem(anon.get("/api/v1/events/"), 401, "token_not_valid")
    anon.credentials(HTTP_AUTHORIZATION=f"Token {AccessToken.for_user(UserFactory())}")
    assert_problem(anon.get("/api/v1/events/"), 401, "not_authenticated")
    assert participant_api.get("/api/v1/events/", HTTP_ACCEPT="text/html").status_code == 406
    # After a change of seats the stored answers' seats are refreshed: a query's by DRF's view, the
    # plain list's and the event's by the fast path.
    detail = f"/api/v1/events/{event.pk}/"
    queried = "/api/v1/events/?page_size=5"
    assert participant_api.get(queried).json()["results"][0]["seats_left"] == 5
    assert client_for(UserFactory()).post(f"{detail}enrollments/").status_code == 201
    before = len(calls)
    assert participant_api.get(queried).json()["results"][0]["seats_left"] == 4
    assert participant_api.get("/api/v1/events/").json()["results"][0]["seats_left"] == 4
    assert participant_api.get(detail).json()["seats_left"] == 4
    assert calls[before:] == ["list"]
    assert participant_api.get(queried).json()["results"][0]["seats_left"] == 4
    assert calls[before:] == ["list"]  # and the next read is a hit again


@pytest.mark.parametrize("count", [0, 3, 21])
@pytest.mark.parametrize("script", ["", "/platform"])
def test_the_plain_lists_miss_is_built_without_drf_as_drf_builds_it(
    count, script, participant_api, monkeypatch, django_assert_max_num_queries
):
    """A page not stored yet (or after an event's write) is built: the first page with no query
    by the fast path, with DRF's bytes (21 events: a next page's link), with two queries, and
    stored."""
    EventFactory.create_batch(count)
    calls = _drf_calls(monkeypatch)
    with django_assert_max_num_queries(2):  # the count and the page
        fast = participant_api.get("/api/v1/events/", SCRIPT_NAME=script)
    assert fast.status_code == 200 and not calls
    assert fast.json()["count"] == count
    with django_assert_max_num_queries(0):
        assert participant_api.get("/api/v1/events/", SCRIPT_NAME=script).content == fast.content
    event_cache.invalidate()
    monkeypatch.setattr(reads, "cached_event_read", lambda request, detail: None)
    monkeypatch.setattr(reads, "plain_miss", lambda request, event_id=None: None)
    by_drf = participant_api.get("/api/v1/events/", SCRIPT_NAME=script)
    assert calls == ["list"]
    assert by_drf.content == fast.content
    for header in ("Content-Type", "Allow", "Vary", "X-Frame-Options", "X-Content-Type-Options"):
        assert fast.get(header) == by_drf.get(header), header
    if count > 20:
        assert fast.json()["next"] == f"http://testserver{script}/api/v1/events/?page=2"


def test_an_events_miss_is_built_without_drf_as_drf_builds_it(
    participant_api, monkeypatch, django_assert_max_num_queries
):
    """The hot event's own page, reloaded beside its rush: built by the fast path with DRF's bytes
    and headers, one query; an event that does not exist is DRF's 404, and nothing is stored."""
    event = EventFactory()
    detail = f"/api/v1/events/{event.pk}/"
    calls = _drf_calls(monkeypatch)
    with django_assert_max_num_queries(1):
        fast = participant_api.get(detail)
    assert fast.status_code == 200 and not calls and fast.json()["id"] == event.pk
    missing = f"/api/v1/events/{event.pk + 1000}/"
    assert_problem(participant_api.get(missing), 404, "not_found")
    assert calls == ["retrieve"]
    EventFactory(id=event.pk + 1000)  # created behind the API's back: no invalidation
    assert participant_api.get(missing).status_code == 200  # nothing was stored for the 404
    event_cache.invalidate()
    monkeypatch.setattr(reads, "cached_event_read", lambda request, detail: None)
    monkeypatch.setattr(reads, "plain_miss", lambda request, event_id=None: None)
    by_drf = participant_api.get(detail)
    assert by_drf.content == fast.content
    for header in ("Content-Type", "Allow", "Vary", "X-Frame-Options", "X-Content-Type-Options"):
        assert fast.get(header) == by_drf.get(header), header


def test_the_plain_lists_miss_stores_under_the_generation_read_before_the_database(
    participant_api, monkeypatch
):
    """A write that lands while the page is built leaves it under the old generation, where no read
    looks: the next read shows the write (events.cache.read_through's rule, kept by the fast path)."""
    event = EventFactory(capacity=5)
    with monkeypatch.context() as patched:
        write_during(patched, reads, "first_list_page", lambda: _enroll_someone(event))
        assert participant_api.get("/api/v1/events/").json()["results"][0]["seats_left"] == 5
    assert participant_api.get("/api/v1/events/").json()["results"][0]["seats_left"] == 4


def write_during(monkeypatch, owner, name, write):
    """`owner.name`, a step of a read that reads the database, calls `write` once it has read (as
    if the write had landed meanwhile), until `monkeypatch` is undone."""
    original = getattr(owner, name)

    def overtaken(*args):
        result = original(*args)
        write()
        return result

    monkeypatch.setattr(owner, name, overtaken)


def _enroll_someone(event):
    """A new participant's enrollment, through the API (and its token's replacement)."""
    assert client_for(UserFactory()).post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201


# --- Seat changes refresh the stored answers' seats (events.cache: the seats token) ---------------


def _built_afresh(client, path):
    """The answer as a build from nothing gives it (every stored answer made unreachable first)."""
    event_cache.invalidate()
    return client.get(path).content


@pytest.mark.parametrize("path", ["/api/v1/events/", "/api/v1/events/?page_size=2&ordering=-date", "detail"])
def test_a_change_of_seats_refreshes_the_stored_answers_seats_with_one_query(
    path, participant_api, admin_api, django_assert_num_queries
):
    """An enrollment changes seats only: the next read sets the stored answer's seat fields from
    the database (one query) instead of building it again (two for a page), byte for byte what a
    build gives; and the read after it is a hit again."""
    events = EventFactory.create_batch(3, capacity=5)
    hot = events[0]
    if path == "detail":
        path = f"/api/v1/events/{hot.pk}/"
    participant_api.get(path)  # stored
    assert client_for(UserFactory()).post(f"/api/v1/events/{hot.pk}/enrollments/").status_code == 201
    with django_assert_num_queries(1):
        refreshed = participant_api.get(path)
    assert refreshed.status_code == 200
    body = refreshed.json()
    shown = body if "results" not in body else next(e for e in body["results"] if e["id"] == hot.pk)
    assert (shown["enrolled_count"], shown["seats_left"]) == (1, 4)
    with django_assert_num_queries(0):
        assert participant_api.get(path).content == refreshed.content
    assert _built_afresh(participant_api, path) == refreshed.content


@pytest.mark.parametrize("path", ["/api/v1/events/", "/api/v1/events/?page_size=2", "detail"])
def test_a_read_that_misses_asks_the_cache_once(path, participant_api, monkeypatch):
    """The fast path's round trip found the answer with older seats: the refresh goes on from what it
    found (through the fast path or DRF's view) instead of asking again."""
    event = EventFactory(capacity=5)
    path = f"/api/v1/events/{event.pk}/" if path == "detail" else path
    participant_api.get(path)  # stored
    _enroll_someone(event)
    asked = []
    original = event_cache._get_many

    def counted(*keys, **kwargs):
        asked.append(keys)
        return original(*keys, **kwargs)

    monkeypatch.setattr(event_cache, "_get_many", counted)
    body = participant_api.get(path).json()
    assert (body["results"][0] if "results" in body else body)["seats_left"] == 4
    assert len(asked) == 1


def test_the_refresh_sets_the_waiting_list_and_capacity_too(participant_api, admin_api):
    event = EventFactory(capacity=1)
    detail = f"/api/v1/events/{event.pk}/"
    client_for(UserFactory()).post(f"{detail}enrollments/")
    assert participant_api.get(detail).json()["waitlist_count"] == 0  # stored
    waiting = UserFactory()
    assert admin_api.post(f"{detail}waitlist/", {"participant": waiting.pk}).status_code == 201
    seen = participant_api.get(detail)
    assert (seen.json()["seats_left"], seen.json()["waitlist_count"]) == (0, 1)
    assert _built_afresh(participant_api, detail) == seen.content


def test_event_text_that_looks_like_seat_fields_is_left_alone(participant_api):
    """A title or description quoting the answer's own JSON cannot be taken for its fields: inside a
    string every quote is escaped."""
    look_alike = '{"id":1,"capacity":9,"enrolled_count":0,"seats_left":9,"waitlist_count":0}'
    event = EventFactory(capacity=5, title=look_alike, description=look_alike * 3)
    EventFactory(capacity=5, location='"capacity":7,"enrolled_count":7')
    participant_api.get("/api/v1/events/")  # stored
    client_for(UserFactory()).post(f"/api/v1/events/{event.pk}/enrollments/")
    refreshed = participant_api.get("/api/v1/events/")
    shown = next(e for e in refreshed.json()["results"] if e["id"] == event.pk)
    assert (shown["title"], shown["description"], shown["seats_left"]) == (look_alike, look_alike * 3, 4)
    assert _built_afresh(participant_api, "/api/v1/events/") == refreshed.content


def test_an_events_own_write_builds_the_answer_again(participant_api, admin_api, django_assert_num_queries):
    event = EventFactory(capacity=5)
    participant_api.get("/api/v1/events/")  # stored
    assert admin_api.patch(f"/api/v1/events/{event.pk}/", {"title": "Renamed"}).status_code == 200
    with django_assert_num_queries(2):  # the count and the page: built, not refreshed
        assert participant_api.get("/api/v1/events/").json()["results"][0]["title"] == "Renamed"


def test_a_refresh_stores_under_the_seats_token_read_before_the_database(participant_api, monkeypatch):
    """A change of seats that lands while the seats are read leaves the refreshed answer under the
    older token, where no read takes it for current: the next read shows the change."""
    event = EventFactory(capacity=5)
    participant_api.get("/api/v1/events/")  # stored
    _enroll_someone(event)
    with monkeypatch.context() as patched:
        write_during(patched, selectors, "seats_and_waiting", lambda: _enroll_someone(event))
        assert participant_api.get("/api/v1/events/").json()["results"][0]["seats_left"] == 4
    assert participant_api.get("/api/v1/events/").json()["results"][0]["seats_left"] == 3


def test_an_event_write_during_a_refresh_leaves_it_under_the_old_generation(
    participant_api, admin_api, monkeypatch
):
    """An edit that lands while a refresh reads the seats: the refreshed answer (with the old
    title) is stored under the old generation, where no read looks; the next read is built."""
    event = EventFactory(capacity=5, title="Before")
    participant_api.get("/api/v1/events/")  # stored
    _enroll_someone(event)

    def edit():
        assert admin_api.patch(f"/api/v1/events/{event.pk}/", {"title": "After"}).status_code == 200

    with monkeypatch.context() as patched:
        write_during(patched, selectors, "seats_and_waiting", edit)
        assert participant_api.get("/api/v1/events/").json()["results"][0]["title"] == "Before"
    assert participant_api.get("/api/v1/events/").json()["results"][0]["title"] == "After"


def test_an_answer_built_a_ttl_ago_is_built_again_not_refreshed(
    participant_api, monkeypatch, django_assert_num_queries
):
    """A refresh keeps the build's time: the fields it does not refresh are as old as the build,
    and the TTL bounds how long they can outlive an invalidation lost (Redis away at that moment)."""
    event = EventFactory(capacity=5)
    participant_api.get("/api/v1/events/")  # stored
    built_at = _built_at(_list_identity())
    for age, queries in ((event_cache.TTL_SECONDS - 1, 1), (event_cache.TTL_SECONDS, 2)):
        client_for(UserFactory()).post(f"/api/v1/events/{event.pk}/enrollments/")
        monkeypatch.setattr(event_cache, "_now", lambda age=age: built_at + age)
        with django_assert_num_queries(queries):  # a refresh, then a build (the count and the page)
            participant_api.get("/api/v1/events/")


@needs_service("REDIS_URL")
def test_a_refresh_keeps_the_builds_expiry_in_redis(participant_api, monkeypatch):
    event = EventFactory(capacity=5)
    identity = _list_identity()
    participant_api.get("/api/v1/events/")  # stored
    key = event_cache._answer_key(cache.get(event_cache.GENERATION_KEY), identity)
    assert 55 <= cache.ttl(key) <= event_cache.TTL_SECONDS
    built_at = _built_at(identity)
    client_for(UserFactory()).post(f"/api/v1/events/{event.pk}/enrollments/")
    monkeypatch.setattr(event_cache, "_now", lambda: built_at + 40)
    assert participant_api.get("/api/v1/events/").json()["results"][0]["seats_left"] == 4  # refreshed
    assert 15 <= cache.ttl(key) <= event_cache.TTL_SECONDS - 40
    assert _built_at(identity) == built_at


def _list_identity():
    """What the test client's plain list read is stored under (events.api.reads.answer_identity)."""
    return reads.answer_identity(RequestFactory().get("/api/v1/events/"))


def _built_at(identity):
    """When the stored answer for `identity` was built, as its header says (events.cache)."""
    stored = cache.get(event_cache._answer_key(cache.get(event_cache.GENERATION_KEY), identity))
    return int(stored[event_cache._TOKEN_LENGTH : event_cache._HEADER_LENGTH])


def test_queued_admissions_decisions_refresh_the_seats_too(participant_api, django_assert_num_queries):
    """The admission consumer's batch changes seats only (enrolled and waiting): the next read
    refreshes them."""
    event = EventFactory(capacity=2, admission="queue")
    participant_api.get("/api/v1/events/")  # stored
    for user in UserFactory.create_batch(3):
        AdmissionRequest.objects.create(event=event, participant=user)
    assert admission.decide_pending(event_ids=[event.pk]) == 3
    with django_assert_num_queries(1):  # refreshed, not built (the count and the page)
        seen = participant_api.get("/api/v1/events/").json()["results"][0]
    assert (seen["enrolled_count"], seen["seats_left"], seen["waitlist_count"]) == (2, 0, 1)


def test_an_event_gone_from_the_database_is_not_refreshed_but_built(participant_api):
    """An event deleted before its generation was replaced (as between a delete's commit and its
    invalidation): its seats cannot be refreshed, so the answer is built without it."""
    kept, gone = EventFactory.create_batch(2)
    assert participant_api.get("/api/v1/events/").json()["count"] == 2  # stored
    Event.objects.filter(pk=gone.pk).delete()  # behind the services' back: no invalidation
    event_cache.seats_changed()
    assert [e["id"] for e in participant_api.get("/api/v1/events/").json()["results"]] == [kept.pk]


@pytest.mark.parametrize(
    "answer",
    [
        b'{"id":1,"title":"no seat fields"}',
        b'[{"id":1,"capacity":1,"enrolled_count":0,"seats_left":1,"waitlist_count":0},{"id":2,"x":1}]',
        b'[{"id":1,"x":1},{"id":2,"capacity":1,"enrolled_count":0,"seats_left":1,"waitlist_count":0}]',
    ],
)
def test_an_answer_of_another_shape_is_not_refreshed(answer):
    assert reads.with_current_seats(answer) is None


def test_an_answer_without_events_needs_no_query(django_assert_num_queries):
    empty = b'{"count":0,"next":null,"previous":null,"results":[]}'
    with django_assert_num_queries(0):
        assert reads.with_current_seats(empty) == empty


def test_a_fast_read_is_logged_with_its_user(participant_api, participant, caplog):
    caplog.set_level("INFO", logger="http.request")
    participant_api.get("/api/v1/events/")
    caplog.clear()
    participant_api.get("/api/v1/events/")  # the fast path's hit
    lines = [r.fields for r in caplog.records if r.name == "http.request"]
    assert [(line["path"], line["status"], str(line["user_id"])) for line in lines] == [
        ("/api/v1/events/", 200, str(participant.pk))
    ]


def test_accept_headers_the_fast_path_takes():
    assert reads._accepts_plain_json("")
    assert reads._accepts_plain_json("*/*")
    assert reads._accepts_plain_json("application/json")
    assert reads._accepts_plain_json("text/html, application/json;q=0.9")
    assert not reads._accepts_plain_json("text/html")
    assert not reads._accepts_plain_json("application/json; indent=4")  # DRF renders that itself


def test_fast_reads_fall_back_to_the_database_when_redis_is_down(participant_api, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    event = EventFactory(capacity=2)
    event_cache._last_generation = "seen-before-the-outage"  # so that the fast path tries Redis
    assert event_cache.look_up(_list_identity()) is None
    assert participant_api.get("/api/v1/events/").json()["results"][0]["seats_left"] == 2
    assert participant_api.post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201
    assert participant_api.get(f"/api/v1/events/{event.pk}/").json()["seats_left"] == 1


@needs_service("REDIS_URL")
def test_invalidation_goes_through_django_redis_when_the_fast_connection_fails(monkeypatch):
    """The generation is replaced through the fast connection; a failure there (a dropped
    connection, say) must not leave the old answers reachable."""
    first = event_cache._generation()
    event_cache.invalidate()
    second = cache.get(event_cache.GENERATION_KEY)
    assert second not in (None, first)  # through the fast connection, readable by django-redis

    def broken(*args, **kwargs):
        raise ConnectionError("connection dropped")

    fast = event_cache._fast_connection()
    # The failure pauses this thread's fast connection; monkeypatch lifts the pause at teardown, so
    # that the tests after this one (within PAUSE_SECONDS) find their cached answers again.
    monkeypatch.setattr(fast, "_paused_until", 0.0)
    monkeypatch.setattr(fast._connection, "send_command", broken)
    event_cache.invalidate()
    assert cache.get(event_cache.GENERATION_KEY) not in (None, first, second)


def test_an_answers_identity_holds_all_that_its_bytes_depend_on_but_the_database():
    """The scheme and host of its links, the query and the path (script prefix included): one
    part differing is another answer; the same request again is the same one."""
    factory = RequestFactory()

    def identity(path="/api/v1/events/", **extra):
        request = factory.get(path, **extra)
        assert "%" not in request.path  # (decoded)
        return reads.answer_identity(request)

    same = identity()
    assert identity() == same
    others = [
        identity(secure=True),
        identity(HTTP_HOST="localhost"),
        identity("/api/v1/events/?page=2"),
        identity(SCRIPT_NAME="/platform"),
        identity("/api/v1/events/1/"),
        # A decoded path cannot pass for a query: the path comes last.
        identity("/api/v1/events/%0A%3Fpage=2"),
        identity("/api/v1/events/%3Fpage=2"),
        identity("/api/v1/events/%0Apage=2%0A/api/v1/events/"),
    ]
    assert len({same, *others}) == 1 + len(others)


def test_hosts_and_prefixes_get_answers_with_their_own_links(participant_api):
    EventFactory.create_batch(21)
    first = participant_api.get("/api/v1/events/").json()["next"]
    other_host = participant_api.get("/api/v1/events/", HTTP_HOST="localhost").json()["next"]
    prefixed = participant_api.get("/api/v1/events/", SCRIPT_NAME="/platform").json()["next"]
    again = participant_api.get("/api/v1/events/").json()["next"]
    assert first == again == "http://testserver/api/v1/events/?page=2"
    assert other_host == "http://localhost/api/v1/events/?page=2"
    assert prefixed == "http://testserver/platform/api/v1/events/?page=2"


# Values of every kind django-redis stores: as digits (integers) or pickled (the rest).
STORED_VALUES = ["a-token", b"an answer " * 700, 42, -7, 2**70, "123", {"a": [1, 2]}, True, 1.5]


@needs_service("REDIS_URL")
def test_the_fast_connection_reads_what_django_redis_reads():
    keys = [f"events:test-value-{number}" for number in range(len(STORED_VALUES))]
    for key, value in zip(keys, STORED_VALUES, strict=True):
        cache.set(key, value)
    fast = event_cache._fast_connection()
    assert fast._plain_pickles  # the platform's cache pickles without compressing
    assert fast.get_many(*keys, "events:test-value-missing") == [*STORED_VALUES, None]
    assert fast.get_many(*keys) == [cache.get(key) for key in keys]
    cache.delete_many(keys)


@needs_service("REDIS_URL")
def test_a_compressing_cache_is_read_through_django_redis_s_decoding(settings):
    """A compressor changes what a stored pickle looks like: no value is taken for one by its first
    byte, each goes through django-redis's decode."""
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "OPTIONS": {
                **settings.CACHES["default"]["OPTIONS"],
                "COMPRESSOR": "django_redis.compressors.zlib.ZlibCompressor",
            },
        }
    }
    keys = [f"events:test-zipped-{number}" for number in range(len(STORED_VALUES))]
    for key, value in zip(keys, STORED_VALUES, strict=True):
        cache.set(key, value)
    fast = event_cache._fast_connection()
    assert not fast._plain_pickles
    assert fast.get_many(*keys) == STORED_VALUES
    cache.delete_many(keys)


def test_only_django_redis_s_default_serializer_without_a_compressor_stores_plain_pickles():
    assert event_cache._stores_plain_pickles({})
    assert event_cache._stores_plain_pickles({"IGNORE_EXCEPTIONS": True, **event_cache._PLAIN_PICKLE_OPTIONS})
    for other in ("serializers.json.JSONSerializer", "serializers.msgpack.MSGPackSerializer"):
        assert not event_cache._stores_plain_pickles({"SERIALIZER": f"django_redis.{other}"})
    assert not event_cache._stores_plain_pickles({"COMPRESSOR": "django_redis.compressors.lz4.Lz4Compressor"})


@needs_service("REDIS_URL")
def test_an_invalidation_redis_did_not_take_lands_once_redis_is_back(participant_api, admin_api, monkeypatch):
    """It was lost: the old answers stayed current for the whole TTL after Redis came back."""
    from django_redis.cache import RedisCache

    event = EventFactory(title="Before")
    assert participant_api.get(f"/api/v1/events/{event.pk}/").json()["title"] == "Before"  # stored
    monkeypatch.setattr(event_cache._OwedReplacements, "RETRY_SECONDS", 0.1)
    redis_away = threading.Event()
    redis_away.set()
    stores = {event_cache._FastConnection: event_cache._FastConnection.set, RedisCache: RedisCache.set}
    for store, set_ in stores.items():  # every thread's connections, the retrying timer's too

        def set_unless_away(self, *args, _set=set_, **kwargs):
            # What each answers when Redis is away: False, and django-redis's ignored error, None.
            if redis_away.is_set():
                return False if isinstance(self, event_cache._FastConnection) else None
            return _set(self, *args, **kwargs)

        monkeypatch.setattr(store, "set", set_unless_away)
    assert (
        admin_api.patch(f"/api/v1/events/{event.pk}/", {"title": "After"}, format="json").status_code == 200
    )
    assert participant_api.get(f"/api/v1/events/{event.pk}/").json()["title"] == "Before"  # lost, for now
    redis_away.clear()
    deadline = time.monotonic() + 5
    while participant_api.get(f"/api/v1/events/{event.pk}/").json()["title"] != "After":
        assert time.monotonic() < deadline, "the invalidation never landed"
        time.sleep(0.05)
    assert event_cache.GENERATION_KEY not in event_cache._owed


def test_a_forked_process_owes_nothing_of_its_parents(monkeypatch):
    """Its parent's retrying thread is not in it: it would have counted on one that never runs."""
    monkeypatch.setattr(event_cache._OwedReplacements, "RETRY_SECONDS", 60.0)  # asleep through the test
    owed = event_cache._OwedReplacements()
    owed.add("events:a-lost-token")
    child = os.fork()
    if child == 0:  # pragma: no cover (the child's verdict is its exit code)
        verdict = 1
        try:
            verdict = 0 if "events:a-lost-token" not in owed and owed._thread is None else 1
        finally:
            os._exit(verdict)  # never back into pytest
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert "events:a-lost-token" in owed
    owed._owed.clear()  # its thread wakes to nothing owed, and ends
