"""Queued admission and the waiting list under concurrency, redelivery, a killed consumer and a
broker outage. The decision rules run on every backend; the consumer and RabbitMQ tests need the
real services (the services pass of CI)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import OperationalError, connection, connections, transaction
from rest_framework_simplejwt.tokens import AccessToken

from events import admission, services, wakeups
from events.models import AdmissionRequest, Enrollment, Event, WaitlistEntry
from notifications.models import Notification
from tests.factories import EventFactory, UserFactory
from tests.helpers import broker, database_url_for_children, held_open, needs_service, wait_until
from tests.integration.test_concurrency import fire_together

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def queue(event, users):
    """Pending requests in this order (as accepted requests are before the consumer sees them)."""
    return [AdmissionRequest.objects.create(event=event, participant=u) for u in users]


def assert_decided_in_queue_order(event, seats):
    """The first `seats` requests hold the seats; the rest wait in the same order; counts agree."""
    event.refresh_from_db()
    requests = list(AdmissionRequest.objects.filter(event=event).order_by("queued_at", "id"))  # queue order
    assert all(r.status != "pending" for r in requests)
    assert [r.status for r in requests] == ["confirmed"] * seats + ["waitlisted"] * (len(requests) - seats)
    enrolled = set(Enrollment.objects.filter(event=event).values_list("participant_id", flat=True))
    assert enrolled == {r.participant_id for r in requests[:seats]}
    waiting = list(
        WaitlistEntry.objects.filter(event=event).order_by("id").values_list("participant_id", flat=True)
    )
    assert waiting == [r.participant_id for r in requests[seats:]]
    assert (event.enrolled_count, event.waitlist_count) == (len(enrolled), len(waiting))
    assert event.enrolled_count <= event.capacity


def one_notification_each(event, kind, users):
    counts = Counter(Notification.objects.filter(event=event, kind=kind).values_list("user_id", flat=True))
    return counts == Counter({u.pk: 1 for u in users})


def test_requests_are_decided_in_queue_order_and_only_once():
    event = EventFactory(capacity=3, admission="queue")
    users = UserFactory.create_batch(8)
    queue(event, users)
    assert admission.decide_pending(event_ids=[event.pk]) == 8
    assert_decided_in_queue_order(event, 3)
    # A redelivered wake-up finds nothing pending: nothing is decided twice.
    assert admission.decide_pending(event_ids=[event.pk]) == 0
    assert_decided_in_queue_order(event, 3)
    assert one_notification_each(event, "enrollment_confirmed", users[:3])
    assert one_notification_each(event, "waitlisted", users[3:])
    positions = sorted(
        Notification.objects.filter(event=event, kind="waitlisted").values_list("body", flat=True)
    )
    assert len(positions) == 5


def test_a_request_of_someone_already_enrolled_takes_no_second_seat():
    event = EventFactory(capacity=2, admission="queue")
    holder, other = UserFactory.create_batch(2)
    services.enroll(event_id=event.pk, participant_id=holder.pk)  # an admin's hand, say
    queue(event, [holder, other])
    admission.decide_pending()
    event.refresh_from_db()
    assert event.enrolled_count == 2 == Enrollment.objects.filter(event=event).count()
    assert set(AdmissionRequest.objects.filter(event=event).values_list("status", flat=True)) == {"confirmed"}


def test_requests_for_a_started_event_are_closed_not_seated():
    import datetime as dt

    from django.utils import timezone

    event = EventFactory(capacity=2, admission="queue")
    queue(event, UserFactory.create_batch(2))
    Event.objects.filter(pk=event.pk).update(date=timezone.localdate() - dt.timedelta(days=1))
    admission.decide_pending()
    assert set(AdmissionRequest.objects.filter(event=event).values_list("status", flat=True)) == {"closed"}
    assert not Enrollment.objects.filter(event=event).exists()


def test_a_batch_larger_than_one_transaction_keeps_the_order(monkeypatch):
    monkeypatch.setattr(admission, "BATCH_SIZE", 4)
    event = EventFactory(capacity=5, admission="queue")
    queue(event, UserFactory.create_batch(11))
    assert admission.decide_pending() == 11
    assert_decided_in_queue_order(event, 5)
    assert list(
        WaitlistEntry.objects.filter(event=event).order_by("id").values_list("id", flat=True)
    ) == sorted(WaitlistEntry.objects.filter(event=event).values_list("id", flat=True))


def test_two_simultaneous_cancellations_promote_two_different_people(live_server):
    event = EventFactory(capacity=2)
    holders, waiting = UserFactory.create_batch(2), UserFactory.create_batch(4)
    for user in holders:
        services.enroll(event_id=event.pk, participant_id=user.pk)
    for user in waiting:
        services.join_waitlist(event_id=event.pk, participant_id=user.pk)
    url = f"{live_server.url}/api/v1/events/{event.pk}/enrollments/me/"
    results = fire_together([("DELETE", url, str(AccessToken.for_user(u))) for u in holders])
    assert results == [(204, None), (204, None)]
    enrolled = set(Enrollment.objects.filter(event=event).values_list("participant_id", flat=True))
    assert enrolled == {waiting[0].pk, waiting[1].pk}
    event.refresh_from_db()
    assert (event.enrolled_count, event.waitlist_count) == (2, 2)
    assert one_notification_each(event, "waitlist_promoted", waiting[:2])


def test_capacity_raised_with_a_waiting_list_while_people_join(live_server):
    event = EventFactory(capacity=1)
    services.enroll(event_id=event.pk, participant_id=UserFactory().pk)
    early = UserFactory.create_batch(3)
    for user in early:
        services.join_waitlist(event_id=event.pk, participant_id=user.pk)
    late = UserFactory.create_batch(6)
    base = f"{live_server.url}/api/v1/events/{event.pk}/"
    # Raising the capacity and new people joining the list at the same moment: whoever joins after
    # the increase finds seats (409 seats_available) or waits behind the promoted; nobody is lost.
    with transaction.atomic():
        services.update_event(event_id=event.pk, capacity=3)
    results = Counter(
        fire_together([("POST", base + "waitlist/", str(AccessToken.for_user(u))) for u in late])
    )
    assert set(results) <= {(201, None), (409, "seats_available")}
    event.refresh_from_db()
    enrolled = set(Enrollment.objects.filter(event=event).values_list("participant_id", flat=True))
    assert {early[0].pk, early[1].pk} <= enrolled
    assert event.enrolled_count == 3 == len(enrolled)
    assert (
        event.waitlist_count == WaitlistEntry.objects.filter(event=event).count() == 1 + results[(201, None)]
    )
    assert WaitlistEntry.objects.filter(event=event).order_by("id").first().participant_id == early[2].pk


def test_a_request_of_an_account_retired_while_it_was_being_accepted_takes_nothing():
    """Retiring an account withdraws its requests in the saving transaction; one being accepted at
    that moment commits after the withdrawal looked. The consumer drops it instead of deciding it."""
    event = EventFactory(capacity=5, admission="queue")
    keeper, deactivated, made_admin = UserFactory.create_batch(3)
    queue(event, [deactivated, made_admin, keeper])
    # The flags as the race leaves them: changed, with the requests still there (an update sends
    # no signal, so nothing withdraws them here).
    get_user_model().objects.filter(pk=deactivated.pk).update(is_active=False)
    get_user_model().objects.filter(pk=made_admin.pk).update(is_staff=True)
    assert admission.decide_pending(event_ids=[event.pk]) == 3
    assert list(Enrollment.objects.filter(event=event).values_list("participant_id", flat=True)) == [
        keeper.pk
    ]
    assert list(AdmissionRequest.objects.filter(event=event).values_list("participant_id", "status")) == [
        (keeper.pk, "confirmed")
    ]
    event.refresh_from_db()
    assert (event.enrolled_count, event.waitlist_count) == (1, 0)
    assert not Notification.objects.filter(user__in=[deactivated, made_admin]).exists()


def test_a_decision_failing_in_process_leaves_the_request_to_the_sweep(settings, monkeypatch):
    """The embedded default decides right after the accept's commit; a failure there (SQLite busy
    for too long in a rush) must not turn the stored request's 202 into an error: the outbox
    relay's sweep decides it later."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    event = EventFactory(capacity=1, admission="queue")
    participant = UserFactory()

    def busy(**kwargs):
        raise OperationalError("database is locked")

    with monkeypatch.context() as patched:
        patched.setattr(admission, "decide_pending", busy)
        request = admission.enroll_or_queue(event_id=event.pk, participant_id=participant.pk)
    assert AdmissionRequest.objects.get(pk=request.pk).status == "pending"
    assert wakeups.wake_stale(older_than=0) == 1
    assert AdmissionRequest.objects.get(pk=request.pk).status == "confirmed"


def test_joining_the_list_while_the_last_seat_is_being_taken_is_counted():
    """A join waits for a seat change in progress on its event, then counts itself against the
    seats as they are once that change commits: here the last seat, taken meanwhile. (Counting
    with a conditional UPDATE took no lock while the event was not full yet, so a place came in
    uncounted: a wrong position, and a list the promotions and the counter disagree on.)"""
    event = EventFactory(capacity=2)
    services.enroll(event_id=event.pk, participant_id=UserFactory().pk)
    last, joiner = UserFactory(), UserFactory()

    def join() -> object:
        try:
            return services.join_waitlist(event_id=event.pk, participant_id=joiner.pk)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        with held_open(lambda: services.enroll(event_id=event.pk, participant_id=last.pk)):  # the last seat
            joining = pool.submit(join)
            time.sleep(0.5)
            assert not joining.done(), joining.result()  # it waits for the seat's transaction
        place = joining.result(timeout=20)
    assert place.position == 1
    event.refresh_from_db()
    assert (event.enrolled_count, event.waitlist_count) == (2, 1)
    assert list(WaitlistEntry.objects.filter(event=event).values_list("participant_id", flat=True)) == [
        joiner.pk
    ]


# --- The consumer on RabbitMQ (services pass) ----------------------------------------------------


def consumer(tmp_path, name="admissions"):
    """The admission consumer as `make run` starts it, in its own process, on the test database."""
    env = {**os.environ, "DATABASE_URL": database_url_for_children(), "VAR_DIR": str(tmp_path)}
    log = (tmp_path / f"{name}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "admissions", "-P", "solo",
         "-n", f"{name}@%h", "--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "info"],
        cwd=ROOT, env=env, stdout=log, stderr=log,
    )  # fmt: skip


def stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def rabbitmq():
    from config.celery import app as celery_app

    url = os.environ["CELERY_BROKER_URL"]
    with broker(url):
        celery_app.control.purge()
        yield url
        celery_app.control.purge()


@needs_service("DATABASE_URL")
@needs_service("CELERY_BROKER_URL")
def test_redelivered_wake_ups_decide_nothing_twice(rabbitmq, tmp_path, participant_api):
    from config.celery import app as celery_app

    event = EventFactory(capacity=2, admission="queue")
    users = UserFactory.create_batch(5)
    queue(event, users)
    # The same wake-up three times over, as a broker redelivers after a lost acknowledgement.
    for _ in range(3):
        celery_app.send_task(admission.DECIDE_TASK, kwargs={"items": [{"event_id": event.pk}]})
    worker = consumer(tmp_path)
    try:
        wait_until(
            lambda: not AdmissionRequest.objects.filter(event=event, status="pending").exists(), timeout=60
        )

        def all_three_ran():
            log = (tmp_path / "admissions.log").read_text()
            return log.count(f"{admission.DECIDE_TASK}[") >= 3 and log.count("succeeded") >= 3

        wait_until(all_three_ran, timeout=120)
    finally:
        stop(worker)
    assert_decided_in_queue_order(event, 2)


@needs_service("DATABASE_URL")
@needs_service("CELERY_BROKER_URL")
def test_a_consumer_killed_mid_batch_is_redelivered_and_decides_once(rabbitmq, tmp_path):
    event = EventFactory(capacity=3, admission="queue")
    users = UserFactory.create_batch(7)
    for user in users:  # accepted over the real path: rows, then the wake-up through RabbitMQ
        admission.request_admission(event_id=event.pk, participant_id=user.pk)
    assert wakeups.flush()
    # Hold the event's row lock: the consumer takes the wake-up and stops inside the batch.
    blocker = connections.create_connection("default")
    blocker.connect()
    blocker.set_autocommit(False)
    with blocker.cursor() as cursor:
        cursor.execute("SELECT id FROM events_event WHERE id = %s FOR UPDATE", [event.pk])
    doomed = consumer(tmp_path, "doomed")

    def waiting_on_the_lock():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            return cursor.fetchone()[0] >= 1

    try:
        wait_until(waiting_on_the_lock, timeout=120)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
    finally:
        blocker.rollback()
        blocker.close()
        stop(doomed)
    assert AdmissionRequest.objects.filter(event=event, status="pending").count() == 7
    survivor = consumer(tmp_path, "survivor")
    try:
        wait_until(
            lambda: not AdmissionRequest.objects.filter(event=event, status="pending").exists(), timeout=90
        )
    finally:
        stop(survivor)
    assert_decided_in_queue_order(event, 3)


@needs_service("DATABASE_URL")
@needs_service("CELERY_BROKER_URL")
@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl to stop RabbitMQ")
def test_rabbitmq_stopped_during_a_rush_loses_no_accepted_request(rabbitmq, tmp_path, live_server):
    event = EventFactory(capacity=5, admission="queue")
    before, during = UserFactory.create_batch(10), UserFactory.create_batch(10)
    url = f"{live_server.url}/api/v1/events/{event.pk}/enrollments/"
    worker = consumer(tmp_path)
    try:
        assert Counter(fire_together([("POST", url, str(AccessToken.for_user(u))) for u in before])) == {
            (202, None): 10
        }
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
        try:
            # Accepting needs only the database: every request is kept and answered 202.
            assert Counter(fire_together([("POST", url, str(AccessToken.for_user(u))) for u in during])) == {
                (202, None): 10
            }
        finally:
            subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)
        assert AdmissionRequest.objects.filter(event=event).count() == 20

        def relayed_and_decided():
            call_command("relay_outbox", "--once")  # what the relay process does in a loop
            return not AdmissionRequest.objects.filter(event=event, status="pending").exists()

        wait_until(relayed_and_decided, timeout=120, interval=1)
    finally:
        stop(worker)
    assert_decided_in_queue_order(event, 5)
