from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from config import realtime
from config.celery import app as celery_app
from config.outbox import services as outbox_services
from events.models import Event
from participants.models import User
from tests.factories import AdminFactory, EventFactory, UserFactory

SERVICES = {
    "DATABASE_URL": "PostgreSQL",
    "REDIS_URL": "Redis",
    "CELERY_BROKER_URL": "RabbitMQ",
}


def needs_service(variable: str) -> pytest.MarkDecorator:
    """Skips (with its reason) a test that needs a real service whose URL is not set."""
    return pytest.mark.skipif(
        not os.environ.get(variable),
        reason=f"needs {SERVICES[variable]}: set {variable} (the services pass of CI)",
    )


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


@contextlib.contextmanager
def broker(url: str, *, eager: bool = False):
    """Points the Celery app at another broker for the duration (and the outbox at it)."""
    from django.conf import settings

    def reset_connections():
        # kombu keeps one pool per broker URL; dropping the app's references picks the URL's own.
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    # Celery reads CELERY_BROKER_URL from the environment before its own configuration.
    saved = (
        os.environ.get("CELERY_BROKER_URL"),
        celery_app.conf.broker_url,
        settings.CELERY_TASK_ALWAYS_EAGER,
    )
    os.environ["CELERY_BROKER_URL"] = celery_app.conf.broker_url = url
    settings.CELERY_TASK_ALWAYS_EAGER = eager
    reset_connections()
    try:
        yield
    finally:
        # What the publisher thread was handed belongs to this broker: let it finish here.
        outbox_services.flush_publisher()
        if saved[0] is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = saved[0]
        celery_app.conf.broker_url, settings.CELERY_TASK_ALWAYS_EAGER = saved[1], saved[2]
        reset_connections()


DEAD_BROKER = "amqp://guest:guest@127.0.0.1:1//"


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


def wait_until(predicate, *, timeout: float = 30.0, interval: float = 0.1):
    """Polls until predicate() is truthy; fails the test with a clear message after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout} s")


@pytest.fixture(autouse=True)
def _empty_cache():
    """Throttle counters and cached answers must not leak from one test into the next."""
    cache.clear()
    yield
    cache.clear()


def client_for(user: User | None) -> APIClient:
    api = APIClient()
    if user is not None:
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return api


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


def assert_problem(response, status: int, code: str) -> dict:
    """The contract's error shape, with this status and code."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/problem+json"), response["Content-Type"]
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code, body
    assert body["detail"]
    assert body["request_id"] == response["X-Request-ID"]
    return body


def database_url_for_children() -> str:
    """The test database, as a URL another process (a server, a worker) can open."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def asgi_server(tmp_path, **env: str):
    """`make run`'s server (uvicorn, config.asgi) in its own process, on the test database."""
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    port = free_port()
    child_env = {**os.environ, "DATABASE_URL": database_url_for_children(), "VAR_DIR": str(tmp_path), **env}
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "config.asgi:application",
        "--port",
        str(port),
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "5",
    ]
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        command, cwd=Path(__file__).resolve().parents[1], env=child_env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            if server.poll() is not None:
                pytest.fail("server exited:\n" + (tmp_path / "server.log").read_text()[-3000:])
            try:
                return urllib.request.urlopen(base + "/health/live", timeout=1).status == 200  # noqa: S310
            except OSError:
                return False

        wait_until(answers, timeout=60, interval=0.2)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)  # uvicorn's own bound is 5 s (--timeout-graceful-shutdown)
        except subprocess.TimeoutExpired:
            server.kill()  # never leave a server holding the test database behind
            server.wait()
            raise
        finally:
            log.close()


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
