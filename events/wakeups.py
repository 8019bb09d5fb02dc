"""Waking the admission consumer: a hint, not a record.

An accepted request is durable as its row (events.admission); what RabbitMQ carries is only "event
X has requests to decide". So the accepting request writes no outbox row: after its commit it tells
this process's waker, which gathers the events named meanwhile and publishes one batched wake-up
(`events.decide_admissions`, items `[{"event_id": …}]`) for all of them, so a rush costs the
consumer a few messages a second instead of one per request. An event already waiting to be
published needs nothing more: that publish happens after this commit, so the decision it wakes sees
the request.

A hint can be lost (the process dies before publishing, RabbitMQ is away). The outbox relay sweeps
for that (`wake_stale`, registered with it): every request still pending a few seconds after it
was accepted gets its event woken again. Nothing accepted waits for ever; in the normal path a
decision follows within a fraction of a second.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Iterable

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from config.outbox import services as outbox
from config.process_threads import ProcessThread
from events.domain import RequestStatus

log = logging.getLogger(__name__)

DECIDE_TASK = "events.decide_admissions"
# How long a waker gathers before publishing: during a rush one wake-up per process and 200 ms lets
# each decision batch take dozens of requests, instead of the consumer paying its fixed cost (the
# table barrier, the event's lock, the batch's notifications and broadcast) for every few (the rush
# before and after: docs/architecture.md, "Measurements behind design choices").
GATHER_SECONDS = 0.2
# After a failed publish this process leaves waking to the relay's sweep for this long.
PAUSE_SECONDS = 5.0
# A request still pending this long after it was accepted is woken again by the sweep.
STALE_SECONDS = 2.0


def wake(event_id: int) -> None:
    """After the commit of an accepted request: make sure the consumer decides this event."""
    if settings.CELERY_TASK_ALWAYS_EAGER:  # the embedded default decides here and now
        from events import admission

        try:
            admission.decide_pending(event_ids=[event_id])
        except DatabaseError:  # the request is stored and answered 202: the relay's sweep decides it
            log.exception("Deciding event %s's requests failed; the outbox relay's sweep retries", event_id)
        return
    _Waker.instance().add(event_id)


def publish(event_ids: Iterable[int]) -> None:
    """One wake-up for these events (raises when the broker refuses, or does not confirm within
    outbox.PUBLISH_TIMEOUT_SECONDS)."""
    items = [{"event_id": event_id} for event_id in sorted(set(event_ids))]
    if items:
        outbox.send_task(DECIDE_TASK, kwargs={"items": items})


def wake_stale(*, older_than: float = STALE_SECONDS) -> int:
    """Wakes every event that has a request pending for longer than `older_than` seconds (the relay
    calls this in its loop). Returns how many events were woken."""
    from events.models import AdmissionRequest

    cutoff = timezone.now() - dt.timedelta(seconds=older_than)
    event_ids = list(
        AdmissionRequest.objects.filter(status=RequestStatus.PENDING, queued_at__lt=cutoff)
        .values_list("event_id", flat=True)
        .distinct()
    )
    if not event_ids:
        return 0
    if settings.CELERY_TASK_ALWAYS_EAGER:
        from events import admission

        admission.decide_pending(event_ids=event_ids)
    else:
        publish(event_ids)
    return len(event_ids)


def flush(timeout: float = 10.0) -> bool:
    """Waits until this process's waker has published what it was given (tests, shutdown)."""
    waker = _Waker.running_here()
    if waker is None:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with waker.lock:
            if not waker.events and not waker.busy:
                return True
        time.sleep(0.01)
    return False


class _Waker(ProcessThread):
    """One daemon thread per process publishing the events named since its last publish."""

    thread_name = "admission-waker"
    _instance = None

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: set[int] = set()
        self.busy = False
        self.named = threading.Event()
        self.paused_until = 0.0
        super().__init__()

    def add(self, event_id: int) -> None:
        with self.lock:
            if event_id in self.events:
                return  # a publish that comes after this commit is already due
            self.events.add(event_id)
        self.named.set()

    def _run(self) -> None:
        while True:
            self.named.wait()
            time.sleep(GATHER_SECONDS)  # gather what commits meanwhile into this one message
            self.named.clear()
            with self.lock:
                events, self.events = self.events, set()
                self.busy = True
            try:
                if time.monotonic() >= self.paused_until:
                    publish(events)
            except Exception:
                self.paused_until = time.monotonic() + PAUSE_SECONDS
                log.warning(
                    "admission wake-up for events %s failed; the relay's sweep will retry", sorted(events)
                )
            finally:
                with self.lock:
                    self.busy = False
