"""config/prepared.py: a rush's statements (the direct enrollment's seat, the queued accept) are
prepared on PostgreSQL, planned once per connection and reused; DB_PREPARED_STATEMENTS=false keeps
Django's unprepared cursor. The answers themselves are the enrollment tests' business: these check
that the statements really are prepared, and that the errors still reach their answers."""

import pytest
from django.db import connection

from events.models import AdmissionRequest, Enrollment
from tests.factories import EventFactory, UserFactory
from tests.helpers import assert_problem, client_for, needs_service

pytestmark = [needs_service("DATABASE_URL"), pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fresh_session():
    """Each test starts on a new database session, with nothing prepared yet."""
    connection.close()
    assert prepared_statements() == []


def prepared_statements() -> list[str]:
    """This connection's statements prepared through the protocol (psycopg), not by SQL PREPARE."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
        return [row[0] for row in cursor.fetchall()]


def enroll(event, participant=None):
    return client_for(participant or UserFactory()).post(f"/api/v1/events/{event.pk}/enrollments/")


def test_the_direct_seat_statement_is_prepared_once_and_reused():
    event = EventFactory(capacity=3)
    assert enroll(event).status_code == 201
    after_first = prepared_statements()
    seat = [s for s in after_first if Enrollment._meta.db_table in s and "UPDATE" in s]
    assert len(seat) == 1, after_first
    assert "$1" in seat[0]  # bound on the server: the values are not in the statement
    assert enroll(event).status_code == 201
    assert prepared_statements() == after_first  # the second enrollment reused it
    event.refresh_from_db()
    assert event.enrolled_count == Enrollment.objects.filter(event=event).count() == 2


def test_the_prepared_seat_statement_still_refuses_a_duplicate_and_a_full_event():
    """The unique constraint's error comes through the prepared statement as Django's
    IntegrityError, whose slow path answers 409, and the seat goes back."""
    event, participant = EventFactory(capacity=1), UserFactory()
    assert enroll(event, participant).status_code == 201
    assert_problem(enroll(event, participant), 409, "already_enrolled")
    assert_problem(enroll(event), 409, "event_full")
    event.refresh_from_db()
    assert event.enrolled_count == Enrollment.objects.filter(event=event).count() == 1


def test_a_refusal_is_one_prepared_statement_after_the_seat_s(django_assert_num_queries):
    """Once an event is full the rest of its rush is refused: what the answer needs (the event,
    the account, a seat held already) is one statement, prepared once and reused."""
    event = EventFactory(capacity=1)
    assert enroll(event).status_code == 201
    assert_problem(enroll(event), 409, "event_full")
    refusal = [s for s in prepared_statements() if "LEFT JOIN" in s]
    assert len(refusal) == 1 and "$1" in refusal[0], prepared_statements()
    prepared = prepared_statements()
    assert_problem(enroll(event), 409, "event_full")
    assert prepared_statements() == prepared
    participant = UserFactory()
    client = client_for(participant)
    with django_assert_num_queries(2):  # the seat's statement, the refusal's
        assert_problem(client.post(f"/api/v1/events/{event.pk}/enrollments/"), 409, "event_full")


def test_the_queued_accept_is_prepared():
    event = EventFactory(admission="queue")
    assert enroll(event).status_code == 202
    table = AdmissionRequest._meta.db_table
    accept = [
        s for s in prepared_statements() if s.startswith(f"INSERT INTO {connection.ops.quote_name(table)}")
    ]
    assert len(accept) == 1 and "$1" in accept[0], prepared_statements()


def test_turned_off_nothing_is_prepared(settings):
    settings.DB_PREPARED_STATEMENTS = False
    event = EventFactory(capacity=5)
    assert enroll(event).status_code == 201
    assert enroll(EventFactory(admission="queue")).status_code == 202
    assert prepared_statements() == []
    assert Enrollment.objects.filter(event=event).count() == 1
