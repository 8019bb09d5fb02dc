"""The seeding factories keep what the services keep: the event's counters and its capacity."""

import pytest
from django.db import IntegrityError

from tests.factories import (
    EnrollmentFactory,
    EventFactory,
    NotificationFactory,
    OutboxMessageFactory,
    ReportFactory,
    UserFactory,
    WaitlistEntryFactory,
)

pytestmark = pytest.mark.django_db


def test_seats_and_places_follow_the_event_counters():
    event = EventFactory(capacity=2)
    EnrollmentFactory.create_batch(2, event=event)
    first, second = WaitlistEntryFactory.create_batch(2, event=event)
    assert (event.enrolled_count, event.waitlist_count) == (2, 2)  # the instance held, too
    event.refresh_from_db()
    assert (event.enrolled_count, event.waitlist_count) == (2, 2)
    assert first.pk < second.pk  # positions follow the ids


def test_a_seat_past_the_capacity_is_refused():
    event = EventFactory(capacity=1)
    EnrollmentFactory(event=event)
    with pytest.raises(IntegrityError):
        EnrollmentFactory(event=event)


def test_the_other_rows_start_where_their_workflows_do():
    ann = UserFactory()
    assert NotificationFactory(user=ann).to_email == ann.email
    assert NotificationFactory().status == "queued"
    assert ReportFactory().status == "pending"
    assert OutboxMessageFactory().published_at is None
