"""Notifications on the embedded default: tasks run in-process right after commit."""

import pytest
from django.core import mail
from django.core.management import call_command

from config.outbox import services as outbox_services
from config.outbox.models import OutboxMessage
from events import services as event_services
from notifications import services
from notifications.domain import Kind, Status
from notifications.models import Notification
from tests.factories import EventFactory, NotificationFactory, UserFactory
from tests.helpers import DEAD_BROKER, assert_problem, broker, client_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_enrollment_sends_a_confirmation_email(participant_api, participant):
    event = EventFactory(title="Town hall")
    assert participant_api.post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201
    assert [m.subject for m in mail.outbox] == ["You are enrolled: Town hall"]
    assert mail.outbox[0].to == [participant.email]
    notification = Notification.objects.get()
    assert (notification.kind, notification.status, notification.user_id) == (
        "enrollment_confirmed",
        "sent",
        participant.pk,
    )
    assert notification.sent_at is not None
    assert OutboxMessage.objects.get().published_at is not None


def test_the_file_backend_writes_each_email_under_var_mail(participant_api, participant, settings, tmp_path):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    event = EventFactory(title="Board games")
    participant_api.post(f"/api/v1/events/{event.pk}/enrollments/")
    files = list(tmp_path.iterdir())
    assert len(files) == 1
    text = files[0].read_text()
    assert "Subject: You are enrolled: Board games" in text and participant.email in text


def test_cancel_remove_and_event_deletion_each_notify(participant_api, participant, admin_api):
    event = EventFactory(title="Offsite")
    other = UserFactory()
    participant_api.post(f"/api/v1/events/{event.pk}/enrollments/")
    admin_api.post(f"/api/v1/events/{event.pk}/enrollments/", {"participant": other.pk})
    participant_api.delete(f"/api/v1/events/{event.pk}/enrollments/me/")
    participant_api.post(f"/api/v1/events/{event.pk}/enrollments/")
    admin_api.delete(f"/api/v1/events/{event.pk}/participants/{other.pk}/")
    admin_api.delete(f"/api/v1/events/{event.pk}/")
    kinds = list(Notification.objects.order_by("id").values_list("user_id", "kind"))
    assert kinds == [
        (participant.pk, "enrollment_confirmed"),
        (other.pk, "enrollment_confirmed"),
        (participant.pk, "enrollment_cancelled"),
        (participant.pk, "enrollment_confirmed"),
        (other.pk, "enrollment_cancelled"),
        (participant.pk, "event_cancelled"),
    ]
    assert len(mail.outbox) == 6
    assert mail.outbox[-1].subject == "Event cancelled: Offsite"


def test_a_refused_enrollment_sends_nothing(participant_api):
    event = EventFactory(capacity=1)
    client_for(UserFactory()).post(f"/api/v1/events/{event.pk}/enrollments/")
    assert_problem(participant_api.post(f"/api/v1/events/{event.pk}/enrollments/"), 409, "event_full")
    assert Notification.objects.count() == OutboxMessage.objects.count() == len(mail.outbox) == 1


def test_my_notifications_newest_first_and_only_mine(participant_api, participant):
    first, second = EventFactory(title="First"), EventFactory(title="Second")
    participant_api.post(f"/api/v1/events/{first.pk}/enrollments/")
    participant_api.post(f"/api/v1/events/{second.pk}/enrollments/")
    client_for(UserFactory()).post(f"/api/v1/events/{first.pk}/enrollments/")
    items = participant_api.get("/api/v1/me/notifications/").json()["results"]
    assert [i["subject"] for i in items] == ["You are enrolled: Second", "You are enrolled: First"]
    assert set(items[0]) == {"id", "kind", "subject", "body", "status", "created_at", "sent_at", "event"}
    assert (items[0]["status"], items[0]["event"]) == ("sent", second.pk)


def test_delivery_is_idempotent(participant):
    event = EventFactory()
    event_services.enroll(event_id=event.pk, participant_id=participant.pk)
    notification = Notification.objects.get()
    assert len(mail.outbox) == 1
    assert services.deliver(notification_id=notification.pk) == Status.SENT
    assert services.deliver(notification_id=notification.pk) == Status.SENT
    assert len(mail.outbox) == 1
    assert services.deliver(notification_id=999999) is None


def test_failing_email_backend_retries_then_marks_failed(participant_api, settings):
    settings.EMAIL_BACKEND = "tests.support.FailingEmailBackend"
    settings.NOTIFICATION_MAX_RETRIES = 2
    event = EventFactory()
    # The enrollment itself succeeds: email trouble never fails the request.
    assert participant_api.post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201
    notification = Notification.objects.get()
    assert notification.status == "failed"
    assert notification.attempts == 3  # the first try and two retries
    assert "SMTP server refused" in notification.error
    assert participant_api.get("/api/v1/me/notifications/").json()["results"][0]["status"] == "failed"

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert services.resend(notification_id=notification.pk) is True
    notification.refresh_from_db()
    assert (notification.status, len(mail.outbox)) == ("sent", 1)
    assert services.resend(notification_id=notification.pk) is False  # not failed: nothing queued
    assert len(mail.outbox) == 1


def test_a_crash_looping_delivery_is_given_up(participant, settings):
    settings.NOTIFICATION_MAX_RETRIES = 1
    event = EventFactory()
    with broker(DEAD_BROKER):  # keep the task from running: the attempts below stand for crashes
        event_services.enroll(event_id=event.pk, participant_id=participant.pk)
    items = [OutboxMessage.objects.get().kwargs]
    # The worker created the row and died while sending, again and again.
    created, _ = services._create_notifications(items)
    Notification.objects.filter(pk=created[0].pk).update(attempts=5)
    assert services.notify(items) == []  # the redelivery gives up instead of sending
    notification = Notification.objects.get()
    assert notification.status == "failed" and "interrupted" in notification.error
    assert mail.outbox == []


def test_broker_down_enrollment_succeeds_and_the_relay_delivers_later(participant_api, participant):
    event = EventFactory()
    with broker(DEAD_BROKER):
        response = participant_api.post(f"/api/v1/events/{event.pk}/enrollments/")
        assert response.status_code == 201
        assert outbox_services.flush_publisher()  # its attempt, off the request's thread
        message = OutboxMessage.objects.get()
        assert message.published_at is None and message.attempts == 1
        assert "Error" in message.last_error
        # The outbox row is the notification's only record until the worker runs.
        assert message.kwargs["participants"] == [[participant.pk, None]]
        assert not Notification.objects.exists()
        assert participant_api.get("/api/v1/me/notifications/").json()["results"] == []
        # The relay cannot publish either while the broker is away; nothing is lost.
        call_command("relay_outbox", "--once")
        assert OutboxMessage.objects.get().published_at is None
    assert mail.outbox == []
    # Broker back (here: the in-process default): the relay delivers, exactly once.
    call_command("relay_outbox", "--once")
    call_command("relay_outbox", "--once")
    assert OutboxMessage.objects.get().published_at is not None
    assert Notification.objects.get().status == "sent"
    assert participant_api.get("/api/v1/me/notifications/").json()["results"][0]["status"] == "sent"
    assert len(mail.outbox) == 1


def test_enqueue_outside_a_transaction_is_a_programming_error():
    from config.outbox import services as outbox

    with pytest.raises(RuntimeError):
        outbox.enqueue("notifications.send_notification", notification_id=1)


def test_the_pushed_item_is_the_api_item_in_any_time_zone(participant_api, participant, settings):
    from notifications import realtime as live

    settings.TIME_ZONE = "Europe/Berlin"  # timestamps render with the zone's offset, in both places
    event_services.enroll(event_id=EventFactory().pk, participant_id=participant.pk)
    listed = participant_api.get("/api/v1/me/notifications/").json()["results"][0]
    assert live.item(Notification.objects.get()) == listed
    assert listed["created_at"].endswith(("+01:00", "+02:00"))


def test_the_outbox_publisher_survives_an_unexpected_error(monkeypatch):
    first, second = UserFactory(), UserFactory()
    event = EventFactory()
    failures = iter([RuntimeError("database gone for a moment")])

    def close_old_connections_failing_once():
        error = next(failures, None)
        if error is not None:
            raise error

    monkeypatch.setattr(outbox_services, "close_old_connections", close_old_connections_failing_once)
    with broker(DEAD_BROKER):  # every publish that is attempted fails and is counted on its row
        event_services.enroll(event_id=event.pk, participant_id=first.pk)
        assert outbox_services.flush_publisher()
        event_services.enroll(event_id=event.pk, participant_id=second.pk)
        assert outbox_services.flush_publisher()
    attempts = list(OutboxMessage.objects.order_by("id").values_list("attempts", flat=True))
    assert attempts == [0, 1]  # the first batch hit the error; the thread lived on to try the next


def test_the_business_transaction_writes_one_outbox_message_and_no_notification(participant):
    from django.db import transaction

    event = EventFactory(title="Retro")
    with broker(DEAD_BROKER), transaction.atomic():
        services.notify_participant(
            kind=Kind.WAITLISTED, participant_id=participant.pk, event=event, position=4
        )
        assert not Notification.objects.exists()
        [message] = OutboxMessage.objects.all()
    assert message.task == services.NOTIFY_TASK
    assert message.kwargs["kind"] == "waitlisted"
    assert message.kwargs["event_id"] == event.pk
    assert message.kwargs["event"] == services.event_context(event)
    assert message.kwargs["participants"] == [[participant.pk, 4]]


def test_many_participants_are_notified_through_outbox_messages_of_a_bounded_size(monkeypatch):
    """One task sends at most a broker message's items × PARTICIPANTS_PER_MESSAGE emails: an event's
    cancellation once wrote one message for all its participants, however many, and its task could
    outlive the time limit and RabbitMQ's consumer timeout."""
    from django.db import transaction

    monkeypatch.setattr(services, "PARTICIPANTS_PER_MESSAGE", 2)
    event = EventFactory(title="Offsite")
    people = UserFactory.create_batch(5)
    with broker(DEAD_BROKER), transaction.atomic():
        services.notify_participants(
            kind=Kind.ENROLLMENT_CONFIRMED,
            event=event,
            participants=[(person.pk, None) for person in people],
            checkin_codes={people[0].pk: "CODE-0", people[3].pk: "CODE-3"},
        )
    messages = [message.kwargs for message in OutboxMessage.objects.order_by("id")]
    assert [[pid for pid, _ in message["participants"]] for message in messages] == [
        [people[0].pk, people[1].pk],
        [people[2].pk, people[3].pk],
        [people[4].pk],
    ]
    assert [message["checkin_codes"] for message in messages] == [
        {str(people[0].pk): "CODE-0"},
        {str(people[3].pk): "CODE-3"},
        {},
    ]
    assert len({message["key"] for message in messages}) == 3
    tasks = __import__("notifications.tasks", fromlist=["notify"])
    tasks.notify.apply(kwargs={"items": messages})
    codes = dict(Notification.objects.filter(status="sent").values_list("user_id", "checkin_code"))
    assert codes == {person.pk: "" for person in people} | {people[0].pk: "CODE-0", people[3].pk: "CODE-3"}
    assert len(mail.outbox) == 5


def test_a_redelivered_message_creates_one_notification_and_one_email(participant):
    event = EventFactory(title="Town hall")
    with broker(DEAD_BROKER):
        event_services.enroll(event_id=event.pk, participant_id=participant.pk)
    items = [OutboxMessage.objects.get().kwargs]
    tasks = __import__("notifications.tasks", fromlist=["notify"])
    tasks.notify.apply(kwargs={"items": items})
    tasks.notify.apply(kwargs={"items": items})  # the broker delivers it again
    tasks.notify.apply(kwargs={"items": items + items})  # even twice in one batch
    notification = Notification.objects.get()
    assert (notification.status, notification.attempts) == ("sent", 1)
    assert notification.key.startswith(items[0]["key"])
    assert [m.subject for m in mail.outbox] == ["You are enrolled: Town hall"]


def test_a_redelivery_after_a_crash_before_the_send_sends_once(participant):
    event = EventFactory()
    with broker(DEAD_BROKER):
        event_services.enroll(event_id=event.pk, participant_id=participant.pk)
    items = [OutboxMessage.objects.get().kwargs]
    services._create_notifications(items)  # the worker died after creating the row
    assert Notification.objects.get().status == "queued"
    assert services.notify(items) == []
    notification = Notification.objects.get()
    assert (notification.status, notification.attempts) == ("sent", 2)
    assert len(mail.outbox) == 1


def test_event_deleted_before_the_worker_runs(participant_api, participant, admin_api):
    event = EventFactory(title="Summer party", location="Roof")
    assert participant_api.post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201
    mail.outbox.clear()
    with broker(DEAD_BROKER):  # the notifications wait in the outbox while the event goes
        assert admin_api.delete(f"/api/v1/events/{event.pk}/").status_code == 204
    assert not Notification.objects.filter(kind="event_cancelled").exists()
    call_command("relay_outbox", "--once")
    notification = Notification.objects.get(kind="event_cancelled")
    assert notification.event_id is None
    assert (notification.user_id, notification.status) == (participant.pk, "sent")
    assert notification.subject == "Event cancelled: Summer party"
    assert "Roof" in notification.body and event.date.isoformat() in notification.body
    assert mail.outbox[0].subject == "Event cancelled: Summer party"
    assert participant_api.get("/api/v1/me/notifications/").json()["results"][0]["event"] is None


def test_a_live_event_is_referred_to(participant):
    event = EventFactory()
    event_services.enroll(event_id=event.pk, participant_id=participant.pk)
    assert Notification.objects.get().event_id == event.pk


def test_waitlist_notifications_carry_the_position(participant):
    from django.db import transaction

    event = EventFactory(title="Workshop")
    other = UserFactory(full_name="Bo Berg")
    with transaction.atomic():
        services.notify_participant(
            kind=Kind.WAITLISTED, participant_id=participant.pk, event=event, position=2
        )
        services.notify_participants(
            kind=Kind.WAITLISTED, event=event, participants=[(other.pk, 3), (participant.pk, None)]
        )
        services.notify_participant(kind=Kind.WAITLIST_PROMOTED, participant_id=other.pk, event=event)
    rows = list(Notification.objects.order_by("id").values_list("user_id", "kind", "subject", "body"))
    assert [(user, kind) for user, kind, _, _ in rows] == [
        (participant.pk, "waitlisted"),
        (other.pk, "waitlisted"),
        (participant.pk, "waitlisted"),
        (other.pk, "waitlist_promoted"),
    ]
    assert "position 2" in rows[0][3] and "position 3" in rows[1][3] and "position" not in rows[2][3]
    assert "Hello Bo Berg" in rows[1][3]
    assert rows[3][2] == "A seat freed up: you are enrolled in Workshop"
    assert len(mail.outbox) == 4 and Notification.objects.filter(status="sent").count() == 4


def test_notify_participants_is_one_outbox_message_for_many(participant):
    from django.db import transaction

    event = EventFactory()
    others = UserFactory.create_batch(3)
    with broker(DEAD_BROKER), transaction.atomic():
        services.notify_participants(
            kind=Kind.ENROLLMENT_CONFIRMED, event=event, participants=[(p.pk, None) for p in others]
        )
    assert OutboxMessage.objects.count() == 1
    call_command("relay_outbox", "--once")
    assert sorted(Notification.objects.values_list("user_id", flat=True)) == sorted(p.pk for p in others)
    assert len(mail.outbox) == 3


def test_a_participant_deleted_before_the_worker_runs_is_skipped(participant):
    from django.db import transaction

    event = EventFactory()
    gone = UserFactory()
    with broker(DEAD_BROKER), transaction.atomic():
        services.notify_participants(
            kind=Kind.ENROLLMENT_CONFIRMED,
            event=event,
            participants=[(gone.pk, None), (participant.pk, None)],
        )
    gone.delete()
    call_command("relay_outbox", "--once")
    assert list(Notification.objects.values_list("user_id", flat=True)) == [participant.pk]
    assert [m.to for m in mail.outbox] == [[participant.email]]


def test_one_failing_email_of_a_batch_is_retried_alone(participant, settings, monkeypatch):
    from notifications import tasks

    settings.NOTIFICATION_MAX_RETRIES = 1
    event = EventFactory()
    other = UserFactory()
    with broker(DEAD_BROKER):
        event_services.enroll(event_id=event.pk, participant_id=participant.pk)
        event_services.enroll(event_id=event.pk, participant_id=other.pk)
    items = [m.kwargs for m in OutboxMessage.objects.order_by("id")]
    real_email = services._email

    def refusing_the_participant(notification):
        if notification.user_id == participant.pk:
            raise ConnectionRefusedError("mailbox unavailable")
        return real_email(notification)

    monkeypatch.setattr(services, "_email", refusing_the_participant)
    retried = []
    real_notify = services.notify
    monkeypatch.setattr(services, "notify", lambda items: retried.append(len(items)) or real_notify(items))
    tasks.notify.apply(kwargs={"items": items})
    assert retried == [2, 1]  # the retry carries only the item whose email failed
    mine = Notification.objects.get(user_id=participant.pk)
    assert (mine.status, mine.attempts) == ("failed", 2) and "mailbox unavailable" in mine.error
    assert Notification.objects.get(user_id=other.pk).status == "sent"
    assert [m.to for m in mail.outbox] == [[other.email]]


def test_resending_a_notification_that_has_not_failed_does_nothing(participant_api):
    event = EventFactory()
    assert participant_api.post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201
    notification = Notification.objects.get()
    assert notification.status == "sent" and len(mail.outbox) == 1
    pending = OutboxMessage.objects.count()
    services.resend(notification_id=notification.pk)
    notification.refresh_from_db()
    assert notification.status == "sent" and notification.attempts == 1
    assert OutboxMessage.objects.count() == pending and len(mail.outbox) == 1  # nothing queued, nothing sent


def test_an_entry_the_calendar_cannot_hold_costs_neither_its_notification_nor_the_batch(settings, caplog):
    """An event stored before event dates were bounded, at the edge of Python's dates: its calendar
    overflowed, and the whole batch's notifications were lost with it (their outbox message spent)."""
    settings.TIME_ZONE = "Europe/Berlin"  # its time-zone rules a year either side overflow too
    edge, ordinary = EventFactory(), EventFactory()
    ann, bob = UserFactory.create_batch(2)
    with broker(DEAD_BROKER):  # the messages stay in the outbox: delivered below, as one batch
        event_services.enroll(event_id=edge.pk, participant_id=ann.pk)
        event_services.enroll(event_id=ordinary.pk, participant_id=bob.pk)
    items = [message.kwargs for message in OutboxMessage.objects.order_by("id")]
    items[0]["event"]["date"] = "9999-12-31"
    assert services.notify(items) == []
    by_user = {n.user_id: n for n in Notification.objects.all()}
    assert set(by_user) == {ann.pk, bob.pk}
    assert by_user[ann.pk].calendar == "" and by_user[ann.pk].status == "sent"
    assert by_user[bob.pk].calendar.startswith("BEGIN:VCALENDAR")
    assert "goes without a calendar" in caplog.text


def test_a_delivery_that_meets_the_database_away_is_tried_again(participant, monkeypatch):
    """The email stayed queued for good: the failed task's message was acknowledged."""
    from django.db import OperationalError

    from notifications.tasks import send_notification

    deliver, calls = services.deliver, []

    def away_once(*, notification_id):
        calls.append(notification_id)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return deliver(notification_id=notification_id)

    monkeypatch.setattr(services, "deliver", away_once)
    notification = NotificationFactory(user=participant)
    send_notification.delay(notification.pk)
    notification.refresh_from_db()
    assert (notification.status, len(calls), len(mail.outbox)) == ("sent", 2, 1)


def test_an_account_deactivated_before_its_message_is_delivered_gets_nothing(participant):
    """Its seat went back when it was deactivated: the confirmation, delivered after, handed it a
    ticket that no longer held."""
    event = EventFactory()
    with broker(DEAD_BROKER):  # the message waits in the outbox (the relay publishes it later)
        event_services.enroll(event_id=event.pk, participant_id=participant.pk)
    items = [OutboxMessage.objects.get().kwargs]
    participant.is_active = False
    participant.save()
    assert services.notify(items) == []
    assert not Notification.objects.exists() and mail.outbox == []
