"""config/dbconnections.py: the health check's round trip is skipped only for a connection that was
in use moments ago and saw no error."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from config import dbconnections


def _conn(**overrides: Any) -> SimpleNamespace:
    fields: dict[str, Any] = {
        "connection": object(),
        "health_check_enabled": True,
        "health_check_done": False,
        "errors_occurred": False,
        "queries_log": [],
    }
    fields.update(overrides)
    return SimpleNamespace(**fields)


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(dbconnections.time, "monotonic", lambda: now[0])
    return now


def _serve(monkeypatch, conns: list[SimpleNamespace]) -> None:
    monkeypatch.setattr(dbconnections.connections, "all", lambda initialized_only=False: conns)


def test_a_connection_released_moments_ago_skips_the_check(monkeypatch, settings, clock):
    settings.DB_HEALTH_CHECK_AFTER_IDLE_SECONDS = 1.0
    conn = _conn()
    _serve(monkeypatch, [conn])
    dbconnections.mark_released()
    clock[0] += 0.5
    dbconnections.skip_recent_health_checks()
    assert conn.health_check_done is True


def test_an_idle_connection_is_still_checked(monkeypatch, settings, clock):
    settings.DB_HEALTH_CHECK_AFTER_IDLE_SECONDS = 1.0
    conn = _conn()
    _serve(monkeypatch, [conn])
    dbconnections.mark_released()
    clock[0] += 1.5
    dbconnections.skip_recent_health_checks()
    assert conn.health_check_done is False


def test_a_connection_that_saw_an_error_is_still_checked(monkeypatch, settings, clock):
    settings.DB_HEALTH_CHECK_AFTER_IDLE_SECONDS = 1.0
    conn = _conn()
    _serve(monkeypatch, [conn])
    dbconnections.mark_released()
    conn.errors_occurred = True
    dbconnections.skip_recent_health_checks()
    assert conn.health_check_done is False


def test_a_new_connection_has_no_mark(monkeypatch, settings, clock):
    settings.DB_HEALTH_CHECK_AFTER_IDLE_SECONDS = 1.0
    conn = _conn(connection=None)
    _serve(monkeypatch, [conn])
    dbconnections.mark_released()  # closed at the end of the request: no mark
    conn.connection = object()  # connected again by the next request
    dbconnections.skip_recent_health_checks()
    assert conn.health_check_done is False


def test_zero_turns_the_skip_off(monkeypatch, settings, clock):
    settings.DB_HEALTH_CHECK_AFTER_IDLE_SECONDS = 0
    conn = _conn()
    _serve(monkeypatch, [conn])
    dbconnections.mark_released()
    dbconnections.skip_recent_health_checks()
    assert conn.health_check_done is False


def test_through_the_request_signals_in_the_order_of_a_server_process(monkeypatch, settings, clock):
    """Django's close_old_connections arms the check at each request start; ours runs after it, as
    in a server process, where django.db connected it long before the middleware module loads.
    (Django's test client reconnects close_old_connections around its requests, hence the setup.)"""
    import config.middleware  # noqa: F401  (installs the receivers, as every HTTP process does)

    settings.DB_HEALTH_CHECK_AFTER_IDLE_SECONDS = 1.0

    def close_if_unusable_or_obsolete() -> None:
        conn.health_check_done = False  # what Django does to a reused connection

    conn = _conn(close_if_unusable_or_obsolete=close_if_unusable_or_obsolete, health_check_done=True)
    _serve(monkeypatch, [conn])
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
        signal.connect(close_old_connections)
    request_started.disconnect(dispatch_uid="config.dbconnections.skip")
    request_finished.disconnect(dispatch_uid="config.dbconnections.mark")
    dbconnections.install()

    request_finished.send(sender=None)
    clock[0] += 0.2
    request_started.send(sender=None)
    assert conn.health_check_done is True
    request_finished.send(sender=None)
    clock[0] += 5
    request_started.send(sender=None)
    assert conn.health_check_done is False
