"""A process's simultaneous enrollments share one statement (events.services._take_seats, through
config/combining.py) on PostgreSQL: the seats go in arrival order while any are left, each to an
active participant without one, and every seated participant's confirmation is the message the one
statement would have written. What a batch cannot decide is left to the usual path."""

import datetime as dt
import threading
import time
from collections import Counter

import pytest
from django.db import IntegrityError, connection
from django.utils import timezone

from config.outbox.models import OutboxMessage
from events import domain, services
from events.models import Enrollment
from tests.factories import EventFactory, UserFactory
from tests.helpers import needs_service

pytestmark = [needs_service("DATABASE_URL"), pytest.mark.django_db(transaction=True)]

SEATED, ALONE = services._SEATED, services._ALONE


def requests_for(event, participants, *, now=None):
    """The batch's items, as enroll() makes them: an unsaved enrollment and the wall-clock time."""
    now = now or timezone.now()
    opens_after = services._wall_clock_if_steady(now)
    assert opens_after is not None
    return [
        (Enrollment(event_id=event.pk, participant_id=p.pk, created_at=now), opens_after)
        for p in participants
    ]


def take(event, items, *, direct_only=True):
    return services._take_seats((event.pk, direct_only), items)


def test_a_batch_seats_the_first_comers_while_seats_last():
    event = EventFactory(capacity=3)
    people = UserFactory.create_batch(5)
    items = requests_for(event, people)
    assert take(event, items) == [SEATED, SEATED, SEATED, None, None]
    event.refresh_from_db()
    assert event.enrolled_count == 3
    seated = Enrollment.objects.filter(event=event).order_by("id")
    assert [e.participant_id for e in seated] == [p.pk for p in people[:3]]
    assert [e.pk for e in seated] == [enrollment.pk for enrollment, _ in items[:3]]
    assert [e.checkin_code for e in seated] == [enrollment.checkin_code for enrollment, _ in items[:3]]


def test_each_seat_s_confirmation_is_the_message_the_one_statement_writes():
    event = EventFactory(capacity=5)
    alone, first, second = UserFactory.create_batch(3)
    services.enroll(event_id=event.pk, participant_id=alone.pk, check_account=True)
    (single,) = OutboxMessage.objects.all()
    take(event, requests_for(event, [first, second]))
    batch = list(OutboxMessage.objects.exclude(pk=single.pk).order_by("id"))
    assert len(batch) == 2
    for message, person in zip(batch, [first, second], strict=True):
        assert message.task == single.task
        code = Enrollment.objects.get(event=event, participant=person).checkin_code
        mine = {"participants": [[person.pk, None]], "checkin_codes": {str(person.pk): code}}
        expected = {**single.kwargs, **mine}
        # The event's snapshot is taken after each statement: only the key (unique) may differ.
        assert {**message.kwargs, "key": None} == {**expected, "key": None}
        assert message.kwargs["key"] != single.kwargs["key"]
    # Handed to the publisher after the commit, as the one statement's message is.
    deadline = time.monotonic() + 10
    while OutboxMessage.objects.filter(published_at__isnull=True).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not OutboxMessage.objects.filter(published_at__isnull=True).exists()


def test_those_the_statement_may_not_seat_get_no_seat_and_a_repeated_request_goes_alone():
    event = EventFactory(capacity=10)
    holder, inactive, admin, newcomer = UserFactory.create_batch(4)
    services.enroll(event_id=event.pk, participant_id=holder.pk)
    inactive.is_active = False
    inactive.save()
    admin.is_staff = True
    admin.save()
    items = requests_for(event, [holder, inactive, admin, newcomer, newcomer])
    assert take(event, items) == [None, None, None, SEATED, ALONE]
    event.refresh_from_db()
    assert event.enrolled_count == Enrollment.objects.filter(event=event).count() == 2


@pytest.mark.parametrize("case", ["started", "queued", "full", "deleted"])
def test_a_batch_seats_nobody_on_an_event_that_takes_no_direct_enrollment(case):
    event = EventFactory(capacity=1)
    if case == "started":
        event.date = timezone.localdate() - dt.timedelta(days=1)
    elif case == "queued":
        event.admission = domain.Admission.QUEUE
    event.save()
    if case == "full":
        services.enroll(event_id=event.pk, participant_id=UserFactory().pk)
    items = requests_for(event, UserFactory.create_batch(3))
    if case == "deleted":
        event.delete()
    assert take(event, items) == [None, None, None]
    assert Enrollment.objects.filter(event_id=event.pk).count() == (1 if case == "full" else 0)


def test_a_batch_of_one_takes_the_one_statement():
    event = EventFactory(capacity=2)
    items = requests_for(event, [UserFactory()])
    (seats,) = take(event, items)
    assert seats == domain.Seats(capacity=2, enrolled=1)
    assert items[0][0].pk == Enrollment.objects.get(event=event).pk


def test_a_failed_batch_leaves_each_request_to_itself(monkeypatch):
    def failing(*args, **kwargs):
        raise IntegrityError("a duplicate committed meanwhile by another process")

    monkeypatch.setattr(services, "_enroll_batch_in_one_statement", failing)
    event = EventFactory(capacity=5)
    assert take(event, requests_for(event, UserFactory.create_batch(3))) == [ALONE, ALONE, ALONE]


def test_threads_enrolling_at_once_share_statements_and_never_overbook(monkeypatch):
    """Through enroll(), as the fast lane calls it: the first enrollment is held up until the others
    wait behind it, so they form a batch; 12 people on 5 seats give 5 enrollments and 7 refusals."""
    event = EventFactory(capacity=5)
    people = UserFactory.create_batch(12)
    batches: list[int] = []
    real_batch, real_one = services._enroll_batch_in_one_statement, services._enroll_in_one_statement
    first = threading.Event()

    def one(*args, **kwargs):
        if not first.is_set():
            first.set()
            while sum(len(q) for q in services._seat_batches._waiting.values()) < len(people) - 1:
                threading.Event().wait(0.005)
        return real_one(*args, **kwargs)

    def batch(enrollments, **kwargs):
        batches.append(len(enrollments))
        return real_batch(enrollments, **kwargs)

    monkeypatch.setattr(services, "_enroll_in_one_statement", one)
    monkeypatch.setattr(services, "_enroll_batch_in_one_statement", batch)
    outcomes: list[str] = []

    def enroll(person):
        try:
            services.enroll(event_id=event.pk, participant_id=person.pk, direct_only=True, check_account=True)
            outcomes.append("enrolled")
        except domain.Conflict as refusal:
            outcomes.append(refusal.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=enroll, args=(person,)) for person in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert Counter(outcomes) == {"enrolled": 5, "event_full": 7}
    assert batches and max(batches) == len(people) - 1
    event.refresh_from_db()
    assert event.enrolled_count == Enrollment.objects.filter(event=event).count() == 5
    assert OutboxMessage.objects.count() == 5
