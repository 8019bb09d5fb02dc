"""Notifications on the embedded default: tasks run in-process right after commit."""

import pytest
from django.core import mail
from django.core.management import call_command

from config.outbox import services as outbox_services
from config.outbox.models import OutboxMessage
from events import services as event_services
from notifications import services
from notifications.domain import Status
from notifications.models import Notification
from tests.conftest import DEAD_BROKER, assert_problem, broker, client_for
from tests.factories import EventFactory, UserFactory

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
    services.resend(notification_id=notification.pk)
    notification.refresh_from_db()
    assert (notification.status, len(mail.outbox)) == ("sent", 1)


def test_a_crash_looping_delivery_is_given_up(participant, settings):
    settings.NOTIFICATION_MAX_RETRIES = 1
    event = EventFactory()
    with broker(DEAD_BROKER):  # keep the task from running: the attempts below stand for crashes
        event_services.enroll(event_id=event.pk, participant_id=participant.pk)
    notification = Notification.objects.get()
    Notification.objects.filter(pk=notification.pk).update(attempts=5)
    assert services.deliver(notification_id=notification.pk) == Status.FAILED
    notification.refresh_from_db()
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
        assert Notification.objects.get().status == "queued"
        # The relay cannot publish either while the broker is away; nothing is lost.
        call_command("relay_outbox", "--once")
        assert OutboxMessage.objects.get().published_at is None
    assert mail.outbox == []
    # Broker back (here: the in-process default): the relay delivers, exactly once.
    call_command("relay_outbox", "--once")
    call_command("relay_outbox", "--once")
    assert OutboxMessage.objects.get().published_at is not None
    assert Notification.objects.get().status == "sent"
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
