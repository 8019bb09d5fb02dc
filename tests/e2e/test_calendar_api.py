"""Calendars over the API: one event's file, the personal feed and its token, end to end."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.core import mail
from icalendar import Calendar
from rest_framework.test import APIClient

from tests.factories import EventFactory, UserFactory
from tests.helpers import asgi_server, assert_problem, client_for

pytestmark = pytest.mark.django_db(transaction=True)


def uids(response) -> list[str]:
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    cal = Calendar.from_ical(response.content)
    assert cal["METHOD"] == "PUBLISH"
    return [str(e["UID"]) for e in cal.walk("VEVENT")]


def feed_url(api: APIClient) -> str:
    response = api.get("/api/v1/me/calendar/")
    assert response.status_code == 200
    return response.json()["url"]


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


# --- One event's file -------------------------------------------------------------------------------


def test_any_signed_in_user_downloads_an_events_file(participant_api, admin_api):
    event = EventFactory(title="Town hall")
    for api in (participant_api, admin_api):
        response = api.get(f"/api/v1/events/{event.pk}/calendar.ics")
        assert uids(response) == [f"event-{event.pk}@example.com"]
        assert response["Content-Disposition"] == f'attachment; filename="event-{event.pk}.ics"'
    # Calendar apps and browsers send all sorts of Accept headers: never a 406.
    for accept in ("text/calendar", "application/json", "text/html,*/*;q=0.8", "image/png"):
        response = participant_api.get(f"/api/v1/events/{event.pk}/calendar.ics", HTTP_ACCEPT=accept)
        assert response.status_code == 200, accept


def test_events_file_errors_are_problems(participant_api, anon):
    event = EventFactory()
    assert_problem(participant_api.get("/api/v1/events/999999/calendar.ics"), 404, "not_found")
    assert_problem(
        participant_api.get("/api/v1/events/999999/calendar.ics", HTTP_ACCEPT="text/calendar"),
        404,
        "not_found",
    )
    assert_problem(anon.get(f"/api/v1/events/{event.pk}/calendar.ics"), 401, "not_authenticated")
    assert_problem(participant_api.post(f"/api/v1/events/{event.pk}/calendar.ics"), 405, "method_not_allowed")


# --- The feed ------------------------------------------------------------------------------------


def test_the_feed_lists_only_the_callers_confirmed_enrollments(participant_api, participant, anon):
    mine, full, others, cancelled = (EventFactory(), EventFactory(capacity=1), EventFactory(), EventFactory())
    other = UserFactory()
    participant_api.post(f"/api/v1/events/{mine.pk}/enrollments/")
    client_for(other).post(f"/api/v1/events/{full.pk}/enrollments/")
    assert participant_api.post(f"/api/v1/events/{full.pk}/waitlist/").status_code == 201  # waiting: not in
    client_for(other).post(f"/api/v1/events/{others.pk}/enrollments/")
    participant_api.post(f"/api/v1/events/{cancelled.pk}/enrollments/")
    participant_api.delete(f"/api/v1/events/{cancelled.pk}/enrollments/me/")

    url = feed_url(participant_api)
    assert url.startswith("http://testserver/api/v1/calendar/feed.ics?token=")
    assert feed_url(participant_api) == url  # the same until rotated
    assert uids(anon.get(path_of(url))) == [f"event-{mine.pk}@example.com"]  # no JWT needed
    # The same UID as the emails', so the app holds one entry per event.
    (confirmation,) = [m for m in mail.outbox if m.to == [participant.email] and "enrolled" in m.subject][:1]
    assert f"UID:event-{mine.pk}@example.com" in confirmation.message().as_string()
    assert uids(anon.get(path_of(feed_url(client_for(other))))) == [
        f"event-{full.pk}@example.com",
        f"event-{others.pk}@example.com",
    ]


def test_rotation_invalidates_the_old_url_at_once(participant_api, anon):
    event = EventFactory()
    participant_api.post(f"/api/v1/events/{event.pk}/enrollments/")
    old = feed_url(participant_api)
    assert anon.get(path_of(old)).status_code == 200
    response = participant_api.post("/api/v1/me/calendar/rotate/")
    assert response.status_code == 200
    new = response.json()["url"]
    assert new != old and token_of(new) != token_of(old)
    assert_problem(anon.get(path_of(old)), 404, "not_found")
    assert uids(anon.get(path_of(new))) == [f"event-{event.pk}@example.com"]
    assert feed_url(participant_api) == new


def test_missing_unknown_and_malformed_tokens(anon, participant):
    assert_problem(anon.get("/api/v1/calendar/feed.ics"), 404, "not_found")
    assert_problem(anon.get("/api/v1/calendar/feed.ics?token="), 404, "not_found")
    assert_problem(anon.get("/api/v1/calendar/feed.ics?token=" + "A" * 43), 404, "not_found")
    body = assert_problem(anon.get("/api/v1/calendar/feed.ics?token=" + "A" * 65), 400, "validation_error")
    assert "token" in body["errors"]
    assert_problem(anon.get("/api/v1/calendar/feed.ics?token=%00%27"), 400, "validation_error")
    # A final newline is no part of a token ($ in the pattern would have let it pass: 404).
    assert_problem(anon.get("/api/v1/calendar/feed.ics?token=" + "A" * 43 + "%0A"), 400, "validation_error")


def test_a_deactivated_accounts_feed_is_gone(participant, participant_api, anon):
    url = feed_url(participant_api)
    participant.is_active = False
    participant.save(update_fields=["is_active"])
    assert_problem(anon.get(path_of(url)), 404, "not_found")


def test_the_feed_token_opens_nothing_else(participant_api, participant):
    event = EventFactory()
    token = token_of(feed_url(participant_api))
    as_bearer = APIClient()
    as_bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    for path in ("/api/v1/me/", "/api/v1/me/calendar/", "/api/v1/events/", f"/api/v1/events/{event.pk}/"):
        assert_problem(as_bearer.get(path), 401, "token_not_valid")
    assert_problem(as_bearer.post("/api/v1/me/calendar/rotate/"), 401, "token_not_valid")
    assert_problem(as_bearer.post(f"/api/v1/events/{event.pk}/enrollments/"), 401, "token_not_valid")
    # Nor does a query token sign anyone in elsewhere.
    assert_problem(APIClient().get(f"/api/v1/me/?token={token}"), 401, "not_authenticated")
    # And a bearer header on the feed neither helps nor hurts: the token in the URL decides.
    assert as_bearer.get(f"/api/v1/calendar/feed.ics?token={token}").status_code == 200
    assert_problem(participant_api.get("/api/v1/calendar/feed.ics"), 404, "not_found")


def test_me_calendar_needs_a_signed_in_user(anon):
    assert_problem(anon.get("/api/v1/me/calendar/"), 401, "not_authenticated")
    assert_problem(anon.post("/api/v1/me/calendar/rotate/"), 401, "not_authenticated")


def test_rotate_refuses_a_malformed_body(participant_api):
    response = participant_api.post("/api/v1/me/calendar/rotate/", "{nope", content_type="application/json")
    assert_problem(response, 400, "validation_error")


def test_the_feed_is_throttled_per_address(participant_api, anon, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth": "3/min"}}
    path = path_of(feed_url(participant_api))
    for _ in range(3):
        assert anon.get(path).status_code == 200
    response = anon.get(path)
    assert_problem(response, 429, "throttled")
    assert int(response["Retry-After"]) >= 1


def test_the_feed_token_reaches_no_log_record(participant_api, anon):
    """Every record any logger emits while the feed is used (served, refused, rotated), at DEBUG."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep(level=logging.DEBUG)
    loggers = [
        logging.getLogger(),
        *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict)),
    ]
    saved = [(logger, logger.level) for logger in loggers]
    for logger in loggers:
        logger.addHandler(keep)
        logger.setLevel(logging.DEBUG)
    try:
        url = feed_url(participant_api)
        token = token_of(url)
        assert anon.get(path_of(url), HTTP_USER_AGENT="calendar-app").status_code == 200
        rotated = participant_api.post("/api/v1/me/calendar/rotate/").json()["url"]
        assert anon.get(path_of(url)).status_code == 404  # the old token, refused
        assert anon.get(path_of(rotated)).status_code == 200
        anon.get(path_of(rotated) + "%00")  # malformed: 400
    finally:
        for logger, level in saved:
            logger.removeHandler(keep)
            logger.setLevel(level)
    assert any(r.name == "http.request" for r in records)  # the request lines were written
    for record in records:
        text = f"{record.getMessage()} {record.__dict__}"
        for secret in (token, token_of(rotated)):
            assert secret not in text, record.name


def test_a_real_server_logs_no_feed_token(tmp_path, participant):
    """The server's own log (uvicorn, the request lines) with the feed used over HTTP."""
    event = EventFactory()
    participant_api = client_for(participant)
    participant_api.post(f"/api/v1/events/{event.pk}/enrollments/")
    url = feed_url(participant_api)
    token = token_of(url)
    with (
        asgi_server(tmp_path, CELERY_BROKER_URL="", LOG_LEVEL="DEBUG") as base,
        httpx.Client(base_url=base, timeout=30) as http,
    ):
        response = http.get(path_of(url))
        assert response.status_code == 200 and f"event-{event.pk}@" in response.text
        assert http.get("/api/v1/calendar/feed.ics?token=" + token[::-1]).status_code == 404
    log = (tmp_path / "server.log").read_text()
    assert "/api/v1/calendar/feed.ics" in log  # the request was logged, without its query
    assert token not in log and token[::-1] not in log


def test_enroll_read_the_email_and_the_feed_then_check_in_with_the_emailed_code(
    participant_api, admin_api, anon
):
    event = EventFactory(title="Launch party")
    assert participant_api.post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201
    (email,) = mail.outbox
    (attached,) = [p for p in email.message().walk() if p.get_content_type() == "text/calendar"]
    emailed = Calendar.from_ical(attached.get_payload(decode=True))
    feed = Calendar.from_ical(anon.get(path_of(feed_url(participant_api))).content)
    assert [e["UID"] for e in emailed.walk("VEVENT")] == [e["UID"] for e in feed.walk("VEVENT")]
    code = next(line for line in email.body.splitlines() if line.startswith("Your check-in code: "))
    code = code.removeprefix("Your check-in code: ")
    response = admin_api.post(f"/api/v1/events/{event.pk}/check-ins/", {"code": code})
    assert response.status_code == 201, response.content
