"""The report's rows written by PostgreSQL itself: JSON text out of `COPY … TO STDOUT`.

Each participant (and each waiting-list entry) leaves the database as one finished line of JSON,
`, {"id": 1, "full_name": "…", "email": "…", "enrolled_at": "…", "checked_in_at": "…" or null}`,
made by string concatenation
with `to_json()` quoting the text (faster than `json_build_object`, and the same separators as the
Python builder). Python never sees a row as an object: it moves blocks of bytes from the socket to
the output (reports.output), counts the lines and drops the line ends COPY adds.

Why the rows are as they are:
- COPY's text format doubles every backslash (JSON escapes are full of them); the CSV format with
  a delimiter and a quote character that JSON text never contains unescaped (\\x02, \\x01: to_json
  writes every control character as \\u00XX) sends the text untouched, one line per row.
- Timestamps are written as Python's `datetime.isoformat()` writes an aware UTC datetime, the
  Python builder's format: `2026-11-29T06:10:15.123456+00:00`, six digits of microseconds, and
  none at all when they are zero. `AT TIME ZONE 'UTC'` makes it independent of the session's zone.
- The order and the positions are the selectors' (events.selectors): enrollments by
  (created_at, id), the waiting list by id with ROW_NUMBER() as the position.
- The plan streams: the enrollments are read in the order of their (event, created_at) index
  (ties on created_at sorted by id in small groups), and each one's participant is looked up by
  primary key (a LATERAL subquery with OFFSET 0, which the planner cannot turn into a hash join).
  The first row leaves at once, so PostgreSQL makes rows on one core while the worker writes and
  compresses them on the other. The planner's own choice for a large event, a hash join and then
  a sort of every finished line, sends nothing until the sort is done, and that sort spills to
  disk beyond work_mem. JIT is off for these statements: the nested loop's estimated cost
  crosses jit_optimize_above_cost, and compiling costs a large share of the query for nothing
  back. The figures: docs/architecture.md, "Measurements behind design choices".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection, transaction

from events.models import Enrollment, WaitlistEntry
from participants.models import User
from reports.output import DocumentOutput

# psycopg's copy hands over one row per read; joined into blocks of this many bytes before the
# per-block work (count, strip, write, compress).
BLOCK_BYTES = 256 * 1024
_COPY_OPTIONS = "WITH (FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')"


def _table(model: Any) -> str:
    return str(connection.ops.quote_name(model._meta.db_table))


def _column(model: Any, field: str) -> str:
    return str(connection.ops.quote_name(model._meta.get_field(field).column))


def _iso_utc(column: str) -> str:
    """SQL for Python's isoformat() of an aware UTC datetime."""
    return (
        f"replace(to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '')"
        " || '+00:00'"
    )


def _person(alias: str) -> str:
    """The participant's part of a row: id, full_name and email, as JSON members."""
    return (
        f"""', {{"id": ' || {alias}.{_column(User, "id")}"""
        f""" || ', "full_name": ' || to_json({alias}.{_column(User, "full_name")})"""
        f""" || ', "email": ' || to_json({alias}.{_column(User, "email")})"""
    )


# Table and column names come from the models (quoted), values are bound: nothing here is input.
def participants_sql() -> str:
    e = "e"
    user_id = _column(User, "id")
    # null until they check in: a NULL time makes the quoted text NULL, and COALESCE writes null.
    checked_in = f"{e}.{_column(Enrollment, 'checked_in_at')}"
    return (
        f"SELECT {_person('u')}"  # noqa: S608
        f""" || ', "enrolled_at": "' || {_iso_utc(f"{e}.{_column(Enrollment, 'created_at')}")} || '"'"""
        f""" || ', "checked_in_at": ' || COALESCE('"' || {_iso_utc(checked_in)} || '"', 'null') || '}}'"""
        f" FROM {_table(Enrollment)} {e}"
        f" CROSS JOIN LATERAL (SELECT {user_id}, {_column(User, 'full_name')}, {_column(User, 'email')}"
        f" FROM {_table(User)} WHERE {user_id} = {e}.{_column(Enrollment, 'participant')} OFFSET 0) u"
        f" WHERE {e}.{_column(Enrollment, 'event')} = %s"
        f" ORDER BY {e}.{_column(Enrollment, 'created_at')}, {e}.{_column(Enrollment, 'id')}"
    )


def waitlist_sql() -> str:
    entry_id = _column(WaitlistEntry, "id")
    return (
        f"SELECT {_person('u')}"  # noqa: S608
        """ || ', "position": ' || w.position"""
        f""" || ', "joined_at": "' || {_iso_utc("w.joined_at")} || '"}}'"""
        f" FROM (SELECT {entry_id} AS id, {_column(WaitlistEntry, 'participant')} AS participant_id,"
        f" {_column(WaitlistEntry, 'joined_at')} AS joined_at,"
        f" ROW_NUMBER() OVER (ORDER BY {entry_id}) AS position"
        f" FROM {_table(WaitlistEntry)} WHERE {_column(WaitlistEntry, 'event')} = %s) w"
        f" JOIN {_table(User)} u ON u.{_column(User, 'id')} = w.participant_id"
        " ORDER BY w.id"
    )


def copy_rows(sql: str, event_id: int, output: DocumentOutput) -> int:
    """Streams the rows of `sql` (each `, {…}`) into `output` as a JSON list's items; their number.

    The leading ", " of the first row is dropped, and the line ends COPY puts after each row: the
    text is then exactly what the Python builder writes between the brackets.
    """
    rows = 0
    first = True
    pending: list[Any] = []  # bytes or memoryviews, as psycopg hands them
    pending_bytes = 0

    def flush() -> None:
        nonlocal rows, first, pending_bytes
        block = b"".join(pending)
        pending.clear()
        pending_bytes = 0
        if not block:
            return
        # JSON text has no raw line end (to_json escapes them): one per row, put there by COPY.
        rows += block.count(b"\n")
        block = block.replace(b"\n", b"")
        if first:
            block, first = block[2:], False  # the first row's ", "
        output.write(block)

    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(f"COPY ({sql}) TO STDOUT {_COPY_OPTIONS}", [event_id]) as copy:
            for data in copy:
                pending.append(data)
                pending_bytes += len(data)
                if pending_bytes >= BLOCK_BYTES:
                    flush()
    flush()
    return rows


def is_available() -> bool:
    return connection.vendor == "postgresql"


def write_lists(event_id: int, output: DocumentOutput, between: Callable[[], None]) -> tuple[int, int]:
    """Writes the participants, calls `between` (the text between the lists), writes the waiting
    list; returns (participants, waiting). Both come from one snapshot (REPEATABLE READ), so a
    promotion from the waiting list while the report is read cannot list a person twice or never."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:  # (inside a caller's transaction, its isolation and settings apply)
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                cursor.execute("SET LOCAL jit = off")
        participants = copy_rows(participants_sql(), event_id, output)
        between()
        waiting = copy_rows(waitlist_sql(), event_id, output)
    return participants, waiting
