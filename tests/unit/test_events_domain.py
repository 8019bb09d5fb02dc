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


# --- The waiting list and queued admission ----------------------------------------------------------


def test_queued_requests_take_the_seats_in_order_then_wait_behind_the_list():
    decisions = domain.decide_in_order([7, 3, 9, 4], seats_left=2, waitlist_length=5)
    assert [(d.participant_id, d.status, d.position) for d in decisions] == [
        (7, domain.RequestStatus.CONFIRMED, None),
        (3, domain.RequestStatus.CONFIRMED, None),
        (9, domain.RequestStatus.WAITLISTED, 6),
        (4, domain.RequestStatus.WAITLISTED, 7),
    ]
    assert domain.decide_in_order([], seats_left=3, waitlist_length=0) == []
    assert [d.status for d in domain.decide_in_order([1, 2], seats_left=0, waitlist_length=0)] == [
        "waitlisted"
    ] * 2


def test_promotion_fills_free_seats_from_the_list_but_not_after_the_start():
    assert (
        domain.seats_to_promote(seats=domain.Seats(capacity=5, enrolled=3), waitlist_length=10, closed=False)
        == 2
    )
    assert (
        domain.seats_to_promote(seats=domain.Seats(capacity=5, enrolled=3), waitlist_length=1, closed=False)
        == 1
    )
    assert (
        domain.seats_to_promote(seats=domain.Seats(capacity=5, enrolled=5), waitlist_length=4, closed=False)
        == 0
    )
    assert (
        domain.seats_to_promote(seats=domain.Seats(capacity=5, enrolled=3), waitlist_length=4, closed=True)
        == 0
    )


@pytest.mark.parametrize(
    ("full", "pending", "error"),
    [
        (True, True, domain.QueueStillDeciding),
        (False, True, domain.SeatsAvailable),
        (True, False, None),
    ],
)
def test_a_queued_events_list_is_joined_only_once_its_queue_is_decided(full, pending, error):
    def join():
        domain.check_can_join_waitlist(
            starts_at=NOON + dt.timedelta(hours=1),
            now=NOON,
            seats=domain.Seats(capacity=2, enrolled=2 if full else 1),
            already_enrolled=False,
            already_waitlisted=False,
            requests_pending=pending,
        )

    if error is None:
        join()
    else:
        with pytest.raises(error) as refused:
            join()
        assert type(refused.value) is error  # (QueueStillDeciding is a SeatsAvailable)
        assert refused.value.code == "seats_available"  # the contract's "enroll instead"


@pytest.mark.parametrize(
    ("closed", "enrolled", "waiting", "full", "error"),
    [
        (True, True, True, False, domain.EventClosed),
        (False, True, True, True, domain.AlreadyEnrolled),
        (False, False, True, False, domain.AlreadyWaitlisted),
        (False, False, False, False, domain.SeatsAvailable),
        (False, False, False, True, None),
    ],
)
def test_joining_the_waiting_list_answers_in_order(closed, enrolled, waiting, full, error):
    starts = NOON - dt.timedelta(hours=1) if closed else NOON + dt.timedelta(hours=1)
    seats = domain.Seats(capacity=2, enrolled=2 if full else 1)

    def join():
        domain.check_can_join_waitlist(
            starts_at=starts, now=NOON, seats=seats, already_enrolled=enrolled, already_waitlisted=waiting
        )

    if error is None:
        join()
    else:
        with pytest.raises(error):
            join()
