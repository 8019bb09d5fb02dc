"""Drops the pattern-matching (LIKE) index PostgreSQL's schema editor adds beside the unique index of
every unique CharField: check-in codes are only ever looked up whole, which the unique index serves,
so the second index cost every enrollment an index entry for nothing (in a rush, a few percent of
the database's CPU per enrollment, 2026-12-06). Django does not model these indexes, so the state is
unchanged; a later AlterField of the column drops such an index IF EXISTS, and one that makes the
field unique anew would recreate it."""

from django.db import migrations

TABLE = "events_enrollment"
COLUMN = "checkin_code"


def _like_indexes(cursor):
    cursor.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s"
        " AND indexdef LIKE %s",
        [TABLE, f"%({COLUMN} varchar_pattern_ops)%"],
    )
    return [row[0] for row in cursor.fetchall()]


def drop_like_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # only PostgreSQL's schema editor makes them
    with schema_editor.connection.cursor() as cursor:
        for name in _like_indexes(cursor):
            schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def restore_like_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    enrollment = apps.get_model("events", "Enrollment")
    field = enrollment._meta.get_field(COLUMN)
    schema_editor.execute(schema_editor._create_like_index_sql(enrollment, field))


class Migration(migrations.Migration):
    dependencies = [("events", "0006_calendar_checkin_reminders")]

    operations = [migrations.RunPython(drop_like_index, restore_like_index, elidable=False)]
