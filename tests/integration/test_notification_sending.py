"""Sending an email holds nothing that others write: an account's or an event's deletion goes on
while the mail server takes its time, a second sender of the same email still waits and finds it
sent, and a mail server that goes quiet fails the send within EMAIL_TIMEOUT
(notifications.services: `_hold_for_sending`, `_record_sending`)."""

from __future__ import annotations

import socket
import time

import pytest
from django.core import mail
from django.core.mail.backends import locmem
from django.db import OperationalError
from django.db.models import QuerySet

from config.outbox.models import OutboxMessage
from events import services as event_services
from notifications import services
from notifications.domain import Kind, Status
from notifications.models import Notification
from participants import services as participant_services
from tests.factories import EventFactory, NotificationFactory
from tests.helpers import DEAD_BROKER, Pause, broker, in_another_thread, needs_service, while_paused

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def send_pauses(monkeypatch) -> Pause:
    """Every email send stops at the returned pause until it is released (the mail server is slow)."""
    pause = Pause()
    send_messages = locmem.EmailBackend.send_messages

    def slow_send(backend, messages):
        pause()
        return send_messages(backend, messages)

    monkeypatch.setattr(locmem.EmailBackend, "send_messages", slow_send)
    return pause


def seconds_taken(work) -> float:
    started = time.monotonic()
    work()
    return time.monotonic() - started


@needs_service("DATABASE_URL")
def test_deleting_an_account_does_not_wait_for_its_email_being_sent(participant, send_pauses):
    notification = NotificationFactory(user=participant)
    sent = in_another_thread(lambda: services.deliver(notification_id=notification.pk))
    assert send_pauses.reached.wait(10)
    # Before: the cascade waited on the row the sender had locked, until the mail server answered.
    assert seconds_taken(lambda: participant_services.delete_participant(participant_id=participant.pk)) < 5
    assert not Notification.objects.filter(pk=notification.pk).exists()
    send_pauses.released.set()
    assert sent() == []
    assert len(mail.outbox) == 1  # it had been queued for them, and it went out


@needs_service("DATABASE_URL")
def test_deleting_an_event_does_not_wait_for_its_participants_emails(participant, send_pauses):
    event = EventFactory(title="Town hall")
    with broker(DEAD_BROKER):
        event_services.enroll(event_id=event.pk, participant_id=participant.pk)
    items = [OutboxMessage.objects.get().kwargs]
    sent = in_another_thread(lambda: services.notify(items))
    assert send_pauses.reached.wait(10)
    with broker(DEAD_BROKER):  # the deletion's own notices stay in the outbox
        assert seconds_taken(lambda: event_services.delete_event(event_id=event.pk)) < 5
    send_pauses.released.set()
    assert sent() == []
    notification = Notification.objects.get(user=participant, kind=Kind.ENROLLMENT_CONFIRMED)
    assert (notification.status, notification.event_id) == (Status.SENT, None)
    assert [m.subject for m in mail.outbox] == ["You are enrolled: Town hall"]


@needs_service("DATABASE_URL")
def test_two_deliveries_of_one_email_at_the_same_moment_send_it_once(participant, send_pauses):
    notification = NotificationFactory(user=participant)
    outcomes: list[str | None] = []

    def deliver() -> None:
        outcomes.append(services.deliver(notification_id=notification.pk))

    errors = while_paused(deliver, deliver, send_pauses, second_must_wait=True)
    assert errors == []
    assert outcomes == [Status.SENT, Status.SENT]
    assert len(mail.outbox) == 1
    notification.refresh_from_db()
    # The second waited before counting an attempt: duplicates do not use up the crash-loop guard.
    assert (notification.status, notification.attempts) == (Status.SENT, 1)


def test_a_deadlock_while_marking_the_sent_emails_is_tried_again(participant, monkeypatch):
    """The emails are out: the marking is written again, not rolled back to queued (sent twice)."""
    event = EventFactory(title="Offsite")
    with broker(DEAD_BROKER):
        event_services.enroll(event_id=event.pk, participant_id=participant.pk)
    items = [OutboxMessage.objects.get().kwargs]
    update = QuerySet.update
    deadlocks = iter([True])

    class DeadlockDetected(Exception):
        sqlstate = services.DEADLOCK

    def update_meeting_a_deadlock(queryset, **values):
        if values.get("status") == Status.SENT and next(deadlocks, False):
            raise OperationalError("deadlock detected") from DeadlockDetected()
        return update(queryset, **values)

    monkeypatch.setattr(QuerySet, "update", update_meeting_a_deadlock)
    assert services.notify(items) == []
    assert Notification.objects.get().status == Status.SENT
    assert len(mail.outbox) == 1


def test_a_mail_server_that_goes_quiet_fails_the_send_within_the_timeout(participant, settings):
    quiet = socket.create_server(("127.0.0.1", 0))  # accepts the connection, never greets
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", quiet.getsockname()[1]
    settings.EMAIL_TIMEOUT = 0.5
    notification = NotificationFactory(user=participant)
    try:
        started = time.monotonic()
        with pytest.raises(services.DeliveryFailed, match="timed out"):
            services.deliver(notification_id=notification.pk)
        assert time.monotonic() - started < 5
    finally:
        quiet.close()
    notification.refresh_from_db()
    assert notification.status == Status.QUEUED  # retried later, with backoff
    assert "timed out" in notification.error
