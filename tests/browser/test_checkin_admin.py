"""Check-in at the door in the admin, as staff use it in Chromium: type the code off a phone into
the event page's box, press Enter, see who it was and the attendance move."""

from __future__ import annotations

from events import services
from events.domain import display_checkin_code
from tests.factories import PASSWORD, AdminFactory, EventFactory, UserFactory


def test_staff_check_a_code_in_from_the_event_page(page, sign_in):
    admin = AdminFactory()
    event = EventFactory(title="Summit", capacity=5)
    ann = UserFactory(full_name="Ann Lee", password=None)
    ticket = services.enroll(event_id=event.pk, participant_id=ann.pk)
    services.enroll(event_id=event.pk, participant_id=UserFactory(full_name="Bob Ray", password=None).pk)

    sign_in(page, admin.email, PASSWORD)
    page.goto(f"/admin/events/event/{event.pk}/change/")
    assert "0 of 2 (0%)" in page.locator(".field-attendance").inner_text()

    page.fill("#id_checkin_code", display_checkin_code(ticket.checkin_code).lower())
    page.press("#id_checkin_code", "Enter")  # the box's own form: the event itself is not saved
    page.wait_for_load_state()
    assert page.url.endswith(f"/admin/events/event/{event.pk}/change/")
    assert "Ann Lee" in page.locator(".messagelist .success").inner_text()
    assert "1 of 2 (50%)" in page.locator(".field-attendance").inner_text()
    cells = page.locator("#enrollments-group td.field-checked_in").all_inner_texts()
    assert len(cells) == 2 and cells[0].strip() not in ("", "—") and cells[1].strip() == "—"

    page.fill("#id_checkin_code", ticket.checkin_code)  # the same ticket again
    page.press("#id_checkin_code", "Enter")
    page.wait_for_load_state()
    assert "already checked in" in page.locator(".messagelist .warning").inner_text()
