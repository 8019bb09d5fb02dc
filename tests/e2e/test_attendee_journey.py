"""One participant's way through the features around an enrollment, as clients see them: a retried
enrollment, the calendar file of the confirmation email, the personal feed, and the check-in at the
door with the code the email gave."""

import re
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import override_settings
from icalendar import Calendar

from events.models import Enrollment
from tests.factories import EventFactory
from tests.helpers import assert_problem

pytestmark = pytest.mark.django_db(transaction=True)


def calendar_of(email) -> Calendar:
    [part] = [p for p in email.message().walk() if p.get_content_type() == "text/calendar"]
    return Calendar.from_ical(part.get_payload(decode=True))


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_enroll_retry_calendar_feed_and_check_in(zone, participant_api, participant, admin_api, anon):
    with override_settings(TIME_ZONE=zone):
        event = EventFactory(title="Summer party", duration_minutes=120)
        url = f"/api/v1/events/{event.pk}/enrollments/"

        # A retry with the same key (the network dropped the first answer) replays it: one seat.
        first = participant_api.post(url, HTTP_IDEMPOTENCY_KEY="enroll-summer-1")
        retry = participant_api.post(url, HTTP_IDEMPOTENCY_KEY="enroll-summer-1")
        assert first.status_code == retry.status_code == 201
        assert retry.json() == first.json() and retry["Idempotent-Replayed"] == "true"
        assert Enrollment.objects.filter(event=event).count() == 1

        # The confirmation email: one, with the event for the calendar and the code for the door.
        [email] = mail.outbox
        assert email.to == [participant.email]
        [entry] = calendar_of(email).walk("VEVENT")
        assert entry.decoded("DTSTART") == event.starts_at
        # In the platform's zone: wall-clock time with its TZID, or UTC written as such.
        assert entry["DTSTART"].params.get("TZID", "UTC") == zone
        assert entry.decoded("DTEND") == event.ends_at
        code = re.search(r"Your check-in code: ([A-Z2-7-]+)", email.body).group(1)

        # The feed a calendar app subscribes to has the same entry (same UID), without a bearer.
        feed_url = participant_api.get("/api/v1/me/calendar/").json()["url"]
        parts = urlsplit(feed_url)
        feed = anon.get(f"{parts.path}?{parts.query}")
        assert feed.status_code == 200 and feed["Content-Type"].startswith("text/calendar")
        [listed] = Calendar.from_ical(feed.content).walk("VEVENT")
        assert listed["UID"] == entry["UID"] and listed.decoded("DTSTART") == event.starts_at

        # At the door: the code as the email printed it checks the participant in, once.
        check_in = f"/api/v1/events/{event.pk}/check-ins/"
        admitted = admin_api.post(check_in, {"code": code}, format="json")
        assert admitted.status_code == 201
        assert admitted.json()["participant"]["id"] == participant.pk
        again = assert_problem(
            admin_api.post(check_in, {"code": code}, format="json"), 409, "already_checked_in"
        )
        assert again["checked_in_at"] == admitted.json()["checked_in_at"]
        [mine] = participant_api.get("/api/v1/me/enrollments/").json()["results"]
        assert mine["checked_in_at"] == admitted.json()["checked_in_at"]
