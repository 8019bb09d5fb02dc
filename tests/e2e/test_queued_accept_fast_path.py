"""A participant asking for a seat in a queued event is accepted without loading the account
(events.api.views, _enroll_token_participant, and
events.admission.request_admission's `check_account`): the signed token gives the id and the
request's own INSERT checks that the account is an active participant's. Nothing a loaded account
refused may be accepted: a deactivated, deleted or promoted account is answered exactly as by the
full authentication, at once, and leaves no request behind."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from events.models import AdmissionRequest
from participants.models import User
from tests.factories import EventFactory, UserFactory
from tests.helpers import assert_problem, client_for

pytestmark = pytest.mark.django_db(transaction=True)


def url(event):
    return f"/api/v1/events/{event.pk}/enrollments/"


def _no_request_of(event, user):
    assert not AdmissionRequest.objects.filter(event=event, participant_id=user.pk).exists()


def test_an_accept_is_the_insert_alone_with_the_account_checked_inside_it():
    event = EventFactory(admission="queue")
    # The first request teaches this process that the event is queued (services.queued_events).
    assert client_for(UserFactory()).post(url(event)).status_code == 202
    participant = UserFactory()
    api = client_for(participant)
    users, requests = User._meta.db_table, AdmissionRequest._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        answer = api.post(url(event))
    assert answer.status_code == 202, answer.content
    assert answer["Location"] == f"{url(event)}me/"
    sqls = [q["sql"] for q in queries.captured_queries]
    insert = next(i for i, sql in enumerate(sqls) if sql.upper().startswith("INSERT") and requests in sql)
    # The account is checked in the request's own statement, and nothing ran before it: one round
    # trip per accept. (After it the embedded default decides in-process, as the consumer would.)
    assert users in sqls[insert]
    assert insert == 0, sqls[:insert]
    row = AdmissionRequest.objects.get(event=event, participant=participant)
    assert row.status == "pending" or row.decided_at is not None


def test_the_first_request_of_a_queued_event_takes_the_same_path():
    event = EventFactory(admission="queue")  # not known to this process as queued yet
    participant = UserFactory()
    answer = client_for(participant).post(url(event))
    assert answer.status_code == 202, answer.content
    assert AdmissionRequest.objects.filter(event=event, participant=participant).count() == 1


@pytest.mark.parametrize("known_queued", [False, True])
def test_a_deactivated_account_is_refused_at_once(known_queued):
    event = EventFactory(admission="queue")
    if known_queued:
        assert client_for(UserFactory()).post(url(event)).status_code == 202
    participant = UserFactory()
    api = client_for(participant)  # a token minted while the account was active
    User.objects.filter(pk=participant.pk).update(is_active=False)
    body = assert_problem(api.post(url(event)), 401, "not_authenticated")
    assert body["detail"] == "User is inactive"
    _no_request_of(event, participant)


@pytest.mark.parametrize("known_queued", [False, True])
def test_a_deleted_account_is_refused(known_queued):
    event = EventFactory(admission="queue")
    if known_queued:
        assert client_for(UserFactory()).post(url(event)).status_code == 202
    participant = UserFactory()
    api = client_for(participant)
    User.objects.filter(pk=participant.pk).delete()
    body = assert_problem(api.post(url(event)), 401, "not_authenticated")
    assert body["detail"] == "User not found"
    assert not AdmissionRequest.objects.filter(event=event, participant_id=participant.pk).exists()


def test_an_account_made_admin_since_its_token_answers_as_an_admin():
    event = EventFactory(admission="queue")
    assert client_for(UserFactory()).post(url(event)).status_code == 202
    participant = UserFactory()
    api = client_for(participant)  # a participant's token
    User.objects.filter(pk=participant.pk).update(is_staff=True)
    assert_problem(api.post(url(event)), 400, "validation_error")  # admins must name the participant
    _no_request_of(event, participant)


def test_a_pending_request_is_not_answered_again_once_the_account_is_deactivated():
    event = EventFactory(admission="queue")
    participant = UserFactory()
    api = client_for(participant)
    AdmissionRequest.objects.create(event=event, participant=participant)  # still pending
    assert api.post(url(event)).status_code == 202  # asking again: the same request
    User.objects.filter(pk=participant.pk).update(is_active=False)
    assert_problem(api.post(url(event)), 401, "not_authenticated")
    assert AdmissionRequest.objects.filter(event=event, participant=participant).count() == 1


def test_a_started_event_answers_a_deactivated_account_401_before_closed():
    started = EventFactory(admission="queue", date=timezone.localdate() - dt.timedelta(days=1))
    active, deactivated = UserFactory(), UserFactory()
    assert_problem(client_for(active).post(url(started)), 409, "event_closed")  # now remembered queued
    api = client_for(deactivated)
    User.objects.filter(pk=deactivated.pk).update(is_active=False)
    assert_problem(api.post(url(started)), 401, "not_authenticated")
    assert not AdmissionRequest.objects.filter(event=started).exists()


def test_refusals_keep_their_answers_and_the_log_names_the_account(caplog):
    # At INFO whatever an earlier test left the loggers' levels at (a worker's logging setup).
    caplog.set_level("INFO", logger="http.request")
    event = EventFactory(capacity=1, admission="queue")
    participant = UserFactory()
    api = client_for(participant)
    assert api.post(url(event)).status_code == 202  # decided at once here (embedded default)
    assert_problem(api.post(url(event)), 409, "already_enrolled")
    late = client_for(UserFactory())
    assert late.post(url(event)).status_code == 202
    assert_problem(late.post(url(event)), 409, "already_waitlisted")
    assert_problem(api.post("/api/v1/events/999999/enrollments/"), 404, "not_found")
    lines = [r for r in caplog.records if r.name == "http.request"]
    assert lines and lines[0].fields["user_id"] == participant.pk  # an int, as for DRF's requests
    assert {line.fields["status"] for line in lines} >= {202, 409, 404}


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_the_202_body_is_what_its_serializer_makes_of_the_stored_request(zone):
    """The answer is built without the serializer, which still describes it in the schema: the same
    fields and the same bytes, for a new request and for one asked again while pending."""
    from django.test import override_settings

    from events.api.serializers import QueuedEnrollmentSerializer

    event = EventFactory(admission="queue")
    participant = UserFactory()
    api = client_for(participant)
    with override_settings(TIME_ZONE=zone):
        first = api.post(url(event))
        stored = AdmissionRequest.objects.get(event=event, participant=participant)
        expected = dict(QueuedEnrollmentSerializer(stored).data)
    assert first.status_code == 202
    # The embedded default decides at once: the answer is the request as it was accepted.
    assert first.json() == {**expected, "status": "pending"}
    assert first["Location"] == f"{url(event)}me/"
    pending = AdmissionRequest.objects.create(event=EventFactory(admission="queue"), participant=participant)
    with override_settings(TIME_ZONE=zone):
        again = api.post(f"/api/v1/events/{pending.event_id}/enrollments/")
        expected = dict(QueuedEnrollmentSerializer(AdmissionRequest.objects.get(pk=pending.pk)).data)
    assert again.status_code == 202
    assert again.json() == expected
    assert again["Location"] == f"/api/v1/events/{pending.event_id}/enrollments/me/"
