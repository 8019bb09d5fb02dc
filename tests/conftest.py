"""Fixtures of the whole suite (pytest loads this file by itself). Helpers the tests import are in
tests/helpers.py; test modules never import from here."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from django.core.cache import cache
from django.core.servers import basehttp
from rest_framework.test import APIClient

from config import realtime
from config.celery import app as celery_app
from config.outbox import services as outbox_services
from events.models import Event
from participants.models import User
from tests.factories import AdminFactory, EventFactory, UserFactory
from tests.helpers import broker, client_for

# The live server's accept queue (Django's WSGIServer listens with a backlog of 10): tests that send
# 80 requests at once must see 80 answers, not connections reset by the test server's listen queue.
basehttp.WSGIServer.request_queue_size = 256


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    """Stored report documents go to a folder of the test's own."""
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture(autouse=True)
def _tasks_in_process(settings):
    """Tasks run in-process after commit, as on the embedded default, whatever the environment says.

    Deterministic for every test, and no test leaves messages behind in RabbitMQ. The tests of the
    real broker and workers (test_workers.py) switch to it explicitly with `broker()`.
    """
    settings.CELERY_TASK_ALWAYS_EAGER = True


@pytest.fixture(autouse=True)
def _no_remembered_queued_events():
    """Factories write events past the services, and SQLite reuses ids after a flush: nothing a
    process remembered about an event (events.services.queued_events) may outlive its test."""
    from events import services as event_services

    event_services.queued_events.clear()
    yield
    event_services.queued_events.clear()


@pytest.fixture(autouse=True)
def _outbox_publishes_inline():
    """A test that saw the broker fail must not leave later tests' inline publishing paused."""
    outbox_services._inline_paused_until = 0.0
    realtime._paused_until = 0.0
    yield
    outbox_services._inline_paused_until = 0.0
    realtime._paused_until = 0.0


@pytest.fixture
def celery_worker(transactional_db):
    """A real Celery worker (a thread of this process) on the real broker, consuming both queues."""
    from celery.contrib.testing.worker import start_worker
    from django.conf import settings

    url = os.environ["CELERY_BROKER_URL"]
    with broker(url, eager=False):
        celery_app.control.purge()  # no leftovers of earlier runs
        with start_worker(
            celery_app,
            pool="threads",
            concurrency=2,
            perform_ping_check=False,
            queues=["notifications", "reports"],
            shutdown_timeout=30,
        ) as worker:
            assert not settings.CELERY_TASK_ALWAYS_EAGER
            yield worker


@pytest.fixture(autouse=True)
def _empty_cache():
    """Throttle counters and cached answers must not leak from one test into the next."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def participant(db) -> User:
    return UserFactory()


@pytest.fixture
def admin(db) -> User:
    return AdminFactory()


@pytest.fixture
def participant_api(participant) -> APIClient:
    return client_for(participant)


@pytest.fixture
def admin_api(admin) -> APIClient:
    return client_for(admin)


@pytest.fixture
def event(db) -> Event:
    return EventFactory()


@pytest.fixture
def make_participants(db) -> Callable[[int], list[User]]:
    return lambda n: UserFactory.create_batch(n)


def pytest_sessionfinish(session, exitstatus):
    """With FAIL_ON_SKIP=1 (the services pass of CI) a skipped test fails the run: a renamed
    variable must not turn the service tests off without anyone noticing."""
    if os.environ.get("FAIL_ON_SKIP") != "1" or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(
            f"FAIL_ON_SKIP: {len(skipped)} test(s) skipped in a pass that must run them all", red=True
        )
        session.exitstatus = 1
