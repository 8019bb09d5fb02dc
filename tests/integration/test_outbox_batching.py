"""Batched tasks: many outbox messages of one task travel as one broker message (one task call)."""

import datetime as dt
import threading

import pytest
from celery import shared_task
from celery.signals import before_task_publish
from django.core import mail
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.beat import InProcessBeat
from config.outbox import services as outbox
from config.outbox.models import OutboxMessage
from events import services as event_services
from notifications import services as notification_services
from notifications.domain import Kind
from notifications.models import Notification
from tests.factories import EventFactory, OutboxMessageFactory, UserFactory
from tests.helpers import DEAD_BROKER, broker, needs_service, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

BATCHED_CALLS: list[list[dict]] = []
SINGLE_CALLS: list[dict] = []
_calls_lock = threading.Lock()


@shared_task(name="tests.outbox_batched_probe", batched=True)
def batched_probe(items):
    with _calls_lock:
        BATCHED_CALLS.append(items)


@shared_task(name="tests.outbox_capped_probe", batched=True, batch_max_items=2)
def capped_probe(items):
    with _calls_lock:
        BATCHED_CALLS.append(items)


@shared_task(name="tests.outbox_single_probe")
def single_probe(**kwargs):
    with _calls_lock:
        SINGLE_CALLS.append(kwargs)


@pytest.fixture(autouse=True)
def _no_calls_yet():
    BATCHED_CALLS.clear()
    SINGLE_CALLS.clear()


def pending(*specs):
    """Records outbox messages without publishing them after commit (as a crashed process leaves them)."""
    return [OutboxMessageFactory(task=task, kwargs=kwargs).pk for task, kwargs in specs]


def spy_on_notify(monkeypatch):
    """The sizes of the item lists the notifications task is called with."""
    calls: list[int] = []
    real_notify = notification_services.notify

    def notify(items):
        calls.append(len(items))
        return real_notify(items)

    monkeypatch.setattr(notification_services, "notify", notify)
    return calls


def test_the_decorator_option_marks_the_task_batched():
    assert outbox.is_batched("tests.outbox_batched_probe")
    assert outbox.is_batched(notification_services.NOTIFY_TASK)
    assert not outbox.is_batched("tests.outbox_single_probe")
    assert not outbox.is_batched(notification_services.SEND_TASK)
    assert not outbox.is_batched("no.such.task")


def test_messages_of_a_batched_task_make_one_call_with_their_items_in_id_order():
    ids = pending(
        ("tests.outbox_batched_probe", {"n": 1}),
        ("tests.outbox_single_probe", {"s": 1}),
        ("tests.outbox_batched_probe", {"n": 2}),
        ("tests.outbox_single_probe", {"s": 2}),
        ("tests.outbox_batched_probe", {"n": 3}),
    )
    assert outbox.publish(ids) == 5
    assert BATCHED_CALLS == [[{"n": 1}, {"n": 2}, {"n": 3}]]
    assert SINGLE_CALLS == [{"s": 1}, {"s": 2}]  # ordinary tasks: one call (message) each
    assert not OutboxMessage.objects.filter(published_at__isnull=True).exists()
    assert outbox.publish(ids) == 0  # nothing is published twice
    assert len(BATCHED_CALLS) == 1


@pytest.mark.parametrize("in_process", [False, True], ids=["broker", "in-process"])
def test_a_publish_takes_the_same_statements_whatever_it_carries(in_process, monkeypatch, settings):
    """On a broker: lock the messages, mark them published. In-process: lock them and claim them,
    then mark them published once the task has run."""
    sent = []
    monkeypatch.setattr(
        outbox.celery_app, "send_task", lambda task, **options: sent.append(options["kwargs"])
    )
    settings.CELERY_TASK_ALWAYS_EAGER = in_process
    kwargs = {"text": "é ✓", "nested": {"list": [1, 2.5, None, True]}, "big": 2**62}
    ids = pending(*[("tests.outbox_batched_probe", {**kwargs, "n": n}) for n in range(30)])
    published_before = OutboxMessage.objects.create(
        task="tests.outbox_single_probe", published_at=timezone.now()
    )
    with CaptureQueriesContext(connection) as queries:
        assert outbox.publish([*ids, published_before.pk, 10**9]) == 30
    outbox_table = OutboxMessage._meta.db_table
    statements = [q["sql"].split()[0] for q in queries if outbox_table in q["sql"]]
    assert statements == (["SELECT", "UPDATE", "UPDATE"] if in_process else ["SELECT", "UPDATE"])
    [items] = BATCHED_CALLS if in_process else [call["items"] for call in sent]  # one broker message
    assert items == [{**kwargs, "n": n} for n in range(30)]  # the kwargs as they were stored, in id order
    assert SINGLE_CALLS == []  # a message published before is not published again
    assert not OutboxMessage.objects.filter(pk__in=ids, published_at__isnull=True).exists()


def test_in_process_a_task_runs_outside_any_transaction_while_its_messages_are_claimed():
    """Run inside the claiming transaction, a task's commits were savepoints of it, and it held
    every row it wrote until its end (a delivery then deadlocked with an event's deletion)."""
    seen = []

    @shared_task(name="tests.outbox_transaction_probe")
    def transaction_probe(message_id):
        message = OutboxMessage.objects.get(pk=message_id)
        seen.append((connection.in_atomic_block, message.published_at, message.claimed_until is not None))

    with transaction.atomic():
        message = outbox.enqueue("tests.outbox_transaction_probe", message_id=0)
        OutboxMessage.objects.filter(pk=message.pk).update(kwargs={"message_id": message.pk})
    assert seen == [(False, None, True)]  # outside any transaction, claimed, not yet published
    message.refresh_from_db()
    assert message.published_at is not None


def test_in_process_a_task_that_cannot_run_is_tried_again_later_and_the_others_still_run():
    """Raising instead, one message of an unknown task stopped the relay's every round before the
    messages after it; and without a pause the relay's rounds would try it every second."""
    ids = pending(("tests.no_such_task", {"n": 1}), ("tests.outbox_single_probe", {"s": 1}))
    assert outbox.publish(ids) == 1
    assert SINGLE_CALLS == [{"s": 1}]
    lost = OutboxMessage.objects.get(pk=ids[0])
    assert (lost.published_at, lost.attempts) == (None, 1)
    assert "NotRegistered" in lost.last_error
    assert lost.claimed_until > timezone.now() + dt.timedelta(seconds=outbox.IN_PROCESS_RETRY_SECONDS - 10)
    call_command("relay_outbox", "--once")  # not yet
    assert OutboxMessage.objects.get(pk=ids[0]).attempts == 1
    OutboxMessage.objects.filter(pk=ids[0]).update(claimed_until=timezone.now() - dt.timedelta(seconds=1))
    call_command("relay_outbox", "--once")  # its time has come: tried, and counted
    assert OutboxMessage.objects.get(pk=ids[0]).attempts == 2 and SINGLE_CALLS == [{"s": 1}]


def test_in_process_publishing_inside_a_transaction_is_refused():
    """Its tasks would run inside the caller's transaction, the deadlock the claims are for."""
    ids = pending(("tests.outbox_single_probe", {"s": 1}))
    with transaction.atomic(), pytest.raises(RuntimeError, match="outside"):
        outbox.publish(ids)
    assert SINGLE_CALLS == []


def test_the_in_process_beat_runs_the_relays_round(settings):
    """The embedded default has no relay process: what an in-process publish left (a process that
    died, a task that raised) is run by the web process's beat thread."""
    settings.OUTBOX_RELAY_INTERVAL_SECONDS = 0.05
    ids = pending(("tests.outbox_single_probe", {"s": 1}))
    beat = InProcessBeat.instance()
    try:
        wait_until(lambda: OutboxMessage.objects.get(pk=ids[0]).published_at is not None, timeout=10)
    finally:
        beat.stop()
    assert SINGLE_CALLS == [{"s": 1}]


def test_in_process_a_claim_keeps_others_off_until_it_lapses():
    """A process that died running a task leaves its message claimed: the relay runs it once the
    claim has lapsed, and not before (when its process may still be running it)."""
    [message_id] = pending(("tests.outbox_single_probe", {"s": 1}))
    OutboxMessage.objects.filter(pk=message_id).update(claimed_until=timezone.now() + dt.timedelta(minutes=5))
    call_command("relay_outbox", "--once")
    assert outbox.publish([message_id]) == 0
    assert SINGLE_CALLS == []
    OutboxMessage.objects.filter(pk=message_id).update(claimed_until=timezone.now() - dt.timedelta(seconds=1))
    call_command("relay_outbox", "--once")
    assert SINGLE_CALLS == [{"s": 1}]
    assert OutboxMessage.objects.get(pk=message_id).published_at is not None


def test_a_single_message_of_a_batched_task_still_comes_as_a_list():
    with transaction.atomic():
        outbox.enqueue("tests.outbox_batched_probe", n=7)
    assert BATCHED_CALLS == [[{"n": 7}]]  # the embedded default ran it right after commit


def test_batch_max_items_splits_a_group():
    ids = pending(*[("tests.outbox_capped_probe", {"n": n}) for n in range(5)])
    assert outbox.publish_pending() == 5
    assert BATCHED_CALLS == [[{"n": 0}, {"n": 1}], [{"n": 2}, {"n": 3}], [{"n": 4}]]
    assert OutboxMessage.objects.filter(pk__in=ids, published_at__isnull=False).count() == 5


def test_a_batched_message_shows_its_outbox_ids_not_its_items(monkeypatch, settings):
    """Celery's kwargsrepr header (monitoring, the worker's log) would otherwise repeat the items,
    check-in codes included; an ordinary task keeps Celery's own repr."""
    sent = []
    monkeypatch.setattr(outbox.celery_app, "send_task", lambda task, **options: sent.append((task, options)))
    settings.CELERY_TASK_ALWAYS_EAGER = False
    ids = pending(
        ("tests.outbox_batched_probe", {"code": "SECRET-1"}),
        ("tests.outbox_single_probe", {"s": 1}),
        ("tests.outbox_batched_probe", {"code": "SECRET-2"}),
    )
    assert outbox.publish(ids) == 3
    (batched,) = [options for task, options in sent if task == "tests.outbox_batched_probe"]
    assert batched["kwargs"] == {"items": [{"code": "SECRET-1"}, {"code": "SECRET-2"}]}
    assert batched["kwargsrepr"] == f"{{'items': <2 outbox messages {ids[0]}..{ids[2]}>}}"
    (single,) = [options for task, options in sent if task == "tests.outbox_single_probe"]
    assert single["kwargs"] == {"s": 1} and single["kwargsrepr"] is None


def test_a_refused_group_stays_pending_counts_the_attempt_and_the_relay_publishes_it_once():
    ids = pending(*[("tests.outbox_batched_probe", {"n": n}) for n in range(3)])
    with broker(DEAD_BROKER), pytest.raises(Exception):  # noqa: B017 (kombu's OperationalError)
        outbox.publish(ids)
    messages = OutboxMessage.objects.filter(pk__in=ids)
    assert [(m.published_at, m.attempts) for m in messages] == [(None, 1)] * 3
    assert all("Error" in m.last_error for m in messages)
    call_command("relay_outbox", "--once")
    call_command("relay_outbox", "--once")
    assert BATCHED_CALLS == [[{"n": 0}, {"n": 1}, {"n": 2}]]


def test_rows_another_publisher_holds_are_skipped_not_published_twice():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("SKIP LOCKED needs PostgreSQL (SQLite has one writer at a time)")
    ids = pending(*[("tests.outbox_batched_probe", {"n": n}) for n in range(4)])
    held, release = threading.Event(), threading.Event()

    def other_publisher():
        from django.db import connection as own

        with transaction.atomic():
            list(OutboxMessage.objects.select_for_update().filter(pk__in=ids[:2]))
            held.set()
            release.wait(10)
        own.close()

    thread = threading.Thread(target=other_publisher)
    thread.start()
    assert held.wait(10)
    try:
        assert outbox.publish(ids) == 2
    finally:
        release.set()
        thread.join()
    assert BATCHED_CALLS == [[{"n": 2}, {"n": 3}]]
    assert outbox.publish(ids) == 2
    assert BATCHED_CALLS[1] == [{"n": 0}, {"n": 1}]


def test_notifications_of_many_enrollments_go_out_as_one_task_call(monkeypatch):
    calls = spy_on_notify(monkeypatch)
    event = EventFactory(title="Hackathon")
    people = UserFactory.create_batch(4)
    with broker(DEAD_BROKER):  # the committing process cannot publish: the relay finds them all
        for person in people:
            event_services.enroll(event_id=event.pk, participant_id=person.pk)
    assert Notification.objects.count() == 0  # written by the worker, which has not run
    assert OutboxMessage.objects.filter(published_at__isnull=True).count() == 4
    call_command("relay_outbox", "--once")
    assert calls == [4]
    assert sorted(Notification.objects.values_list("user_id", "status")) == sorted(
        (p.pk, "sent") for p in people
    )
    assert sorted(m.to[0] for m in mail.outbox) == sorted(p.email for p in people)


@needs_service("CELERY_BROKER_URL")
def test_on_rabbitmq_a_group_is_one_broker_message(celery_worker, monkeypatch):
    published_headers = []

    def seen(sender=None, headers=None, **kwargs):
        if sender == "tests.outbox_batched_probe":
            published_headers.append(headers)

    before_task_publish.connect(seen, weak=False)
    try:
        ids = pending(*[("tests.outbox_batched_probe", {"n": n}) for n in range(5)])
        assert outbox.publish(ids) == 5
    finally:
        before_task_publish.disconnect(seen)
    wait_until(lambda: BATCHED_CALLS)
    assert [[{"n": n} for n in range(5)]] == BATCHED_CALLS
    # The header the broker carries, as monitoring and the worker's log show it.
    expected = f"{{'items': <5 outbox messages {ids[0]}..{ids[-1]}>}}"
    assert [h["kwargsrepr"] for h in published_headers] == [expected]

    calls = spy_on_notify(monkeypatch)
    event = EventFactory()
    people = UserFactory.create_batch(3)
    with broker(DEAD_BROKER):
        for person in people:
            event_services.enroll(event_id=event.pk, participant_id=person.pk)
    call_command("relay_outbox", "--once")  # the relay on the real broker, the worker consuming
    wait_until(lambda: Notification.objects.filter(status="sent").count() == 3)
    assert calls == [3]
    assert len(mail.outbox) == 3


def test_a_backlog_of_notifications_is_split_for_the_workers_processes(monkeypatch):
    calls = spy_on_notify(monkeypatch)
    event = EventFactory()
    people = UserFactory.create_batch(55)
    with broker(DEAD_BROKER), transaction.atomic():
        for person in people:
            notification_services.notify_participant(
                kind=Kind.ENROLLMENT_CONFIRMED, participant_id=person.pk, event=event
            )
    call_command("relay_outbox", "--once")
    assert calls == [50, 5]  # the task's batch_max_items
    assert Notification.objects.filter(status="sent").count() == len(mail.outbox) == 55


def test_a_busy_publisher_gathers_what_commits_meanwhile_into_one_batch(monkeypatch, settings):
    import time

    settings.OUTBOX_PUBLISH_INTERVAL_SECONDS = 0.5
    batches: list[list[int]] = []
    monkeypatch.setattr(outbox, "_attempt", lambda ids: batches.append(list(ids)))
    publisher = outbox._Publisher.instance()
    publisher.submit(1)
    wait_until(lambda: batches == [[1]])  # an idle publisher publishes at once
    for message_id in (2, 3, 4):
        publisher.submit(message_id)
        time.sleep(0.02)  # each would be a batch of its own without the interval
    assert outbox.flush_publisher()
    assert batches == [[1], [2, 3, 4]]
