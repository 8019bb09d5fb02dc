"""Helpers the tests import: plain functions and context managers, no fixtures.

Fixtures live in conftest.py, which pytest loads by itself; a test module imports what it calls
from here (`from tests.helpers import assert_problem, client_for`), never from conftest.py.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection, transaction
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from config.celery import app as celery_app
from config.outbox import services as outbox_services
from participants.models import User

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


def wait_until(predicate, *, timeout: float = 30.0, interval: float = 0.1):
    """Polls until predicate() is truthy; fails the test with a clear message after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout} s")


def client_for(user: User | None) -> APIClient:
    api = APIClient()
    if user is not None:
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return api


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
def asgi_server(tmp_path, *options: str, app: str = "config.asgi:application", **env: str):
    """`make run`'s server (uvicorn, config.asgi) in its own process, with uvicorn's `options`, on
    the test database; its log goes to tmp_path / "server.log"."""
    import sys

    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        *options,
        "--port",
        str(port),
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "5",
    ]
    with serving(tmp_path, command, port, env=env) as base:
        yield base


@contextlib.contextmanager
def wsgi_server(tmp_path, *options: str, app: str = "config.wsgi", **env: str):
    """The deployed HTTP server (gunicorn with config/gunicorn.conf.py, config.wsgi) in its own
    process, with one worker and gunicorn's `options`, on the test database; its log goes to
    tmp_path / "server.log"."""
    import sys

    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "config/gunicorn.conf.py",
        app,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--graceful-timeout",
        "5",
        "--no-control-socket",
        *options,
    ]
    with serving(tmp_path, command, port, env=env) as base:
        yield base


@contextlib.contextmanager
def serving(
    tmp_path,
    command: list[str],
    port: int,
    *,
    env: dict[str, str] | None = None,
    health: str = "/health/live",
    log_name: str = "server.log",
):
    """Runs the server `command` listening on `port` (its output to tmp_path / log_name) until
    `health` answers 200; yields its base URL, and stops it at the end."""
    import subprocess
    import urllib.request
    from pathlib import Path

    child_env = {
        **os.environ,
        "DATABASE_URL": database_url_for_children(),
        "VAR_DIR": str(tmp_path),
        **(env or {}),
    }
    log = (tmp_path / log_name).open("wb")
    server = subprocess.Popen(
        command, cwd=Path(__file__).resolve().parents[1], env=child_env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            if server.poll() is not None:
                pytest.fail("server exited:\n" + (tmp_path / log_name).read_text()[-3000:])
            try:
                return urllib.request.urlopen(base + health, timeout=1).status == 200  # noqa: S310
            except OSError:
                return False

        wait_until(answers, timeout=60, interval=0.2)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)  # each server's own bound is 5 s
        except subprocess.TimeoutExpired:
            server.kill()  # never leave a server holding the test database behind
            server.wait()
            raise
        finally:
            log.close()


ROOT = Path(__file__).resolve().parents[1]


def notifications_worker_process(env: dict[str, str], *, pool: str = "solo") -> subprocess.Popen[bytes]:
    """A real Celery worker process on the notifications queue, to kill and restart: the solo pool,
    or one prefork process (the deployed pool: time limits need it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "notifications", "-P", pool,
         "-c", "1", "--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def scrape_metrics(client: APIClient) -> dict[str, float]:
    """The samples `GET /metrics` exports, by name with labels (`name{label="value"}`)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for line in response.content.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def form_as_posted(page: str) -> dict[str, str]:
    """The inputs of an admin page's form as a browser posts them: every field with its value,
    checkboxes only when ticked, no submit buttons."""
    form = {}
    for tag in re.findall(r"<input [^>]*>", page):
        name, value = re.search(r'name="([^"]+)"', tag), re.search(r'value="([^"]*)"', tag)
        kind = re.search(r'type="([^"]+)"', tag)
        if name is None or (kind and kind[1] == "submit"):
            continue
        if kind and kind[1] == "checkbox":
            if "checked" in tag:
                form[name[1]] = "on"
            continue
        form[name[1]] = html.unescape(value[1]) if value else ""
    for select in re.finditer(r'<select [^>]*name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.search(r'<option value="([^"]*)"[^>]*selected', select[2])
        form[select[1]] = html.unescape(chosen[1]) if chosen else ""
    for area in re.finditer(r'<textarea [^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', page, re.S):
        form[area[1]] = html.unescape(area[2]).lstrip("\n")
    return form


class Pause:
    """The point where the first work of `while_paused` stops, whatever it holds still held, until
    the second has waited on it: call it there."""

    def __init__(self) -> None:
        self.reached, self.released = threading.Event(), threading.Event()

    def __call__(self) -> None:
        self.reached.set()
        self.released.wait(10)


def while_paused(first, second, pause: Pause, *, second_must_wait: bool = False) -> list[Exception]:
    """Runs first() in a thread until it calls `pause`, then second() in another, which waits on
    what first() holds; a second later lets both finish. Each thread has its own connection, so its
    own transactions. Returns what either raised. `second_must_wait`: assert that second() was
    still waiting when released."""
    errors: list[Exception] = []

    def run(work, *, is_first: bool) -> None:
        try:
            work()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            if is_first:
                pause.reached.set()  # (failed before its pause: the second goes on regardless)
            connection.close()

    holder = threading.Thread(target=run, args=(first,), kwargs={"is_first": True})
    holder.start()
    assert pause.reached.wait(10)
    follower = threading.Thread(target=run, args=(second,), kwargs={"is_first": False})
    follower.start()
    time.sleep(1.0)  # the follower is now waiting for what the first holds
    if second_must_wait:
        assert follower.is_alive()
    pause.released.set()
    holder.join(20)
    follower.join(20)
    return errors


def in_another_thread(work):
    """Starts work() on a connection of its own; the returned join() gives what it raised."""
    errors: list[Exception] = []

    def run():
        try:
            work()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()

    def join():
        thread.join(20)
        assert not thread.is_alive()
        return errors

    return join


@contextlib.contextmanager
def held_open(work):
    """Runs work() in a transaction of its own, on a thread with its own connection, and keeps that
    transaction open, whatever it locked still locked, until the with-block ends; then it commits.
    What work() raised is raised at the end."""
    holding, release = threading.Event(), threading.Event()
    errors: list[Exception] = []

    def hold() -> None:
        try:
            with transaction.atomic():
                work()
                holding.set()
                release.wait(20)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            holding.set()
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        if errors:
            raise errors[0]
        yield
    finally:
        release.set()
        holder.join(20)
    if errors:
        raise errors[0]


def while_held(first, second):
    """Runs first() in a transaction kept open until second(), started meanwhile, has waited for a
    second on what first() locked; then both finish. Returns what either raised."""
    pause = Pause()

    def first_in_a_transaction() -> None:
        with transaction.atomic():
            first()
            pause()

    return while_paused(first_in_a_transaction, second, pause)


def raw_exchange(base: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Sends the bytes as they are (no client library would send these) and reads the answer to
    the end (the server closes the connection): status, headers (lower-case names) and body, a
    chunked one put together."""
    import socket
    import urllib.parse

    address = urllib.parse.urlsplit(base)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = (line.partition(":") for line in header_lines)
    headers = {name.lower(): value.strip() for name, _, value in fields}
    if headers.get("transfer-encoding") == "chunked":
        chunks, rest = [], body
        while (size := int(rest.partition(b"\r\n")[0].split(b";")[0], 16)) > 0:
            rest = rest.partition(b"\r\n")[2]
            chunks.append(rest[:size])
            rest = rest[size + 2 :]
        body = b"".join(chunks)
    return int(status_line.split()[1]), headers, body
