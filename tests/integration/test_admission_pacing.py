"""The admission consumer decides at most every DECIDE_INTERVAL_SECONDS while requests keep coming
(events.admission._pace): fewer, larger batches during a rush. A wake-up with nothing left to decide
and in-process deciding (the embedded default) never wait."""

import time

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from events import admission
from events.models import AdmissionRequest
from tests.factories import EventFactory, UserFactory
from tests.helpers import held_open, needs_service

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sleeps(monkeypatch):
    waited: list[float] = []
    monkeypatch.setattr(admission, "_sleep", waited.append)
    monkeypatch.setattr(admission, "_last_decided", 0.0)
    monkeypatch.setattr(admission, "_table_busy_until", 0.0)
    return waited


def ask(event, n=1):
    for _ in range(n):
        AdmissionRequest.objects.create(event=event, participant=UserFactory())


@override_settings(CELERY_TASK_ALWAYS_EAGER=False)
def test_the_consumer_waits_out_the_interval_only_when_there_is_something_to_decide(sleeps):
    event = EventFactory(capacity=2, admission="queue")
    ask(event, 3)
    assert admission.decide_pending(event_ids=[event.pk]) == 3  # after a quiet spell: at once
    assert sleeps == []
    assert admission.decide_pending(event_ids=[event.pk]) == 0  # a wake-up for nothing: at once
    assert sleeps == []
    ask(event, 2)
    assert admission.decide_pending(event_ids=[event.pk]) == 2  # requests right after a decision
    assert len(sleeps) == 1 and 0 < sleeps[0] <= admission.DECIDE_INTERVAL_SECONDS
    assert not AdmissionRequest.objects.filter(status="pending").exists()
    event.refresh_from_db()
    assert (event.enrolled_count, event.waitlist_count) == (2, 3)


def test_deciding_in_process_never_waits(sleeps, settings):
    assert settings.CELERY_TASK_ALWAYS_EAGER or pytest.skip("the embedded default decides in-process")
    event = EventFactory(capacity=2, admission="queue")
    ask(event, 2)
    assert admission.decide_pending(event_ids=[event.pk]) == 2
    ask(event, 2)
    assert admission.decide_pending(event_ids=[event.pk]) == 2
    assert sleeps == []


def table_locks(queries) -> int:
    return sum("LOCK TABLE" in query["sql"] for query in queries.captured_queries)


@needs_service("DATABASE_URL")
@override_settings(CELERY_TASK_ALWAYS_EAGER=False)
def test_a_writer_keeping_the_requests_table_holds_the_consumer_back_only_briefly(sleeps):
    """The consumer's SHARE lock waits for every writer of the table, and every accept waits behind
    it: a writer that keeps the table (an account's withdrawal waiting on a slow lock) must not stop
    the rush. The consumer gives up after BOUND_LOCK_ATTEMPTS short waits and lets the accepts be
    for TABLE_BUSY_PAUSE_SECONDS before it tries again; the requests are decided once it is free."""
    event = EventFactory(capacity=1, admission="queue")
    ask(event, 2)
    [request, kept] = AdmissionRequest.objects.filter(event=event).order_by("id")
    with held_open(AdmissionRequest.objects.filter(pk=kept.pk).delete):  # the table kept busy
        for attempt in range(2):
            started = time.monotonic()
            with CaptureQueriesContext(connection) as queries:
                assert admission.decide_pending(event_ids=[event.pk]) == 0  # before: waited for the writer
            tries = admission.BOUND_LOCK_ATTEMPTS * 2 * admission.BOUND_LOCK_TIMEOUT_MS / 1000
            assert time.monotonic() - started < tries + 1
            assert table_locks(queries) == admission.BOUND_LOCK_ATTEMPTS
            if attempt == 0:
                assert sleeps == []  # nothing decided lately: it tried at once
            else:  # the next wake-up paused before it tried again
                assert len(sleeps) == 1 and 0.5 < sleeps[0] <= admission.TABLE_BUSY_PAUSE_SECONDS
        assert AdmissionRequest.objects.get(pk=request.pk).status == "pending"
    assert admission.decide_pending(event_ids=[event.pk]) == 1
    assert AdmissionRequest.objects.get(pk=request.pk).status == "confirmed"


@needs_service("DATABASE_URL")
@override_settings(CELERY_TASK_ALWAYS_EAGER=True)
def test_deciding_in_an_accepting_request_tries_the_busy_table_once_then_leaves_it_to_the_sweep(sleeps):
    """Without a broker the accepting request decides: it must not sleep or lock again and again."""
    event = EventFactory(capacity=1, admission="queue")
    ask(event, 2)
    [request, kept] = AdmissionRequest.objects.filter(event=event).order_by("id")
    with held_open(AdmissionRequest.objects.filter(pk=kept.pk).delete):  # the table kept busy
        for expected_locks in (1, 0):  # once, then not at all during the pause
            with CaptureQueriesContext(connection) as queries:
                assert admission.decide_pending(event_ids=[event.pk]) == 0
            assert table_locks(queries) == expected_locks
        assert sleeps == []
    admission._table_busy_until = 0.0  # the pause is over (the fixture restores it afterwards)
    assert admission.decide_pending(event_ids=[event.pk]) == 1
    assert AdmissionRequest.objects.get(pk=request.pk).status == "confirmed"
