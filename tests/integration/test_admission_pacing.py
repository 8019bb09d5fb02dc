"""The admission consumer decides at most every DECIDE_INTERVAL_SECONDS while requests keep coming
(events.admission._pace): fewer, larger batches during a rush. A wake-up with nothing left to decide
and in-process deciding (the embedded default) never wait."""

import pytest
from django.test import override_settings

from events import admission
from events.models import AdmissionRequest
from tests.factories import EventFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sleeps(monkeypatch):
    waited: list[float] = []
    monkeypatch.setattr(admission, "_sleep", waited.append)
    monkeypatch.setattr(admission, "_last_decided", 0.0)
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
