import pytest

from notifications.domain import Kind, retry_delay
from notifications.emails import render

EVENT = {"title": "Town hall", "date": "2031-05-01", "time": "10:30", "location": "Atrium"}


def test_enrollment_confirmation_says_what_when_where():
    subject, body = render(Kind.ENROLLMENT_CONFIRMED, {"full_name": "Ann Lee", "event": EVENT})
    assert subject == "You are enrolled: Town hall"
    for text in ("Hello Ann Lee", "2031-05-01 at 10:30", "Atrium", "cancel"):
        assert text in body


def test_cancellations():
    subject, body = render(Kind.ENROLLMENT_CANCELLED, {"full_name": "Ann", "event": EVENT})
    assert subject == "Enrollment cancelled: Town hall" and "has been cancelled" in body
    subject, body = render(Kind.EVENT_CANCELLED, {"full_name": "Ann", "event": EVENT})
    assert subject == "Event cancelled: Town hall" and "by the organisers" in body


def test_report_ready_counts_and_says_where_the_report_is():
    _, body = render(Kind.REPORT_READY, {"event": EVENT, "participant_count": 1, "attached": True})
    assert "1 participant." in body and "attached" in body and "Hello there" in body
    _, body = render(Kind.REPORT_READY, {"event": EVENT, "participant_count": 3})
    assert "3 participants" in body and "Download it" in body


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError):
        render("party_invitation", {})  # type: ignore[arg-type]


def test_backoff_doubles_up_to_a_cap():
    assert [retry_delay(n, base_seconds=10) for n in range(4)] == [10, 20, 40, 80]
    assert retry_delay(20, base_seconds=10) == 600
