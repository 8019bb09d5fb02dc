import datetime as dt

import pytest

from config.errors import InvalidValue
from config.outbox.models import OutboxMessage
from events import domain, services
from events.models import Enrollment, Event
from notifications import services as notifications
from tests.factories import EventFactory, UserFactory

pytestmark = pytest.mark.django_db


def seats(event):
    event.refresh_from_db()
    return event.enrolled_count, Enrollment.objects.filter(event=event).count()


def test_enroll_takes_a_seat_and_records_when():
    event, user = EventFactory(capacity=2), UserFactory()
    enrollment = services.enroll(event_id=event.pk, participant_id=user.pk)
    assert (enrollment.event_id, enrollment.participant_id) == (event.pk, user.pk)
    assert seats(event) == (1, 1)


def test_enroll_refuses_full_duplicate_closed_and_unknown():
    event = EventFactory(capacity=1)
    first, second = UserFactory(), UserFactory()
    services.enroll(event_id=event.pk, participant_id=first.pk)
    with pytest.raises(domain.AlreadyEnrolled):
        services.enroll(event_id=event.pk, participant_id=first.pk)
    with pytest.raises(domain.EventFull):
        services.enroll(event_id=event.pk, participant_id=second.pk)
    with pytest.raises(domain.EventClosed):
        services.enroll(event_id=event.pk, participant_id=second.pk, now=event.starts_at)
    with pytest.raises(services.EventNotFound):
        services.enroll(event_id=987654, participant_id=second.pk)
    assert seats(event) == (1, 1)


def test_duplicate_with_seats_left_rolls_the_seat_back():
    event, user = EventFactory(capacity=5), UserFactory()
    services.enroll(event_id=event.pk, participant_id=user.pk)
    with pytest.raises(domain.AlreadyEnrolled):
        services.enroll(event_id=event.pk, participant_id=user.pk)
    assert seats(event) == (1, 1)


def test_event_start_uses_the_platform_time_zone(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    event = EventFactory(date=dt.date(2031, 6, 1), time=dt.time(10, 0))
    assert event.starts_at == dt.datetime(2031, 6, 1, 8, 0, tzinfo=dt.UTC)
    opening = dt.datetime(2031, 6, 1, 8, 0, tzinfo=dt.UTC)
    services.enroll(event_id=event.pk, participant_id=UserFactory().pk, now=opening - dt.timedelta(seconds=1))
    with pytest.raises(domain.EventClosed):
        services.enroll(event_id=event.pk, participant_id=UserFactory().pk, now=opening)


@pytest.mark.parametrize(
    ("now", "closed"),
    [
        # Berlin's clocks go back at 03:00 summer time (01:00 UTC): 02:00-03:00 comes twice. An event
        # at 02:30 starts at the first 02:30 (00:30 UTC), as make_aware reads it.
        (dt.datetime(2031, 10, 26, 0, 29, 59, tzinfo=dt.UTC), False),
        (dt.datetime(2031, 10, 26, 0, 30, tzinfo=dt.UTC), True),
        # The second 02:15 (winter time): by the wall clock still before 02:30, but the event started.
        (dt.datetime(2031, 10, 26, 1, 15, tzinfo=dt.UTC), True),
    ],
)
def test_an_event_in_the_repeated_hour_closes_at_its_real_start(settings, now, closed):
    settings.TIME_ZONE = "Europe/Berlin"
    event = EventFactory(date=dt.date(2031, 10, 26), time=dt.time(2, 30))
    # (An aware time in a repeated hour never equals another zone's: compare the instants.)
    assert event.starts_at.astimezone(dt.UTC) == dt.datetime(2031, 10, 26, 0, 30, tzinfo=dt.UTC)
    if closed:
        with pytest.raises(domain.EventClosed):
            services.enroll(event_id=event.pk, participant_id=UserFactory().pk, now=now)
        assert seats(event) == (0, 0)
    else:
        services.enroll(event_id=event.pk, participant_id=UserFactory().pk, now=now)
        assert seats(event) == (1, 1)


@pytest.mark.parametrize(
    ("starts", "shown"),
    [(dt.time(9, 5), "09:05"), (dt.time(9, 5, 7), "09:05:07"), (dt.time(9, 5, 0, 500000), "09:05")],
)
def test_the_confirmation_message_carries_the_event_as_notifications_snapshot_it(starts, shown):
    """On PostgreSQL the enrollment writes its outbox message in the seat's own statement, the
    event's snapshot formatted by the database: it must be the message notify_participant writes."""
    event = EventFactory(
        title='Quarterly "all hands" – Zürich',
        date=dt.date(2031, 1, 5),
        time=starts,
        location="Hall 'B'",
    )
    user = UserFactory()
    enrollment = services.enroll(event_id=event.pk, participant_id=user.pk, check_account=True)
    message = OutboxMessage.objects.filter(task=notifications.NOTIFY_TASK).latest("id")
    event.refresh_from_db()
    expected_keys = {"key", "at", "kind", "event_id", "event", "participants", "checkin_codes"}
    assert set(message.kwargs) == expected_keys
    made_at = dt.datetime.fromisoformat(message.kwargs["at"])  # when the change was made
    assert abs(made_at - enrollment.created_at) < dt.timedelta(seconds=1)
    assert message.kwargs["event"] == notifications.event_context(event)
    assert message.kwargs["event"]["time"] == shown
    assert message.kwargs["kind"] == "enrollment_confirmed"
    assert (message.kwargs["event_id"], message.kwargs["participants"]) == (event.pk, [[user.pk, None]])
    assert message.kwargs["checkin_codes"] == {str(user.pk): enrollment.checkin_code}
    assert Enrollment.objects.get(pk=enrollment.pk).checkin_code == enrollment.checkin_code


def test_cancel_and_remove_free_the_seat():
    event = EventFactory(capacity=2)
    a, b = UserFactory(), UserFactory()
    for user in (a, b):
        services.enroll(event_id=event.pk, participant_id=user.pk)
    services.cancel_enrollment(event_id=event.pk, participant_id=a.pk)
    services.remove_participant(event_id=event.pk, participant_id=b.pk)
    assert seats(event) == (0, 0)
    with pytest.raises(domain.NotEnrolled):
        services.cancel_enrollment(event_id=event.pk, participant_id=a.pk)
    with pytest.raises(domain.NotEnrolled):
        services.remove_participant(event_id=event.pk, participant_id=b.pk)


def test_participant_cannot_cancel_after_start_but_admin_can_remove():
    event, user = EventFactory(), UserFactory()
    services.enroll(event_id=event.pk, participant_id=user.pk)
    with pytest.raises(domain.EventClosed):
        services.cancel_enrollment(event_id=event.pk, participant_id=user.pk, now=event.starts_at)
    services.remove_participant(event_id=event.pk, participant_id=user.pk)
    assert seats(event) == (0, 0)


def test_update_event_capacity_rule():
    event = EventFactory(capacity=3)
    for user in UserFactory.create_batch(2):
        services.enroll(event_id=event.pk, participant_id=user.pk)
    with pytest.raises(InvalidValue) as err:
        services.update_event(event_id=event.pk, capacity=1)
    assert err.value.field == "capacity"
    updated = services.update_event(event_id=event.pk, capacity=2, title="Smaller room")
    assert (updated.capacity, updated.title, updated.seats_left) == (2, "Smaller room", 0)
    with pytest.raises(services.EventNotFound):
        services.update_event(event_id=987654, title="x")
    with pytest.raises(TypeError):
        services.update_event(event_id=event.pk, enrolled_count=0)


def test_delete_event_removes_its_enrollments():
    event, user = EventFactory(), UserFactory()
    services.enroll(event_id=event.pk, participant_id=user.pk)
    services.delete_event(event_id=event.pk)
    assert not Event.objects.exists() and not Enrollment.objects.exists()
    with pytest.raises(services.EventNotFound):
        services.delete_event(event_id=event.pk)


def test_withdraw_from_all_events():
    events = EventFactory.create_batch(3)
    user, other = UserFactory(), UserFactory()
    for event in events[:2]:
        services.enroll(event_id=event.pk, participant_id=user.pk)
        services.enroll(event_id=event.pk, participant_id=other.pk)
    assert sorted(services.withdraw_from_all_events(participant_id=user.pk)) == sorted(
        e.pk for e in events[:2]
    )
    assert [seats(e) for e in events] == [(1, 1), (1, 1), (0, 0)]


def test_database_refuses_overbooking_whatever_the_code_path():
    from django.db import IntegrityError, transaction

    event = EventFactory(capacity=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Event.objects.filter(pk=event.pk).update(enrolled_count=2)
    user = UserFactory()
    Enrollment.objects.create(event=event, participant=user)
    with pytest.raises(IntegrityError), transaction.atomic():
        Enrollment.objects.create(event=event, participant=user)


@pytest.mark.django_db(transaction=True)  # real commits: the notifications would be written after
def test_deleting_an_event_that_has_started_tells_nobody():
    from django.utils import timezone

    from notifications.models import Notification

    event = EventFactory(capacity=1)
    services.enroll(event_id=event.pk, participant_id=UserFactory().pk)
    services.join_waitlist(event_id=event.pk, participant_id=UserFactory().pk)
    assert Notification.objects.filter(kind="waitlisted").exists()  # notifications do get written
    Event.objects.filter(pk=event.pk).update(date=timezone.localdate() - dt.timedelta(days=1))
    services.delete_event(event_id=event.pk)
    assert not Notification.objects.filter(kind="event_cancelled").exists()
    assert not Event.objects.filter(pk=event.pk).exists()
