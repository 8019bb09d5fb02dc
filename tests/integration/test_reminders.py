"""Reminders before an event (events.reminders): once per participant, whatever runs how often."""

import datetime as dt
import os
import signal
import threading
import time

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from config.beat import InProcessBeat
from config.celery import app as celery_app
from config.outbox.models import OutboxMessage
from events import reminders, services
from events.models import Enrollment
from notifications.models import Notification
from tests.factories import AdminFactory, EventFactory, UserFactory
from tests.helpers import (
    broker,
    database_url_for_children,
    needs_service,
    notifications_worker_process,
    wait_until,
)


def event_starting_in(delta: dt.timedelta, **fields):
    starts = timezone.localtime(timezone.now() + delta, timezone.get_default_timezone())
    return EventFactory(date=starts.date(), time=starts.time().replace(microsecond=0), **fields)


def reminded_in_outbox() -> list[int]:
    """Participant ids of every reminder written to the outbox so far (one entry per reminder)."""
    return sorted(
        participant_id
        for message in OutboxMessage.objects.filter(task="notifications.notify")
        if message.kwargs["kind"] == "event_reminder"
        for participant_id, _ in message.kwargs["participants"]
    )


def enroll(event, user, *, at=None):
    enrollment = services.enroll(event_id=event.pk, participant_id=user.pk)
    if at is not None:
        Enrollment.objects.filter(pk=enrollment.pk).update(created_at=at)
    return enrollment


@pytest.mark.django_db
def test_each_participant_is_reminded_once_over_many_ticks():
    event = event_starting_in(dt.timedelta(hours=10))
    users = UserFactory.create_batch(3)
    for user in users:
        enroll(event, user)
    assert reminders.send_due_reminders() == 3
    assert reminders.send_due_reminders() == 0  # the second beat tick finds nothing due
    assert reminded_in_outbox() == sorted(u.pk for u in users)
    message = OutboxMessage.objects.filter(task="notifications.notify").last()
    assert message.kwargs["checkin_codes"] == {
        str(e.participant_id): e.checkin_code for e in Enrollment.objects.filter(event=event)
    }


@pytest.mark.django_db
def test_no_reminder_before_the_window_or_after_the_start():
    later = event_starting_in(dt.timedelta(hours=settings.REMINDER_HOURS, minutes=5))
    started = event_starting_in(dt.timedelta(minutes=-5))
    user = UserFactory()
    enroll(later, user)
    Enrollment.objects.create(event=started, participant=UserFactory())
    assert reminders.send_due_reminders() == 0
    # The window opens REMINDER_HOURS before the start.
    assert reminders.send_due_reminders(now=timezone.now() + dt.timedelta(minutes=10)) == 1
    assert reminded_in_outbox() == [user.pk]


@pytest.mark.django_db
@override_settings(REMINDER_HOURS=2)
def test_the_window_follows_the_setting():
    event = event_starting_in(dt.timedelta(hours=3))
    enroll(event, UserFactory())
    assert reminders.send_due_reminders() == 0
    assert reminders.send_due_reminders(now=timezone.now() + dt.timedelta(hours=1, minutes=1)) == 1


@pytest.mark.django_db
def test_who_enrolls_less_than_an_hour_before_the_start_gets_no_reminder():
    event = event_starting_in(dt.timedelta(minutes=40))
    early, late = UserFactory(), UserFactory()
    enroll(event, early, at=timezone.now() - dt.timedelta(hours=5))
    enroll(event, late)  # now: 40 minutes before the start
    assert reminders.send_due_reminders() == 1
    assert reminded_in_outbox() == [early.pk]
    assert Enrollment.objects.get(event=event, participant=late).reminded_at is None


@pytest.mark.django_db
def test_an_event_moved_later_is_reminded_again_and_one_moved_earlier_is_not():
    event = event_starting_in(dt.timedelta(hours=5))
    user = UserFactory()
    enroll(event, user)
    assert reminders.send_due_reminders() == 1

    earlier = timezone.localtime(event.starts_at - dt.timedelta(hours=1), timezone.get_default_timezone())
    # Its date too: an hour earlier is the day before when the event starts just after midnight.
    services.update_event(event_id=event.pk, date=earlier.date(), time=earlier.time())
    assert Enrollment.objects.get(event=event).reminded_at is not None
    assert reminders.send_due_reminders() == 0

    moved = services.update_event(event_id=event.pk, date=event.date + dt.timedelta(days=3))
    assert Enrollment.objects.get(event=event).reminded_at is None
    assert reminders.send_due_reminders() == 0  # three days away: not due yet
    assert reminders.send_due_reminders(now=moved.starts_at - dt.timedelta(hours=2)) == 1
    assert reminded_in_outbox() == [user.pk, user.pk]
    # The reminder carries the event as it now stands.
    last = [m for m in OutboxMessage.objects.order_by("id") if m.kwargs["kind"] == "event_reminder"][-1]
    assert last.kwargs["event"]["date"] == moved.date.isoformat()


@pytest.mark.django_db
def test_a_moved_event_notifies_everyone_enrolled_with_a_higher_sequence():
    event = EventFactory()
    users = UserFactory.create_batch(2)
    for user in users:
        enroll(event, user)
    services.update_event(event_id=event.pk, title="Renamed")  # not a move: no update sent
    services.update_event(event_id=event.pk, location="Room 2")
    updates = [m.kwargs for m in OutboxMessage.objects.all() if m.kwargs.get("kind") == "event_updated"]
    assert len(updates) == 1
    assert sorted(p for p, _ in updates[0]["participants"]) == sorted(u.pk for u in users)
    assert updates[0]["event"]["location"] == "Room 2"
    assert updates[0]["event"]["sequence"] == 1


@needs_service("DATABASE_URL")
@pytest.mark.django_db(transaction=True)
def test_two_beats_at_the_same_moment_remind_each_participant_once():
    event = event_starting_in(dt.timedelta(hours=3))
    users = UserFactory.create_batch(20)
    for user in users:
        Enrollment.objects.create(event=event, participant=user)
    counts: list[int] = []
    start = threading.Barrier(2)

    def tick():
        try:
            start.wait()
            counts.append(reminders.send_due_reminders())
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 20
    assert reminded_in_outbox() == sorted(u.pk for u in users)


def test_beat_runs_the_reminders_every_minute_on_the_notifications_queue():
    [entry] = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == reminders.SEND_TASK]
    assert entry["schedule"] == 60.0
    assert reminders.SEND_TASK in celery_app.tasks
    assert celery_app.amqp.router.route({}, reminders.SEND_TASK)["queue"].name == "notifications"


ticks: list[float] = []


@celery_app.task(name="tests.beat_tick")
def beat_tick() -> None:
    ticks.append(time.monotonic())


def test_the_in_process_beat_runs_the_schedule():
    schedule = {"tick": {"task": "tests.beat_tick", "schedule": 0.05}}
    # (The beat's outbox relay round, which needs the database, does not come in this test's time.)
    with override_settings(CELERY_BEAT_SCHEDULE=schedule, OUTBOX_RELAY_INTERVAL_SECONDS=3600):
        beat = InProcessBeat.instance()
        try:
            wait_until(lambda: len(ticks) >= 3, timeout=10)
        finally:
            beat.stop()
    beat.stopped.wait()
    stopped_at = len(ticks)
    time.sleep(0.2)
    assert len(ticks) <= stopped_at + 1  # at most the tick that was running


@needs_service("CELERY_BROKER_URL")
@pytest.mark.django_db(transaction=True)
def test_beat_ticks_through_the_broker_and_a_restarted_worker_send_one_reminder_each(tmp_path):
    """What beat sends (the task, through RabbitMQ) to a real worker process. The first worker
    reminds three participants and is killed; another takes over and two more ticks come, each
    finding one newcomer due: everyone gets exactly one reminder, and one email."""
    event = event_starting_in(dt.timedelta(hours=6))
    first_three = UserFactory.create_batch(3)
    for user in first_three:
        Enrollment.objects.create(event=event, participant=user)
    env = {**os.environ, "DATABASE_URL": database_url_for_children(), "VAR_DIR": str(tmp_path)}

    def sent_reminders() -> int:
        return Notification.objects.filter(kind="event_reminder", status="sent").count()

    with broker(os.environ["CELERY_BROKER_URL"]):
        celery_app.control.purge()
        first = notifications_worker_process(env)
        try:
            celery_app.send_task(reminders.SEND_TASK)
            wait_until(lambda: sent_reminders() == 3, timeout=60)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        second = notifications_worker_process(env)
        try:
            newcomers = []
            for _tick in range(2):  # the next minutes' ticks; each has one newcomer to remind
                newcomers.append(UserFactory())
                Enrollment.objects.create(event=event, participant=newcomers[-1])
                celery_app.send_task(reminders.SEND_TASK)
                wait_until(lambda: sent_reminders() == 3 + len(newcomers), timeout=60)
            # Whatever the killed worker committed but had not published is published again.
            call_command("relay_outbox", "--once")
            time.sleep(1)  # room for a duplicate to show up, were there one
        finally:
            second.terminate()
            second.wait(timeout=30)
    reminded = sorted(Notification.objects.filter(kind="event_reminder").values_list("user_id", flat=True))
    assert reminded == sorted(u.pk for u in [*first_three, *newcomers])
    # Django's file backend may put emails sent within one second into one file: count emails.
    written = "".join(path.read_text() for path in (tmp_path / "mail").iterdir())
    assert written.count("X-Notification-ID:") == 5


@pytest.mark.django_db
def test_the_event_page_of_the_admin_shows_when_each_participant_was_reminded(client):
    event = event_starting_in(dt.timedelta(hours=3))
    reminded, late = UserFactory(full_name="Early Bird"), UserFactory(full_name="Late Comer")
    enroll(event, reminded)
    reminders.send_due_reminders()
    enroll(event, late)  # after the tick: not reminded yet
    client.force_login(AdminFactory())
    page = client.get(f"/admin/events/event/{event.pk}/change/").content.decode()
    assert "Reminded at" in page
    rows = {name: page.split(name, 1)[1].split("</tr>", 1)[0] for name in ("Early Bird", "Late Comer")}
    assert "—" not in rows["Early Bird"].split("field-reminded", 1)[1].split("</td>", 1)[0]
    assert "—" in rows["Late Comer"].split("field-reminded", 1)[1].split("</td>", 1)[0]
