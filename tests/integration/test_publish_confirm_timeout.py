"""A broker that takes a publish and never confirms it (RabbitMQ under a memory or disk alarm stops
reading and answering its publishers): the publish fails within outbox.PUBLISH_TIMEOUT_SECONDS, its
message stays pending, and the relay publishes it once the broker answers again (services pass)."""

import contextlib
import os
import socket
import threading
import time
import urllib.parse

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from config.celery import app as celery_app
from config.outbox import services as outbox
from config.outbox.models import OutboxMessage
from events import wakeups
from tests.helpers import broker, needs_service

pytestmark = [needs_service("CELERY_BROKER_URL"), pytest.mark.django_db(transaction=True)]

# No worker runs it (it lands in the default queue, purged after the test): the outbox rows say
# what was published.
PROBE_TASK = "tests.confirm_timeout_probe"
# An event no one decides: the wake-ups land in the admissions queue, purged after the test.
NO_EVENT = 10**9
# Long enough for a bounded publish (outbox.PUBLISH_TIMEOUT_SECONDS, 5 s, for the confirm; 2 s for a
# connect), far shorter than "until the alarm clears", which is how long publishing waited before.
BOUND = 10.0


class FreezableProxy:
    """A TCP proxy in front of RabbitMQ passing bytes both ways until frozen, then none until thawed:
    what a publisher sees of a broker under a resource alarm, which reads nothing more from its
    socket and answers nothing (no confirm, and no handshake to a new connection). Bytes are held,
    not lost. Counts the connections it accepts."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.flowing = threading.Event()
        self.flowing.set()
        self.closed = threading.Event()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def freeze(self) -> None:
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    def close(self) -> None:
        self.closed.set()
        self.flowing.set()
        for sock in [self.listener, *self.sockets]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked reading it; close() alone does not
            sock.close()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                continue  # the listener closed (the loop ends), or the broker refused this one
            upstream.settimeout(None)
            self.accepted += 1
            self.sockets += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                pump = threading.Thread(target=self._pump, args=(source, target), daemon=True)
                pump.start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self.flowing.wait()
                if self.closed.is_set():
                    return
                target.sendall(data)
            target.shutdown(socket.SHUT_WR)  # pass the end on: the other side closes in turn
        except OSError:
            pass  # one side went away: so does the other, through its own pump


@pytest.fixture
def blocked_broker(transactional_db):
    """A proxy in front of the test's RabbitMQ, frozen by the test at will, and the app publishing
    through it (not eager). Thawed at the end: a publish still waiting (the code before the bound)
    then finishes and lets go of its rows and its connection."""
    url = os.environ["CELERY_BROKER_URL"]
    address = urllib.parse.urlsplit(url)
    proxy = FreezableProxy((address.hostname or "127.0.0.1", address.port or 5672))
    through_proxy = address._replace(netloc=f"{address.username}:{address.password}@127.0.0.1:{proxy.port}")
    try:
        with broker(urllib.parse.urlunsplit(through_proxy)):
            try:
                yield proxy
            finally:
                proxy.thaw()
    finally:
        proxy.close()
        with broker(url):
            celery_app.control.purge()  # the probes, and any copy of a publish whose confirm was late


def within(seconds: float, work):
    """What work() returns, run in a thread of its own (with its own database connection); fails the
    test if it has not finished within `seconds` (the thread is left to finish once thawed)."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["returned"] = work()
        except Exception as exc:  # noqa: BLE001
            outcome["raised"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still waiting for the broker after {seconds} s")
    if "raised" in outcome:
        raise outcome["raised"]
    return outcome["returned"]


def enqueue_probe(n: int) -> OutboxMessage:
    with transaction.atomic():
        return outbox.enqueue(PROBE_TASK, n=n)


def test_an_unconfirmed_publish_fails_within_the_bound_and_the_relay_publishes_it_later(blocked_broker):
    proxy = blocked_broker
    first = enqueue_probe(1)
    assert outbox.flush_publisher(BOUND)
    first.refresh_from_db()
    assert first.published_at is not None and proxy.accepted == 1  # the publisher's connection is open

    proxy.freeze()
    stuck = enqueue_probe(2)
    started = time.monotonic()
    assert outbox.flush_publisher(BOUND), "the publisher thread still waits for the broker's confirm"
    waited = time.monotonic() - started
    assert outbox.PUBLISH_TIMEOUT_SECONDS - 0.5 < waited < BOUND  # it gave up on the confirm
    stuck.refresh_from_db()
    assert (stuck.published_at, stuck.attempts) == (None, 1)  # its transaction committed, rows unlocked
    assert "timed out" in stuck.last_error, stuck.last_error

    # The relay meanwhile: bounded too, and on a new connection (which the frozen broker does not
    # answer either), not on the one left waiting for that confirm.
    errors: list = []
    published, _ = within(BOUND, lambda: outbox.relay_round(lambda label, exc: errors.append(label)))
    assert (published, errors) == (0, [None])
    assert proxy.accepted == 2
    stuck.refresh_from_db()
    assert (stuck.published_at, stuck.attempts) == (None, 2)

    # The broker answers again: the relay publishes it.
    proxy.thaw()
    call_command("relay_outbox", "--once")
    stuck.refresh_from_db()
    assert stuck.published_at is not None


def test_an_unconfirmed_wake_up_fails_within_the_bound_and_the_waker_leaves_it_to_the_sweep(blocked_broker):
    proxy = blocked_broker
    within(BOUND, lambda: wakeups.publish([NO_EVENT]))
    assert proxy.accepted == 1  # the connection is open

    proxy.freeze()
    wakeups.wake(NO_EVENT)
    waker = wakeups._Waker.running_here()
    assert waker is not None
    try:
        assert wakeups.flush(BOUND), "the waker still waits for the broker's confirm"
        # As when the broker is away: the waker pauses, and the relay's sweep wakes the event later.
        assert waker.paused_until > time.monotonic()

        proxy.thaw()
        within(BOUND, lambda: wakeups.publish([NO_EVENT]))  # on a new connection
        assert proxy.accepted == 2
    finally:
        waker.paused_until = 0.0  # the next test's wake-ups are published at once
