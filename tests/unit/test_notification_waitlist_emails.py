from notifications.domain import Kind
from notifications.emails import render

EVENT = {"title": "Town hall", "date": "2031-05-01", "time": "10:30", "location": "Atrium"}


def test_waitlisted_says_which_event_and_the_position():
    subject, body = render(Kind.WAITLISTED, {"full_name": "Ann Lee", "event": EVENT, "position": 3})
    assert subject == "You are on the waiting list: Town hall"
    assert 'you are on the waiting list of "Town hall"' in body
    for text in ("Hello Ann Lee", "position 3", "2031-05-01 at 10:30", "Atrium"):
        assert text in body


def test_waitlisted_without_a_position_names_none():
    _, body = render(Kind.WAITLISTED, {"full_name": "Ann", "event": EVENT})
    assert "position" not in body and "waiting list" in body


def test_waitlist_promoted_says_the_seat_is_theirs_now():
    subject, body = render(Kind.WAITLIST_PROMOTED, {"full_name": "Ann", "event": EVENT, "position": 1})
    assert subject == "A seat freed up: you are enrolled in Town hall"
    for text in ("a seat freed up", 'you are now enrolled in "Town hall"', "2031-05-01 at 10:30", "Atrium"):
        assert text in body
