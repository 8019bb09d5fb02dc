"""The calendar files and check-in codes of participants' emails, read back from the emails the
worker sent (tasks run in-process after commit; Django's locmem backend keeps them in mail.outbox)."""

from __future__ import annotations

import datetime as dt
import re
import time
from email import message_from_bytes
from email.message import Message

import pytest
from django.core import mail
from django.utils import timezone
from icalendar import Calendar

from config.outbox.models import OutboxMessage
from events import reminders
from events import services as event_services
from events.models import Enrollment
from notifications import calendar, services
from notifications.emails import display_checkin_code, qr_png
from notifications.models import Notification
from notifications.services import event_context
from tests.factories import EventFactory, UserFactory
from tests.helpers import DEAD_BROKER, broker, client_for, needs_service, while_held

pytestmark = pytest.mark.django_db(transaction=True)


def parts(email) -> list[Message]:
    return list(email.message().walk())


def ics_of(email) -> tuple[Calendar, Message]:
    """The email's calendar attachment, parsed, and its MIME part."""
    (part,) = [p for p in parts(email) if p.get_content_type() == "text/calendar"]
    assert part.get_content_disposition() == "attachment" and part.get_filename() == "event.ics"
    return Calendar.from_ical(part.get_payload(decode=True)), part


def vevent(email):
    cal, part = ics_of(email)
    (entry,) = cal.walk("VEVENT")
    assert part.get_param("method") == cal["METHOD"]  # the MIME type says the method too
    return cal["METHOD"], entry


def emails_to(user) -> list:
    return [m for m in mail.outbox if m.to == [user.email]]


def test_the_confirmation_adds_the_event_and_shows_the_code_as_text_and_qr_code(participant_api, participant):
    event = EventFactory(title="Town hall", duration_minutes=45)
    assert participant_api.post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201
    (email,) = mail.outbox
    method, entry = vevent(email)
    assert method == "REQUEST"
    assert entry["UID"] == f"event-{event.pk}@example.com"
    assert (entry["SUMMARY"], entry["LOCATION"], entry["SEQUENCE"]) == ("Town hall", event.location, 0)
    assert entry.decoded("DTSTART") == event.starts_at
    assert entry.decoded("DTEND") == event.ends_at
    assert entry["ATTENDEE"] == f"mailto:{participant.email}"

    code = Enrollment.objects.get(event=event, participant=participant).checkin_code
    assert f"Your check-in code: {display_checkin_code(code)}" in email.body  # the text part
    by_type = {p.get_content_type(): p for p in parts(email)}
    assert by_type["multipart/related"] in by_type["multipart/alternative"].get_payload()
    image = by_type["image/png"]
    png = image.get_payload(decode=True)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png == qr_png(code)  # the code's QR symbol (see unit test)
    cid = image["Content-ID"].strip("<>")
    html = by_type["text/html"].get_payload(decode=True).decode()
    assert f'src="cid:{cid}"' in html and display_checkin_code(code) in html


def test_an_event_starting_on_a_second_keeps_it_in_the_email_and_the_calendar(participant_api):
    event = EventFactory(time=dt.time(9, 30, 15))
    assert participant_api.post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201
    (email,) = mail.outbox
    _, entry = vevent(email)
    assert entry.decoded("DTSTART") == event.starts_at
    assert entry.decoded("DTSTART").second == 15
    assert "09:30:15" in email.body
    file = participant_api.get(f"/api/v1/events/{event.pk}/calendar.ics").content
    (published,) = Calendar.from_ical(file).walk("VEVENT")
    assert published.decoded("DTSTART") == event.starts_at


def test_the_confirmation_read_back_from_its_bytes_has_every_part(participant_api):
    """notifications.emails sets each multipart's boundary itself (Python's generator would make
    them): the bytes sent must still parse back to the same parts, each boundary its own."""
    event = EventFactory()
    assert participant_api.post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201
    (email,) = mail.outbox
    message = email.message()
    boundaries = [p.get_boundary() for p in message.walk() if p.is_multipart()]
    assert len(boundaries) == 3 and len(set(boundaries)) == 3 and all(boundaries)
    parsed = message_from_bytes(message.as_bytes())
    types = [p.get_content_type() for p in parsed.walk()]
    assert types == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "multipart/related",
        "text/html",
        "image/png",
        "text/calendar",
    ]
    assert [p.get_boundary() for p in parsed.walk() if p.is_multipart()] == boundaries
    (png,) = [p for p in parsed.walk() if p.get_content_type() == "image/png"]
    code = Enrollment.objects.get(event=event).checkin_code
    assert png.get_payload(decode=True) == qr_png(code)


def test_moving_the_event_sends_an_update_with_a_higher_sequence_then_cancel_keeps_the_uid(
    participant_api, participant, admin_api
):
    event = EventFactory()
    participant_api.post(f"/api/v1/events/{event.pk}/enrollments/")
    new_date = (event.date + dt.timedelta(days=7)).isoformat()
    assert admin_api.patch(f"/api/v1/events/{event.pk}/", {"date": new_date}).status_code == 200
    assert admin_api.patch(f"/api/v1/events/{event.pk}/", {"location": "Roof"}).status_code == 200
    assert admin_api.patch(f"/api/v1/events/{event.pk}/", {"capacity": 20}).status_code == 200  # no move
    participant_api.delete(f"/api/v1/events/{event.pk}/enrollments/me/")

    sent = [vevent(email) for email in emails_to(participant)]
    assert [method for method, _ in sent] == ["REQUEST", "REQUEST", "REQUEST", "CANCEL"]
    assert len({entry["UID"] for _, entry in sent}) == 1
    sequences = [entry["SEQUENCE"] for _, entry in sent]
    assert sequences == [0, 1, 2, 2]  # up with each move; the cancel carries the latest
    update = sent[1][1]
    assert update.decoded("DTSTART").date().isoformat() == new_date
    assert sent[2][1]["LOCATION"] == "Roof"
    assert sent[3][1]["STATUS"] == "CANCELLED"
    assert [m.subject.split(":")[0] for m in emails_to(participant)] == [
        "You are enrolled",
        "Event changed",
        "Event changed",
        "Enrollment cancelled",
    ]


def test_an_admin_removal_and_an_event_deletion_cancel_the_entry(admin_api):
    removed, kept = UserFactory(), UserFactory()
    event = EventFactory()
    for user in (removed, kept):
        admin_api.post(f"/api/v1/events/{event.pk}/enrollments/", {"participant": user.pk})
    admin_api.delete(f"/api/v1/events/{event.pk}/participants/{removed.pk}/")
    admin_api.delete(f"/api/v1/events/{event.pk}/")
    uid = f"event-{event.pk}@example.com"
    for user, kind in ((removed, "Enrollment cancelled"), (kept, "Event cancelled")):
        last = emails_to(user)[-1]
        assert last.subject.startswith(kind)
        method, entry = vevent(last)
        assert (method, entry["UID"], entry["STATUS"]) == ("CANCEL", uid, "CANCELLED")
        assert "removes the event from your calendar" in last.body
        assert not [p for p in parts(last) if p.get_content_type() == "image/png"]  # no ticket left


def test_times_are_in_the_platform_zone(participant_api, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    event = EventFactory(date=dt.date(2031, 7, 1), time=dt.time(18, 30))
    participant_api.post(f"/api/v1/events/{event.pk}/enrollments/")
    cal, _ = ics_of(mail.outbox[0])
    (entry,) = cal.walk("VEVENT")
    assert entry["DTSTART"].params["TZID"] == "Europe/Berlin" == settings.TIME_ZONE
    assert [z["TZID"] for z in cal.walk("VTIMEZONE")] == ["Europe/Berlin"]
    assert entry.decoded("DTSTART").astimezone(dt.UTC) == dt.datetime(2031, 7, 1, 16, 30, tzinfo=dt.UTC)


def test_a_promotion_is_a_ticket_too(participant_api, participant):
    event = EventFactory(capacity=1)
    waiting = UserFactory()
    participant_api.post(f"/api/v1/events/{event.pk}/enrollments/")
    assert client_for(waiting).post(f"/api/v1/events/{event.pk}/waitlist/").status_code == 201
    participant_api.delete(f"/api/v1/events/{event.pk}/enrollments/me/")
    waitlisted, promoted = emails_to(waiting)
    assert not [p for p in parts(waitlisted) if p.get_content_type() == "text/calendar"]  # no seat yet
    method, entry = vevent(promoted)
    assert (method, entry["UID"]) == ("REQUEST", f"event-{event.pk}@example.com")
    code = Enrollment.objects.get(event=event, participant=waiting).checkin_code
    assert display_checkin_code(code) in promoted.body
    assert any(p.get_content_type() == "image/png" for p in parts(promoted))


def test_the_reminder_carries_the_code_and_the_entry(participant):
    starts = timezone.localtime(timezone.now() + dt.timedelta(hours=5))
    event = EventFactory(date=starts.date(), time=starts.time().replace(microsecond=0))
    client_for(participant).post(f"/api/v1/events/{event.pk}/enrollments/")
    Enrollment.objects.filter(event=event).update(created_at=timezone.now() - dt.timedelta(days=1))
    assert reminders.send_due_reminders() == 1
    reminder = emails_to(participant)[-1]
    assert reminder.subject.startswith("Reminder:")
    method, entry = vevent(reminder)
    assert (method, entry["UID"]) == ("REQUEST", f"event-{event.pk}@example.com")
    code = Enrollment.objects.get(event=event).checkin_code
    assert display_checkin_code(code) in reminder.body


def test_a_resend_sends_the_same_email(participant_api, settings):
    settings.EMAIL_BACKEND = "tests.support.FailingEmailBackend"
    settings.NOTIFICATION_MAX_RETRIES = 0
    event = EventFactory()
    participant_api.post(f"/api/v1/events/{event.pk}/enrollments/")
    notification = Notification.objects.get()
    assert notification.status == "failed" and "METHOD:REQUEST" in notification.calendar
    # The event moves meanwhile: the resent confirmation still says what it said, with the same
    # DTSTAMP (the update, SEQUENCE 1, says the rest).
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    event_services.update_event(event_id=event.pk, location="Roof")
    services.resend(notification_id=notification.pk)
    update, resent = mail.outbox
    assert resent.subject.startswith("You are enrolled") and update.subject.startswith("Event changed")
    cal, _ = ics_of(resent)
    assert cal == Calendar.from_ical(notification.calendar)
    assert cal.walk("VEVENT")[0]["SEQUENCE"] == 0 and vevent(update)[1]["SEQUENCE"] == 1
    assert display_checkin_code(notification.checkin_code) in resent.body


def test_the_file_backend_keeps_the_calendar_readable(participant_api, settings, tmp_path):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    event = EventFactory()
    participant_api.post(f"/api/v1/events/{event.pk}/enrollments/")
    (written,) = tmp_path.iterdir()
    text = written.read_text()
    assert 'Content-Type: text/calendar; charset="utf-8"; method="REQUEST"' in text
    assert f"UID:event-{event.pk}@example.com" in text  # not base64: a person can read it in var/mail


def test_the_file_backend_keeps_one_file_per_email_of_a_batch(admin_api, settings, tmp_path):
    """An update to everyone enrolled is one batch over one email connection: each email still gets
    its own file under var/mail/, as one email per file is what people open there."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    event = EventFactory()
    for user in UserFactory.create_batch(3):
        admin_api.post(f"/api/v1/events/{event.pk}/enrollments/", {"participant": user.pk})
    admin_api.patch(f"/api/v1/events/{event.pk}/", {"location": "Roof"})
    files = [path.read_text() for path in tmp_path.iterdir()]
    assert sum(text.count("BEGIN:VCALENDAR") for text in files) == 6  # every email written
    # (Django names a file by the second and its backend's id(): separate sends in one second may
    # still share one, which is Django's. The batch's emails never do.)
    assert sum("LOCATION:Roof" in text for text in files) == 3


def test_a_late_confirmation_does_not_undo_the_cancellation_after_it(participant):
    """One process's message may wait for the relay while a later one goes at once: the calendar
    entries are stamped with when each change was made, not when the worker wrote them, so the
    cancellation stays the participant's latest word on the event."""
    event = EventFactory()
    with broker(DEAD_BROKER):  # both wait in the outbox; delivered below, the later one first
        event_services.enroll(event_id=event.pk, participant_id=participant.pk)
        time.sleep(1.1)  # DTSTAMP counts whole seconds: the two changes in different ones
        event_services.cancel_enrollment(event_id=event.pk, participant_id=participant.pk)
    confirmation, cancellation = [message.kwargs for message in OutboxMessage.objects.order_by("id")]
    services.notify([cancellation])
    services.notify([confirmation])
    stamps = {
        n.kind: re.search(r"DTSTAMP:(\w+)", n.calendar)[1]
        for n in Notification.objects.filter(user=participant)
    }
    assert stamps["enrollment_cancelled"] > stamps["enrollment_confirmed"]


@pytest.mark.parametrize("night", [dt.date(2031, 3, 30), dt.date(2031, 10, 26)])
def test_an_event_across_a_change_of_the_clock_ends_its_duration_later(settings, night):
    """The end was the start's wall clock plus the duration: an hour short or long on the nights
    the clocks change."""
    settings.TIME_ZONE = "Europe/Berlin"
    event = EventFactory(date=night, time=dt.time(0, 30), duration_minutes=180)  # through 02:00-03:00
    (entry,) = Calendar.from_ical(calendar.render(calendar.PUBLISH, [(event.pk, event_context(event))])).walk(
        "VEVENT"
    )
    start, end = entry.decoded("DTSTART"), entry.decoded("DTEND")
    assert start == event.starts_at
    assert end.astimezone(dt.UTC) - start.astimezone(dt.UTC) == dt.timedelta(minutes=180)
    assert event.ends_at.astimezone(dt.UTC) - event.starts_at.astimezone(dt.UTC) == dt.timedelta(minutes=180)


@needs_service("DATABASE_URL")
def test_a_removal_while_the_event_moves_cancels_with_the_moved_sequence(participant):
    """The removal read the event before the move committed: its cancellation carried the old
    SEQUENCE, which calendar apps ignore as outdated, and the seat stayed in the calendar."""
    event = EventFactory(location="Room 1")
    event_services.enroll(event_id=event.pk, participant_id=participant.pk)
    errors = while_held(
        lambda: event_services.update_event(event_id=event.pk, location="Room 2"),
        lambda: event_services.remove_participant(event_id=event.pk, participant_id=participant.pk),
    )
    assert not errors
    sent = {m.kwargs["kind"]: m.kwargs["event"]["sequence"] for m in OutboxMessage.objects.order_by("id")}
    assert sent["event_updated"] == sent["enrollment_cancelled"] == 1
