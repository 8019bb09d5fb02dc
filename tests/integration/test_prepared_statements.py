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


# --- prepared_row(): the rush's one-row statements on psycopg's cursor itself ----------------------


def test_prepared_row_reads_a_row_prepared_and_binary_results_read_alike():
    from config.prepared import prepared_row

    stored = AdmissionRequest.objects.create(event=EventFactory(admission="queue"), participant=UserFactory())
    sql = f"SELECT id, queued_at, status FROM {AdmissionRequest._meta.db_table} WHERE id = %s"  # noqa: S608
    text = prepared_row(sql, [stored.pk])
    binary = prepared_row(sql, [stored.pk], binary_results=True)
    assert text == binary == (stored.pk, stored.queued_at, "pending")
    assert binary[1].utcoffset() is not None and binary[1].utcoffset().total_seconds() == 0
    assert prepared_row(sql, [stored.pk + 1000]) is None
    assert any(s.startswith("SELECT id, queued_at, status") for s in prepared_statements())


def test_prepared_row_converts_errors_as_django_s_cursor_does():
    from django.db import DatabaseError, IntegrityError

    from config.prepared import prepared_row

    table = AdmissionRequest._meta.db_table
    insert = f"INSERT INTO {table} (event_id, participant_id, status, queued_at)"  # noqa: S608
    with pytest.raises(IntegrityError):  # the foreign key, checked at the statement's commit
        values = [999_999, UserFactory().pk, "pending"]
        prepared_row(f"{insert} VALUES (%s, %s, %s, now()) RETURNING id", values)
    assert not connection.errors_occurred  # a refused row leaves the connection as it was
    with pytest.raises(DatabaseError):
        prepared_row(f"SELECT no_such_column FROM {table}", [])  # noqa: S608
    assert connection.errors_occurred  # Django closes such a connection at the request's end
    connection.close()


def test_prepared_row_refuses_inside_a_transaction_that_must_roll_back():
    from django.db import transaction
    from django.db.transaction import TransactionManagementError

    from config.prepared import prepared_row

    with transaction.atomic():
        transaction.set_rollback(True)  # as after an error caught inside the block
        with pytest.raises(TransactionManagementError):
            prepared_row("SELECT 1", [])


def test_prepared_row_takes_the_usual_path_for_an_execute_wrapper_and_a_query_log():
    from django.test.utils import CaptureQueriesContext

    from config.prepared import prepared_row

    seen = []

    def wrapper(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        assert prepared_row("SELECT %s::int + 1", [41]) == (42,)
    assert seen == ["SELECT %s::int + 1"]
    with CaptureQueriesContext(connection) as logged:
        assert prepared_row("SELECT %s::int + 2", [40], binary_results=True) == (42,)
    assert [q["sql"] for q in logged.captured_queries] == ["SELECT 40::int + 2"]
