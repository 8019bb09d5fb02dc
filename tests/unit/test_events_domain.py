import datetime as dt

import pytest

from config.errors import InvalidValue
from events import domain

NOON = dt.datetime(2030, 5, 1, 12, 0, tzinfo=dt.UTC)


def test_seats_left_and_full():
    assert domain.Seats(capacity=10, enrolled=3).left == 7
    assert not domain.Seats(capacity=10, enrolled=9).is_full
    assert domain.Seats(capacity=10, enrolled=10).is_full
    assert domain.Seats(capacity=10, enrolled=10).left == 0


@pytest.mark.parametrize("capacity", [0, -1, -100])
def test_capacity_must_be_at_least_one(capacity):
    with pytest.raises(InvalidValue) as err:
        domain.check_capacity(capacity)
    assert err.value.field == "capacity"


def test_capacity_cannot_drop_below_enrolled():
    domain.check_capacity(5, enrolled=5)
    with pytest.raises(InvalidValue, match="5 participants already enrolled"):
        domain.check_capacity(4, enrolled=5)


def test_event_closes_when_it_starts():
    assert not domain.is_closed(NOON, NOON - dt.timedelta(seconds=1))
    assert domain.is_closed(NOON, NOON)
    assert domain.is_closed(NOON, NOON + dt.timedelta(days=1))


def _enroll(*, now, capacity=2, enrolled=0, already=False):
    domain.check_can_enroll(
        starts_at=NOON,
        now=now,
        seats=domain.Seats(capacity=capacity, enrolled=enrolled),
        already_enrolled=already,
    )


def test_enrollment_allowed_before_start_with_a_seat_left():
    _enroll(now=NOON - dt.timedelta(hours=1), capacity=2, enrolled=1)


def test_enrollment_answers_closed_before_duplicate_before_full():
    before, after = NOON - dt.timedelta(hours=1), NOON + dt.timedelta(hours=1)
    with pytest.raises(domain.EventClosed):
        _enroll(now=after, enrolled=2, already=True)
    with pytest.raises(domain.AlreadyEnrolled):
        _enroll(now=before, enrolled=2, already=True)
    with pytest.raises(domain.EventFull):
        _enroll(now=before, enrolled=2)


def test_cancel_only_before_start():
    domain.check_can_cancel(starts_at=NOON, now=NOON - dt.timedelta(minutes=1))
    with pytest.raises(domain.EventClosed):
        domain.check_can_cancel(starts_at=NOON, now=NOON)


def test_error_codes_are_the_contracts():
    assert domain.EventFull().code == "event_full"
    assert domain.AlreadyEnrolled().code == "already_enrolled"
    assert domain.EventClosed().code == "event_closed"
    assert domain.NotEnrolled().code == "not_found"
