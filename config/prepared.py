"""Prepared statements for the few statements a rush runs thousands of times.

Django's PostgreSQL cursors bind parameters on the client (the SQL is sent with the values quoted
in) and never prepare: PostgreSQL parses and plans every statement anew. For the enrollment's one
statement (a data-modifying CTE over three tables) planning cost more than running it: about half
of the database's CPU per enrollment, measured 2026-12-06 (docs/architecture.md, Performance).

`prepared_cursor()` is a Django cursor (its errors converted as usual) over psycopg's server-side
binding cursor, which prepares each statement at its first run on a connection: later runs only
bind and execute. Where Django logs queries (DEBUG, tests that count them) it is Django's own
cursor, whose log shows each statement with its values. Statements sent through it must be server-side
bindable (no parameter where PostgreSQL takes none, such as an identifier), and should list the
columns they return: a prepared statement's result type may not change under it.

`DB_PREPARED_STATEMENTS=false` turns it off, for a deployment behind a transaction-mode pooler
that cannot track prepared statements (PgBouncer before 1.21, or without `max_prepared_statements`):
`prepared_cursor()` is then Django's own cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.utils import CursorWrapper


class _PreparingCursor(psycopg.Cursor[Any]):
    """Server-side binding, every statement prepared on the connection at its first run."""

    def execute(  # type: ignore[override]
        self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool | None = None
    ) -> _PreparingCursor:
        return super().execute(query, params, prepare=True, binary=binary)


def _prepares(db: Any) -> bool:
    # Where queries are logged (DEBUG, tests counting queries), Django's cursor: its log shows each
    # statement with its values, which a server-side bound one cannot.
    return db.vendor == "postgresql" and settings.DB_PREPARED_STATEMENTS and not db.queries_logged


def prepared_cursor() -> Any:
    """A cursor whose statements PostgreSQL plans once per connection (Django's own cursor on
    another database, or with DB_PREPARED_STATEMENTS off). Use it as `with prepared_cursor() as c:`."""
    # The thread's connection itself, not the `connection` proxy, which finds it again (a lookup in
    # asgiref's Local) at every attribute: a dozen times per statement, a rush's every request.
    db = connections[DEFAULT_DB_ALIAS]
    if not _prepares(db):
        return db.cursor()
    return CursorWrapper(_open_preparing_cursor(db), db)  # (what connection.make_cursor() returns)


def _open_preparing_cursor(db: Any) -> _PreparingCursor:
    """What Django's connection.cursor() does, with this cursor class instead of the configured one."""
    db.close_if_health_check_failed()
    db.ensure_connection()
    with db.wrap_database_errors:
        cursor = _PreparingCursor(db.connection)
    db.validate_thread_sharing()
    return cursor


def prepared_row(sql: str, params: Sequence[Any], *, binary_results: bool = False) -> Any:
    """The first row of one statement run as prepared_cursor() runs it, or None: for the rush's
    statements, one row each, called thousands of times a second.

    Django's CursorWrapper around a psycopg cursor made for one statement wraps the execute and
    the fetch in further layers; this runs them on the psycopg cursor itself, with what those
    layers check kept (the thread, a transaction that must roll back first, errors converted to
    Django's and marking the connection) and what they add for others honoured by taking the
    usual path: Django's cursor where queries are logged or prepared statements are off, and
    prepared_cursor() where an execute wrapper is installed (connection.execute_wrapper()).

    `binary_results`: the row comes in PostgreSQL's binary format, read by psycopg's own C
    loaders. Django reads a timestamptz sent as text with a Python loader of its own (made anew for
    each result, then parsing the text); the values are the same, an aware datetime in the
    connection's time zone (UTC). Only for a statement whose columns read alike in both formats
    (integers, text, booleans, timestamps); ignored where the usual path is taken."""
    db = connections[DEFAULT_DB_ALIAS]
    if not _prepares(db) or db.execute_wrappers:
        with prepared_cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    cursor = _open_preparing_cursor(db)
    with db.wrap_database_errors, cursor:
        db.validate_no_broken_transaction()  # (CursorWrapper.execute()'s check)
        cursor.execute(sql, params, binary=binary_results or None)
        return cursor.fetchone()
