"""The enrollment route answers outside DRF's machinery (events.api.views.EventEnrollmentsView):
the same authentication, body rules, problem+json answers and request log line as every route."""

import json
import logging

import pytest

from events.models import Enrollment
from tests.factories import EventFactory, UserFactory
from tests.helpers import assert_problem, client_for

pytestmark = pytest.mark.django_db(transaction=True)


def url(event):
    return f"/api/v1/events/{event.pk}/enrollments/"


def test_bodies_a_participant_may_send(participant_api, participant):
    for body in (None, {}, {"participant": participant.pk}):
        event = EventFactory()
        answer = (
            participant_api.post(url(event), body, format="json")
            if body is not None
            else participant_api.post(url(event))
        )
        assert answer.status_code == 201, answer.content
        assert answer["Content-Type"] == "application/json"
        assert answer.json()["participant"] == participant.pk


def test_bad_bodies_are_400_and_keep_nothing(participant_api, participant):
    event = EventFactory()
    malformed = participant_api.generic("POST", url(event), "{nope", content_type="application/json")
    body = assert_problem(malformed, 400, "validation_error")
    assert "body" in body["errors"]
    for payload in ([1, 2], "text", {"unknown": 1}, {"participant": participant.pk, "extra": 1}):
        answer = participant_api.generic(
            "POST", url(event), json.dumps(payload), content_type="application/json"
        )
        assert_problem(answer, 400, "validation_error")
    assert not Enrollment.objects.exists()


def test_a_body_over_the_limit_is_413(participant_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    event = EventFactory()
    answer = participant_api.generic(
        "POST", url(event), json.dumps({"pad": "x" * 5000}), content_type="application/json"
    )
    assert_problem(answer, 413, "payload_too_large")
    assert not Enrollment.objects.exists()


def test_credentials_are_checked_like_everywhere(anon):
    event = EventFactory()
    assert_problem(anon.post(url(event)), 401, "not_authenticated")
    anon.credentials(HTTP_AUTHORIZATION="Bearer not.a.token")
    assert_problem(anon.post(url(event)), 401, "token_not_valid")
    inactive = UserFactory(is_active=False)
    assert client_for(inactive).post(url(event)).status_code == 401
    assert not Enrollment.objects.exists()


def test_other_methods_and_unknown_events(participant_api):
    event = EventFactory()
    answer = participant_api.get(url(event))
    assert_problem(answer, 405, "method_not_allowed")
    assert_problem(participant_api.post("/api/v1/events/424242/enrollments/"), 404, "not_found")


def test_the_request_log_line_names_the_user(participant_api, participant, caplog):
    event = EventFactory()
    with caplog.at_level(logging.INFO, logger="http.request"):
        assert participant_api.post(url(event)).status_code == 201
    [line] = [r for r in caplog.records if r.name == "http.request"]
    assert getattr(line, "fields", {}).get("user_id") == participant.pk
