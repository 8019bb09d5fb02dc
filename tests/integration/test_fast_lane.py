"""The fast lane (config/fastlane.py): cached event reads and a participant's own enrollment answered
in front of Django's handler, with Django's own answers, headers, log line and metrics; every other
case served by Django as before.

Driven through the WSGI interface the servers call, against Django's handler built with the same
settings.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from datetime import timedelta

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.urls import resolve
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from config import wsgi
from config.fastlane import REPLICATED_MIDDLEWARE, FastLane, FastRoute
from config.metrics import HTTP_REQUESTS
from events import cache as event_cache
from events.api.urls import FAST_ROUTES
from events.models import AdmissionRequest, Enrollment
from participants.models import User
from tests.factories import EventFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


class Django:
    """Django's WSGI handler (built now, with the test's settings), counting the requests it serves."""

    def __init__(self) -> None:
        self.handler = WSGIHandler()
        self.served = 0

    def __call__(self, environ, start_response):
        self.served += 1
        return self.handler(environ, start_response)


class Answer:
    def __init__(self, app, environ):
        def start_response(status, headers, exc_info=None):
            self.status, self.headers = status, headers

        chunks = app(environ, start_response)
        self.body = b"".join(chunks)
        getattr(chunks, "close", lambda: None)()  # Django's request_finished, as a server calls it
        self.code = int(self.status.split()[0])

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    def comparable_headers(self) -> list[tuple[str, str]]:
        return sorted((key, value) for key, value in self.headers if key != "X-Request-ID")


def environ(
    path: str, token: str | None = None, *, method: str = "GET", query: str = "", **extra: str
) -> dict:
    meta = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SCRIPT_NAME": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
    }
    if token is not None:
        meta["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    meta.update(extra)
    return meta


@pytest.fixture
def token() -> str:
    return str(AccessToken.for_user(UserFactory()))


@pytest.fixture
def django_app(settings) -> Django:
    settings.ALLOWED_HOSTS = ["testserver"]
    return Django()


@pytest.mark.parametrize(
    ("path", "query", "https", "script"),
    [
        ("/api/v1/events/", "", False, ""),
        ("/api/v1/events/", "page_size=2&ordering=-date", False, ""),
        ("detail", "", False, ""),
        ("/api/v1/events/", "", True, ""),
        ("/api/v1/events/", "", False, "/platform"),  # served under a prefix
    ],
)
def test_a_cache_hit_gets_djangos_own_answer_without_django(path, query, https, script, token, settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    if https:  # behind a TLS proxy, with HSTS: the security middleware's headers differ
        settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
        settings.SECURE_HSTS_SECONDS = 3600
    events = EventFactory.create_batch(3)
    if path == "detail":
        path = f"/api/v1/events/{events[0].pk}/"
    extra = {"SCRIPT_NAME": script, **({"HTTP_X_FORWARDED_PROTO": "https"} if https else {})}
    django_app = Django()
    lane = FastLane(django_app)

    # A miss: Django builds and stores it (the lane one with no query: the next test).
    built = Answer(lane, environ(path, token, query=query, **extra))
    assert built.code == 200 and django_app.served == (1 if query else 0)
    served = django_app.served
    hit = Answer(lane, environ(path, token, query=query, **extra))
    assert django_app.served == served, "Django served the hit"
    by_django = Answer(django_app, environ(path, token, query=query, **extra))

    assert (hit.status, hit.body) == (by_django.status, by_django.body) == (built.status, built.body)
    assert hit.comparable_headers() == by_django.comparable_headers()
    assert hit.header("X-Request-ID") and hit.header("X-Request-ID") != by_django.header("X-Request-ID")
    if https:
        assert hit.header("Strict-Transport-Security") == "max-age=3600"


@pytest.mark.parametrize("read", ["list", "detail"])
def test_a_plain_miss_is_built_in_the_lane_between_the_request_signals(read, django_app, token):
    """Beside a rush every read misses: the lane builds the list's first page and an event's
    answer itself (events.api.reads.plain_miss), with the request signals that check and release
    the database connection sent around that build, and none for a hit."""
    events = EventFactory.create_batch(3)
    path = "/api/v1/events/" if read == "list" else f"/api/v1/events/{events[1].pk}/"
    lane = FastLane(django_app)
    sent: list[str] = []

    def started(**kwargs):
        sent.append("started")

    def finished(**kwargs):
        sent.append("finished")

    request_started.connect(started)
    request_finished.connect(finished)
    try:
        built = Answer(lane, environ(path, token))
        assert built.code == 200 and django_app.served == 0
        assert sent == ["started", "finished"]
        sent.clear()
        hit = Answer(lane, environ(path, token))
        assert (hit.code, hit.body, sent) == (200, built.body, [])
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)
    event_cache.invalidate()
    by_django = Answer(django_app, environ(path, token))
    assert (by_django.status, by_django.body) == (built.status, built.body)
    assert built.comparable_headers() == by_django.comparable_headers()


@pytest.mark.parametrize("read", ["list", "detail"])
def test_after_a_change_of_seats_the_lane_refreshes_the_stored_answer(read, django_app, token):
    """An enrollment (through the lane) changes seats only: the next read's stored answer gets its
    seat fields from the database in the lane, between the request signals, with Django's bytes."""
    event = EventFactory(capacity=5)
    path = "/api/v1/events/" if read == "list" else f"/api/v1/events/{event.pk}/"
    lane = FastLane(django_app)
    assert json.loads(Answer(lane, environ(path, token)).body)["count" if read == "list" else "id"]  # stored
    enroller = str(AccessToken.for_user(UserFactory()))
    enrollment = environ(f"/api/v1/events/{event.pk}/enrollments/", enroller, method="POST")
    assert Answer(lane, enrollment).code == 201
    sent: list[str] = []
    request_started.connect(started := lambda **kwargs: sent.append("started"), weak=False)
    try:
        refreshed = Answer(lane, environ(path, token))
    finally:
        request_started.disconnect(started)
    assert (refreshed.code, sent, django_app.served) == (200, ["started"], 0)
    shown = json.loads(refreshed.body)
    assert (shown["results"][0] if read == "list" else shown)["seats_left"] == 4
    event_cache.invalidate()
    by_django = Answer(django_app, environ(path, token))
    assert by_django.body == refreshed.body
    assert refreshed.comparable_headers() == by_django.comparable_headers()


def test_the_clients_request_id_is_echoed(django_app, token):
    lane = FastLane(django_app)
    Answer(lane, environ("/api/v1/events/", token))
    hit = Answer(lane, environ("/api/v1/events/", token, HTTP_X_REQUEST_ID="trace-42"))
    assert django_app.served == 0 and hit.header("X-Request-ID") == "trace-42"


def test_a_hit_is_logged_and_counted_as_djangos_would_be(django_app, token, caplog):
    reader = UserFactory()
    reader_token = str(AccessToken.for_user(reader))
    lane = FastLane(django_app)
    Answer(lane, environ("/api/v1/events/", reader_token))
    counted = HTTP_REQUESTS.labels("event-list", "http", "GET")
    before = counted._value.get()
    caplog.set_level(logging.INFO, logger="http.request")
    caplog.clear()
    hit = Answer(lane, environ("/api/v1/events/", reader_token, query="page=1"))
    assert hit.code == 200 and django_app.served == 1  # the query's own answer was a miss
    hit = Answer(lane, environ("/api/v1/events/", reader_token, query="page=1"))
    assert hit.code == 200 and django_app.served == 1
    lines = [(r.fields, r.request_id) for r in caplog.records if r.name == "http.request"]
    assert [fields["path"] for fields, _ in lines] == ["/api/v1/events/", "/api/v1/events/"]
    fields, request_id = lines[-1]
    assert (fields["method"], fields["status"], fields["user_id"]) == ("GET", 200, reader.pk)
    assert request_id == hit.header("X-Request-ID")
    assert "token" not in str(fields).lower() and reader_token not in caplog.text
    assert counted._value.get() == before + 2


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("no token", 401),
        ("a bad token", 401),
        ("another scheme", 401),
        ("an expired token", 401),
        ("an Accept only DRF's negotiation answers", 406),
        ("a Host not allowed", 400),
        ("a disallowed user agent", 403),
        ("plain HTTP to redirect", 301),
        ("a cache miss of a query", 200),
        ("an event that does not exist", 404),
        ("another method", 403),
    ],
)
def test_everything_but_a_plain_hit_is_served_by_django(case, status, django_app, token, settings):
    event = EventFactory()
    lane = FastLane(django_app)
    assert Answer(lane, environ("/api/v1/events/", token)).code == 200  # stored
    path, meta = "/api/v1/events/", environ("/api/v1/events/", token)
    if case == "no token":
        del meta["HTTP_AUTHORIZATION"]
    elif case == "a bad token":
        meta["HTTP_AUTHORIZATION"] = "Bearer not-a-token"
    elif case == "another scheme":
        meta["HTTP_AUTHORIZATION"] = f"Token {token}"
    elif case == "an expired token":
        expired = AccessToken.for_user(UserFactory())
        expired.set_exp(lifetime=-timedelta(seconds=1))
        meta["HTTP_AUTHORIZATION"] = f"Bearer {expired}"
    elif case == "an Accept only DRF's negotiation answers":
        meta["HTTP_ACCEPT"] = "text/html"
    elif case == "a Host not allowed":
        meta["HTTP_HOST"] = "evil.example"
    elif case == "a disallowed user agent":
        settings.DISALLOWED_USER_AGENTS = [re.compile("crawler")]
        meta["HTTP_USER_AGENT"] = "a crawler"
    elif case == "plain HTTP to redirect":
        settings.SECURE_SSL_REDIRECT = True
    elif case == "a cache miss of a query":  # (the plain list's miss is the lane's: a test above)
        event_cache.invalidate()
        meta["QUERY_STRING"] = "page_size=5"
    elif case == "an event that does not exist":  # the lane's miss finds none: Django's 404
        path = meta["PATH_INFO"] = f"/api/v1/events/{event.pk + 1000}/"
    elif case == "another method":
        meta["REQUEST_METHOD"] = "DELETE"
        path = meta["PATH_INFO"] = f"/api/v1/events/{event.pk}/"
    if case in ("a disallowed user agent", "plain HTTP to redirect"):  # settings read at start-up
        django_app = Django()
        lane = FastLane(django_app)
    served = django_app.served
    answer = Answer(lane, meta)
    assert django_app.served == served + 1, f"the lane answered {case}"
    assert answer.code == status, (path, answer.status, answer.body[:300])
    if status >= 400:
        assert answer.header("Content-Type").startswith("application/problem+json")


def test_a_failure_in_the_lane_leaves_the_request_to_django(django_app, token, caplog):
    def broken(request, match):
        raise RuntimeError("a bug in a route's answer")

    route = FastRoute("GET", re.compile(r"/api/v1/events/"), "event-list", broken)
    lane = FastLane(django_app, [route])
    caplog.set_level(logging.ERROR, logger="http.error")
    answer = Answer(lane, environ("/api/v1/events/", token))
    assert answer.code == 200 and django_app.served == 1
    [failure] = [r for r in caplog.records if r.name == "http.error"]
    assert failure.getMessage() == "The fast lane failed on GET /api/v1/events/; Django answers it"
    assert failure.request_id == answer.header("X-Request-ID")  # one id for the request's lines


def test_the_servers_application_is_the_lane_with_the_event_reads():
    assert isinstance(wsgi.application, FastLane)
    assert wsgi.application.routes == FAST_ROUTES
    assert wsgi.application.app is wsgi.django_application


def test_the_lane_stays_shut_for_a_middleware_stack_it_does_not_stand_in_for(settings, django_app, token):
    assert tuple(settings.MIDDLEWARE) == REPLICATED_MIDDLEWARE, (
        "MIDDLEWARE changed: review config/fastlane.py for the change, then update REPLICATED_MIDDLEWARE"
    )
    settings.MIDDLEWARE = [*REPLICATED_MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    lane = FastLane(django_app)
    assert lane.routes == ()
    Answer(lane, environ("/api/v1/events/", token))
    Answer(lane, environ("/api/v1/events/", token))
    assert django_app.served == 2


@pytest.mark.parametrize(
    ("path", "view_name"),
    [
        ("/api/v1/events/", "event-list"),
        ("/api/v1/events/7/", "event-detail"),
        ("/api/v1/events/7/enrollments/", "event-enrollments"),
        ("/api/v1/events/x/", None),
        ("/api/v1/events/7/enrollments/me/", None),
    ],
)
def test_the_routes_agree_with_the_urlconf(path, view_name):
    matching = [route for route in FAST_ROUTES if route.path.fullmatch(path)]
    assert [route.view_name for route in matching] == ([view_name] if view_name else [])
    if view_name:
        assert resolve(path).view_name == view_name


# --- A participant's own enrollment --------------------------------------------------------------


def enroll(app, event, user=None, **extra) -> Answer:
    token = None if user is None else str(AccessToken.for_user(user))
    meta = environ(f"/api/v1/events/{event.pk}/enrollments/", token, method="POST", CONTENT_LENGTH="0")
    meta.update(extra)
    return Answer(app, meta)


def without_varying(answer: Answer) -> list[tuple[str, str]]:
    return [(key, value) for key, value in answer.comparable_headers() if key != "Content-Length"]


@pytest.mark.parametrize(("admission", "https"), [("direct", False), ("queue", False), ("direct", True)])
def test_a_participants_enrollment_gets_djangos_answer_without_django(admission, https, settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    extra = {}
    if https:  # behind a TLS proxy, with HSTS
        settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
        settings.SECURE_HSTS_SECONDS = 3600
        extra = {"HTTP_X_FORWARDED_PROTO": "https"}
    django_app = Django()
    event = EventFactory(admission=admission)
    first, second = UserFactory(), UserFactory()
    lane = FastLane(django_app)

    by_lane = enroll(lane, event, first, **extra)
    assert django_app.served == 0, "Django served the enrollment"
    by_django = enroll(django_app, event, second, **extra)

    assert by_lane.code == by_django.code == (201 if admission == "direct" else 202)
    assert without_varying(by_lane) == without_varying(by_django)
    assert int(by_lane.header("Content-Length")) == len(by_lane.body)
    answered, expected = json.loads(by_lane.body), json.loads(by_django.body)
    assert answered["event"] == expected["event"] == event.pk
    assert answered.keys() == expected.keys() and answered["participant"] == first.pk
    if admission == "direct":
        assert Enrollment.objects.get(event=event, participant=first).pk == answered["id"]
    else:
        assert AdmissionRequest.objects.filter(event=event, participant=first).exists()
        assert by_lane.header("Location") == by_django.header("Location")


@pytest.mark.parametrize("refusal", ["event_full", "event_closed", "already_enrolled", "not_found"])
def test_a_refusal_is_the_lane_s_problem_answer_as_djangos(refusal, django_app):
    yesterday = timezone.localdate() - timedelta(days=1)
    event = EventFactory(capacity=1, **({"date": yesterday} if refusal == "event_closed" else {}))
    participant = UserFactory()
    if refusal == "event_full":
        assert enroll(django_app, event, UserFactory()).code == 201
    if refusal == "already_enrolled":
        assert enroll(django_app, event, participant).code == 201
    if refusal == "not_found":
        event.pk = event.pk + 1000
    served = django_app.served
    lane = FastLane(django_app)

    by_lane = enroll(lane, event, participant)
    assert django_app.served == served, "Django served the refusal"
    by_django = enroll(django_app, event, participant)
    assert (by_lane.status, without_varying(by_lane)) == (by_django.status, without_varying(by_django))
    problem = json.loads(by_lane.body)
    assert problem["code"] == json.loads(by_django.body)["code"]
    assert problem["request_id"] == by_lane.header("X-Request-ID")


@pytest.mark.parametrize(
    ("case", "status", "seats"),
    [
        ("a body", 201, 1),
        ("an admin", 400, 0),  # admins name the participant
        ("no token", 401, 0),
        ("a deactivated account", 401, 0),
        ("an idempotency key", 201, 1),
        ("a Host not allowed", 400, 0),
        ("plain HTTP to redirect", 301, 0),
        ("a body announced", 201, 1),  # none came: Django reads it as {}, as it always has
        ("HEAD", 405, 0),
    ],
)
def test_any_other_enrollment_is_served_by_django(case, status, seats, settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    if case == "plain HTTP to redirect":
        settings.SECURE_SSL_REDIRECT = True
    django_app = Django()  # (built with the settings above)
    event, participant = EventFactory(), UserFactory()
    lane = FastLane(django_app)
    enrolling, meta = participant, {}
    if case == "a body":
        body = json.dumps({"participant": participant.pk}).encode()
        meta = {
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/json",
        }
    elif case == "an admin":
        enrolling = UserFactory(is_staff=True)
    elif case == "no token":
        enrolling = None
    elif case == "a deactivated account":
        User.objects.filter(pk=participant.pk).update(is_active=False)
    elif case == "an idempotency key":
        meta = {"HTTP_IDEMPOTENCY_KEY": "retry-1"}
    elif case == "a Host not allowed":
        meta = {"HTTP_HOST": "evil.example"}
    elif case == "a body announced":
        meta = {"CONTENT_LENGTH": "2"}
    elif case == "HEAD":
        meta = {"REQUEST_METHOD": "HEAD"}
    answer = enroll(lane, event, enrolling, **meta)
    assert answer.code == status, answer.body[:300]
    assert django_app.served == 1, f"the lane answered {case}"
    assert Enrollment.objects.filter(event=event).count() == seats
    if case == "an idempotency key":
        replay = enroll(lane, event, participant, **meta)
        assert (replay.code, replay.header("Idempotent-Replayed")) == (201, "true")
        assert django_app.served == 2 and Enrollment.objects.filter(event=event).count() == 1


def test_an_id_beyond_any_bigint_is_djangos_to_answer(django_app):
    participant, lane = UserFactory(), FastLane(django_app)
    event = EventFactory.build(pk=int("9" * 19))
    answer = enroll(lane, event, participant)
    assert django_app.served == 1 and answer.code == enroll(django_app, event, participant).code


def test_an_enrollment_is_logged_counted_and_keeps_djangos_connection_handling(django_app, caplog):
    from django.core.signals import request_finished, request_started

    event, participant = EventFactory(), UserFactory()
    signals: list[str] = []
    request_started.connect(started := lambda **kwargs: signals.append("started"), weak=False)
    request_finished.connect(finished := lambda **kwargs: signals.append("finished"), weak=False)
    counted = HTTP_REQUESTS.labels("event-enrollments", "http", "POST")
    before = counted._value.get()
    caplog.set_level(logging.INFO, logger="http.request")
    try:
        answer = enroll(FastLane(django_app), event, participant)
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)
    assert answer.code == 201 and django_app.served == 0
    assert signals == ["started", "finished"]  # the database connection's checks and closing
    assert counted._value.get() == before + 1
    [line] = [r.fields for r in caplog.records if r.name == "http.request"]
    assert (line["method"], line["status"], line["user_id"]) == ("POST", 201, participant.pk)


def test_an_unexpected_failure_of_an_enrollment_is_a_500_never_a_second_try(django_app, monkeypatch, caplog):
    from events import admission

    event, participant = EventFactory(), UserFactory()

    def enrolled_then_failed(**kwargs):
        raise RuntimeError("after the commit, say")

    monkeypatch.setattr(admission, "enroll_or_queue", enrolled_then_failed)
    answer = enroll(FastLane(django_app), event, participant)
    assert django_app.served == 0, "Django ran the enrollment again"
    assert answer.code == 500 and json.loads(answer.body)["code"] == "server_error"
    assert any("Unhandled exception on POST" in r.getMessage() for r in caplog.records)
