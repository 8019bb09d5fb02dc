"""Data migrations, run against rows that existed before them."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.helpers import needs_service

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("events", "0005_text_limits"), ("participants", "0003_administrator_participant_proxies")]
AFTER = [("events", "0006_calendar_checkin_reminders"), ("participants", "0004_user_calendar_token")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_existing_enrollments_get_a_check_in_code_each():
    old = migrate(BEFORE)
    try:
        event = old.get_model("events", "Event").objects.create(
            title="Before", date="2031-01-01", time="10:00", location="Hall", capacity=10, enrolled_count=3
        )
        users = [
            old.get_model("participants", "User").objects.create(email=f"p{i}@example.com", full_name="P")
            for i in range(3)
        ]
        for user in users:
            old.get_model("events", "Enrollment").objects.create(event=event, participant=user)

        new = migrate(AFTER)
        codes = list(new.get_model("events", "Enrollment").objects.values_list("checkin_code", flat=True))
        assert len(codes) == 3 and all(len(code) == 16 for code in codes)
        assert len(set(codes)) == 3
        migrated = new.get_model("events", "Event").objects.get(pk=event.pk)
        assert (migrated.duration_minutes, migrated.calendar_sequence) == (60, 0)
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


@needs_service("DATABASE_URL")
def test_check_in_codes_keep_their_unique_index_and_lose_the_pattern_index():
    """events 0007: the LIKE index PostgreSQL's schema editor adds to a unique CharField goes (codes
    are looked up whole); going back restores it; the unique index stays throughout."""

    def indexes():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'events_enrollment' AND indexdef LIKE %s",
                ["%(checkin_code%"],
            )
            return [row[0] for row in cursor.fetchall()]

    def pattern(defs):
        return [d for d in defs if "varchar_pattern_ops" in d]

    assert pattern(indexes()) == []
    assert [d for d in indexes() if d.startswith("CREATE UNIQUE INDEX")]
    try:
        migrate([("events", "0006_calendar_checkin_reminders")])
        assert len(pattern(indexes())) == 1
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    assert pattern(indexes()) == []
    assert [d for d in indexes() if d.startswith("CREATE UNIQUE INDEX")]
