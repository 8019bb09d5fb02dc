"""Real Celery workers on RabbitMQ (services pass): delivery, outage and a worker killed mid-task."""

import json
import os
import signal
import urllib.request

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection

from config.outbox.models import OutboxMessage
from notifications.models import Notification
from reports.models import Report
from tests.factories import EventFactory, UserFactory
from tests.helpers import (
    DEAD_BROKER,
    broker,
    client_for,
    free_port,
    needs_service,
    notifications_worker_process,
    wait_until,
)

pytestmark = [needs_service("CELERY_BROKER_URL"), pytest.mark.django_db(transaction=True)]


def sent(notification_filter=None):
    return Notification.objects.filter(status="sent", **(notification_filter or {})).count()


def test_worker_sends_the_enrollment_email(celery_worker, participant_api, participant):
    event = EventFactory(title="Quarterly")
    assert participant_api.post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201
    wait_until(lambda: sent() == 1)
    assert [m.to for m in mail.outbox] == [[participant.email]]
    # Marked published when the broker confirms, which may come after the worker has sent.
    wait_until(lambda: OutboxMessage.objects.get().published_at is not None)


def test_worker_builds_and_mails_a_report(celery_worker, admin_api, admin):
    event = EventFactory()
    for user in UserFactory.create_batch(3):
        from events import services

        services.enroll(event_id=event.pk, participant_id=user.pk)
    accepted = admin_api.post(f"/api/v1/events/{event.pk}/reports/", {}).json()
    assert accepted["status"] == "pending"
    wait_until(lambda: Report.objects.get(pk=accepted["id"]).status == "done")
    document = json.loads(
        b"".join(admin_api.get(f"/api/v1/reports/{accepted['id']}/download/").streaming_content)
    )
    assert document["participant_count"] == 3
    wait_until(lambda: sent({"kind": "report_ready"}) == 1)
    [report_email] = [m for m in mail.outbox if m.subject.startswith("Participant report")]
    assert report_email.to == [admin.email] and report_email.attachments


def test_rabbitmq_outage_loses_nothing(celery_worker, participant_api):
    event = EventFactory()
    with broker(DEAD_BROKER):
        assert participant_api.post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201
    assert OutboxMessage.objects.get().published_at is None
    assert not Notification.objects.exists()  # the worker writes it; the outbox row keeps it till then
    # The broker is reachable again: the relay publishes, the worker delivers, once.
    call_command("relay_outbox", "--once")
    wait_until(lambda: sent() == 1)
    call_command("relay_outbox", "--once")
    assert len(mail.outbox) == 1


def slow_email_worker_env(tmp_path, **settings: str) -> dict[str, str]:
    """The environment of a worker process on the test's database, whose emails are slow to send."""
    db = connection.settings_dict
    database_url = (
        f"sqlite:///{db['NAME']}"
        if db["ENGINE"].endswith("sqlite3")
        else f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    )
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "VAR_DIR": str(tmp_path),
        "EMAIL_BACKEND": "tests.support.SlowFileEmailBackend",
        **settings,
    }


def test_worker_killed_mid_send_redelivers_and_sends_once(participant_api, tmp_path):
    from config.celery import app as celery_app

    celery_app.control.purge()
    env = slow_email_worker_env(tmp_path, SLOW_EMAIL_SECONDS="30")
    doomed = notifications_worker_process(env)
    try:
        event = EventFactory()
        with broker(os.environ["CELERY_BROKER_URL"]):
            assert participant_api.post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201
        # The doomed worker has started delivering (attempt counted) and sits in the slow send.
        wait_until(lambda: Notification.objects.filter(attempts=1).exists(), timeout=60)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
        assert Notification.objects.get().status == "queued"
        assert not (tmp_path / "mail").exists() or not list((tmp_path / "mail").iterdir())

        metrics_port = free_port()
        survivor = notifications_worker_process(
            {**env, "SLOW_EMAIL_SECONDS": "0", "METRICS_PORT": str(metrics_port)}
        )
        try:
            wait_until(lambda: Notification.objects.get().status == "sent", timeout=90)
            # The worker's own metrics endpoint counts what it did (just after its commit).
            url = f"http://127.0.0.1:{metrics_port}/metrics"

            def counted() -> bool:
                text = urllib.request.urlopen(url, timeout=5).read().decode()  # noqa: S310
                return "notifications_sent_total 1.0" in text and (
                    'celery_task_duration_seconds_count{queue="notifications"' in text
                )

            wait_until(counted)
        finally:
            survivor.terminate()
            survivor.wait(timeout=30)
    finally:
        if doomed.poll() is None:
            doomed.kill()
    notification = Notification.objects.get()
    assert notification.attempts == 2
    assert len(list((tmp_path / "mail").iterdir())) == 1


def test_a_task_past_its_time_limit_is_killed_and_delivered_again(participant_api, tmp_path, monkeypatch):
    """A send that hangs (a dependency without a timeout of its own) held its pool process for
    good; past TASK_TIME_LIMIT_SECONDS the process is replaced and the message queued again, and the
    next delivery sends the email."""
    from config.celery import app as celery_app

    celery_app.control.purge()
    # The limit travels in each message, as the publishing process has it (here this one's outbox).
    notify = celery_app.tasks["notifications.notify"]
    monkeypatch.setattr(notify, "_exec_options", {**notify._get_exec_options(), "time_limit": 3})
    env = slow_email_worker_env(
        tmp_path,
        SLOW_EMAIL_SECONDS="60",
        SLOW_EMAIL_ONCE_FILE=str(tmp_path / "slow-once"),  # only the first send hangs
        TASK_TIME_LIMIT_SECONDS="3",
    )
    worker = notifications_worker_process(env, pool="prefork")
    try:
        event = EventFactory()
        with broker(os.environ["CELERY_BROKER_URL"]):
            assert participant_api.post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201
        wait_until(lambda: Notification.objects.filter(status="sent").exists(), timeout=40)  # before: 60 s
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert (tmp_path / "slow-once").exists()  # the first send did hang
    assert Notification.objects.get().attempts == 2
    assert len(list((tmp_path / "mail").iterdir())) == 1


def test_cancellation_and_promotion_go_through_the_real_publisher_broker_and_worker(celery_worker):
    """The whole chain, not eager: the outbox publisher thread, RabbitMQ, the notifications worker."""
    event = EventFactory(capacity=1, title="Sold out")
    holder, waiter = UserFactory(), UserFactory()
    holder_api, waiter_api = client_for(holder), client_for(waiter)
    assert holder_api.post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201
    assert waiter_api.post(f"/api/v1/events/{event.pk}/waitlist/").status_code == 201
    assert holder_api.delete(f"/api/v1/events/{event.pk}/enrollments/me/").status_code == 204
    wait_until(lambda: sent() == 4)
    kinds = set(Notification.objects.filter(status="sent").values_list("user_id", "kind"))
    assert kinds == {
        (holder.pk, "enrollment_confirmed"),
        (holder.pk, "enrollment_cancelled"),
        (waiter.pk, "waitlisted"),
        (waiter.pk, "waitlist_promoted"),
    }
    assert sorted(m.to[0] for m in mail.outbox) == sorted([holder.email] * 2 + [waiter.email] * 2)
    assert waiter_api.get(f"/api/v1/events/{event.pk}/enrollments/me/").json()["status"] == "confirmed"
