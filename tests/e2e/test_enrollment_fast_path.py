"""A participant enrolling themself is served without loading the account (events.api.views,
_enroll_token_participant): the signed token gives the id and the seat's own
statement checks the account. Nothing a loaded account refused may get through: a deactivated,
deleted or promoted account is answered exactly as before, at once, and keeps no seat."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from config.outbox.models import OutboxMessage
from events.api.serializers import EnrollmentSerializer
from events.models import Enrollment
from participants.models import User
from tests.factories import EventFactory, UserFactory
from tests.helpers import assert_problem, client_for

pytestmark = pytest.mark.django_db(transaction=True)


def url(event):
    return f"/api/v1/events/{event.pk}/enrollments/"


def _no_seat_taken(event):
    event.refresh_from_db()
    assert event.enrolled_count == 0
    assert not Enrollment.objects.filter(event=event).exists()


def test_the_account_is_not_loaded_for_a_participants_own_enrollment():
    participant, event = UserFactory(), EventFactory()
    api = client_for(participant)
    users = User._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        answer = api.post(url(event))
    assert answer.status_code == 201, answer.content
    assert answer.json()["participant"] == participant.pk
    sqls = [q["sql"] for q in queries.captured_queries]
    # The account is checked in the seat's own statement...
    seat = next(i for i, sql in enumerate(sqls) if "UPDATE" in sql.upper() and users in sql)
    # ...and nothing before it loaded the account. (After the commit the embedded default runs the
    # notification's task in-process, which reads the account as the worker would.)
    assert not [sql for sql in sqls[:seat] if users in sql], sqls[:seat]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_the_201_body_is_what_its_serializer_makes_of_the_stored_enrollment(zone, settings):
    """The answer is built without the serializer, which still describes it in the schema."""
    settings.TIME_ZONE = zone
    participant, event = UserFactory(), EventFactory()
    answer = client_for(participant).post(url(event))
    assert answer.status_code == 201
    stored = Enrollment.objects.get(event=event, participant=participant)
    assert answer.content == json.dumps(dict(EnrollmentSerializer(stored).data)).encode()


def test_a_deactivated_account_is_refused_at_once():
    participant, event = UserFactory(), EventFactory()
    api = client_for(participant)  # a token minted while the account was active
    User.objects.filter(pk=participant.pk).update(is_active=False)
    body = assert_problem(api.post(url(event)), 401, "not_authenticated")
    assert body["detail"] == "User is inactive"
    _no_seat_taken(event)


def test_a_deleted_account_is_refused():
    participant, event = UserFactory(), EventFactory()
    api = client_for(participant)
    User.objects.filter(pk=participant.pk).delete()
    body = assert_problem(api.post(url(event)), 401, "not_authenticated")
    assert body["detail"] == "User not found"
    _no_seat_taken(event)


def test_an_account_made_admin_since_its_token_answers_as_an_admin():
    participant, event = UserFactory(), EventFactory()
    api = client_for(participant)  # a participant's token
    User.objects.filter(pk=participant.pk).update(is_staff=True)
    assert_problem(api.post(url(event)), 400, "validation_error")  # admins must name the participant
    _no_seat_taken(event)


def test_a_malformed_body_without_a_token_is_still_401_first():
    event = EventFactory()
    answer = client_for(None).generic("POST", url(event), "{nope", content_type="application/json")
    assert_problem(answer, 401, "not_authenticated")


def test_refusals_keep_their_answers_and_the_log_names_the_account(caplog):
    # At INFO whatever an earlier test left the loggers' levels at (a worker's logging setup).
    caplog.set_level("INFO", logger="http.request")
    participant, event = UserFactory(), EventFactory(capacity=1)
    api = client_for(participant)
    assert api.post(url(event)).status_code == 201
    assert_problem(api.post(url(event)), 409, "already_enrolled")
    other = client_for(UserFactory())
    assert_problem(other.post(url(event)), 409, "event_full")
    assert_problem(api.post("/api/v1/events/999999/enrollments/"), 404, "not_found")
    lines = [r for r in caplog.records if r.name == "http.request"]
    assert lines and lines[0].fields["user_id"] == participant.pk  # an int, as for DRF's requests


def test_a_queued_event_still_queues():
    event = EventFactory(admission="queue")
    answer = client_for(UserFactory()).post(url(event))
    assert answer.status_code == 202, answer.content


@pytest.mark.skipif(connection.vendor != "postgresql", reason="one statement on PostgreSQL only")
def test_the_seat_the_enrollment_row_and_its_message_are_one_statement():
    """The event's row is locked from the seat's statement to the commit: the row and the
    confirmation's outbox message are inserted by the same statement, which commits by itself (no
    transaction around it), so no round trip holds up the event's other enrollments."""
    participant, event = UserFactory(), EventFactory()
    with CaptureQueriesContext(connection) as queries:
        assert client_for(participant).post(url(event)).status_code == 201
    enrollments, events = Enrollment._meta.db_table, event._meta.db_table
    outbox = OutboxMessage._meta.db_table
    sqls = [q["sql"] for q in queries.captured_queries]
    seat_at = next(i for i, sql in enumerate(sqls) if "UPDATE" in sql.upper() and events in sql)
    seat = sqls[seat_at]
    assert f'INSERT INTO "{enrollments}"' in seat and f'INSERT INTO "{outbox}"' in seat
    assert not [sql for sql in sqls if sql.upper().startswith("INSERT") and enrollments in sql]
    # Not inside a transaction: the last BEGIN before it, if any, was committed before it.
    markers = [sql.upper() for sql in sqls[:seat_at] if sql.upper() in ("BEGIN", "COMMIT")]
    assert not markers or markers[-1] == "COMMIT", [sql[:60] for sql in sqls]
    message = OutboxMessage.objects.get(task="notifications.notify")
    assert message.kwargs["participants"] == [[participant.pk, None]]
    row = Enrollment.objects.get(event=event, participant=participant)
    assert row.checkin_code and answer_has_no_other_row(event)


def answer_has_no_other_row(event) -> bool:
    event.refresh_from_db()
    return event.enrolled_count == Enrollment.objects.filter(event=event).count() == 1


def test_already_enrolled_in_an_event_that_has_started_is_answered_closed():
    """The duplicate is found by the insert; the answer still follows the order of the checks:
    closed before duplicate. And the seat taken meanwhile goes back."""
    import datetime as dt

    from django.utils import timezone

    from events import domain, services

    participant, event = UserFactory(), EventFactory(capacity=5)
    services.enroll(event_id=event.pk, participant_id=participant.pk)
    later = timezone.now() + dt.timedelta(days=3650)
    with pytest.raises(domain.EventClosed):
        services.enroll(event_id=event.pk, participant_id=participant.pk, now=later)
    with pytest.raises(domain.AlreadyEnrolled):
        services.enroll(event_id=event.pk, participant_id=participant.pk)
    event.refresh_from_db()
    assert event.enrolled_count == 1
