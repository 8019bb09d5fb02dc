"""Persistent database connections without a health check on every request.

With `CONN_HEALTH_CHECKS`, Django checks a reused connection with a round trip (`SELECT 1` on
PostgreSQL) at the first query of every request: on a busy worker that was one round trip in six of
an enrollment. A connection that answered a moment ago is as good as checked, so the check is
skipped when the connection's previous request ended less than `DB_HEALTH_CHECK_AFTER_IDLE_SECONDS`
ago. What a check is for, a connection that died while idle (a proxy's or firewall's idle timeout,
a server restarted overnight), is still caught: those connections have been idle far longer. The
one case left to the error path is the database going away within that many seconds of a worker's
last request: that worker's next request fails (500), Django's own error handling closes the
connection at its end (`errors_occurred`), and the request after it connects afresh. At most one
failed request per worker and restart, besides the requests in flight that fail anyway.

`install()` hooks the request signals: Django's own `close_old_connections` runs first (it was
connected when django.db was imported) and arms the check; the receiver here disarms it for a
connection that was in use moments ago. Connections are per thread, and so are these marks.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import connections

_RELEASED_AT = "_released_at"  # set on each connection wrapper: when its last request ended


def _idle_limit() -> float:
    return float(getattr(settings, "DB_HEALTH_CHECK_AFTER_IDLE_SECONDS", 1.0))


def skip_recent_health_checks(**kwargs: Any) -> None:
    limit = _idle_limit()
    if limit <= 0:
        return
    now = time.monotonic()
    conn: Any  # (django-stubs do not know the health check's attributes)
    for conn in connections.all(initialized_only=True):
        released = getattr(conn, _RELEASED_AT, None)
        if (
            conn.connection is not None
            and conn.health_check_enabled
            and not conn.errors_occurred
            and released is not None
            and now - released < limit
        ):
            conn.health_check_done = True


def mark_released(**kwargs: Any) -> None:
    now = time.monotonic()
    for conn in connections.all(initialized_only=True):
        # A connection closed at the end of the request (errors, max age) starts with no mark.
        setattr(conn, _RELEASED_AT, now if conn.connection is not None else None)


def install() -> None:
    """Connects the receivers (idempotent: each is connected once, by its dispatch uid)."""
    request_started.connect(skip_recent_health_checks, dispatch_uid="config.dbconnections.skip")
    request_finished.connect(mark_released, dispatch_uid="config.dbconnections.mark")
