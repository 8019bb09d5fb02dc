"""Check-in in the Django admin: the event page shows who has come and the attendance rate, and its
"Check in at the door" box checks a code in through events.services (the API's rules and words)."""

import csv
import io
import re

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from events import services
from events.domain import display_checkin_code
from tests.factories import AdminFactory, EventFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def browser():
    client = Client()
    client.force_login(AdminFactory())
    return client


def check_in_box(browser, event, code):
    """Posts a code to the event page's check-in box; returns (the redirect, the messages it left
    for the page, the newest last: the redirect is not followed, so earlier ones are still there)."""
    response = browser.post(f"/admin/events/event/{event.pk}/check-in/", {"checkin_code": code})
    return response, [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def checked_in_cells(page):
    """The enrollments list's "Checked in at" cells, as text."""
    return re.findall(r'<td class="field-checked_in">\s*<p>([^<]*)</p>', page)


def test_the_event_page_checks_a_code_in_and_shows_who_came(browser):
    event = EventFactory(title="Summit")
    ann = UserFactory(full_name="Ann Lee")
    enrollment = services.enroll(event_id=event.pk, participant_id=ann.pk)
    services.enroll(event_id=event.pk, participant_id=UserFactory().pk)

    page = browser.get(f"/admin/events/event/{event.pk}/change/").content.decode()
    assert 'id="checkin_form"' in page and f"/admin/events/event/{event.pk}/check-in/" in page
    assert "0 of 2 (0%)" in page  # the attendance field

    # As a person types it off the e-mail: lower case, dashes.
    response, said = check_in_box(browser, event, display_checkin_code(enrollment.checkin_code).lower())
    assert response.status_code == 302 and response["Location"] == f"/admin/events/event/{event.pk}/change/"
    assert len(said) == 1 and said[0][0] == "success" and "Ann Lee" in said[0][1]
    enrollment.refresh_from_db()
    assert enrollment.checked_in_at is not None

    page = browser.get(f"/admin/events/event/{event.pk}/change/").content.decode()
    assert "1 of 2 (50%)" in page
    cells = checked_in_cells(page)  # in enrollment order: Ann came, the other has not yet
    assert len(cells) == 2 and cells[0] not in ("", "—") and cells[1] == "—"


def test_the_box_says_why_a_code_is_refused(browser):
    event, other = EventFactory(), EventFactory()
    holder, leaver = UserFactory(), UserFactory()
    enrollment = services.enroll(event_id=event.pk, participant_id=holder.pk)
    elsewhere = services.enroll(event_id=other.pk, participant_id=holder.pk)
    cancelled = services.enroll(event_id=event.pk, participant_id=leaver.pk)
    services.cancel_enrollment(event_id=event.pk, participant_id=leaver.pk)
    services.check_in(event_id=event.pk, code=enrollment.checkin_code)

    _, said = check_in_box(browser, event, enrollment.checkin_code)
    level, text = said[-1]
    assert level == "warning" and "already checked in" in text and "First check-in" in text
    _, said = check_in_box(browser, event, elsewhere.checkin_code)  # another event's ticket
    assert said[-1] == (
        "error",
        f"{elsewhere.checkin_code}: No enrollment in this event has this check-in code.",
    )
    _, said = check_in_box(browser, event, cancelled.checkin_code)
    assert said[-1][0] == "error" and "cancelled" in said[-1][1]
    for nonsense in ("", "x" * 65):
        response, said = check_in_box(browser, event, nonsense)
        assert response.status_code == 302 and said[-1][0] == "error", nonsense
    # A NUL no keyboard or scanner types: refused as malformed, like anywhere in the admin.
    response, _ = check_in_box(browser, event, "ab\x00cd")
    assert response.status_code == 400
    # What the API refuses as no code at all, the box refuses with the API's words, not "no
    # enrollment has it".
    response, said = check_in_box(browser, event, "ABCD!EFGH")
    assert said[-1][0] == "error" and "Not a check-in code" in said[-1][1], said
    elsewhere.refresh_from_db()
    assert elsewhere.checked_in_at is None


def test_the_check_in_route_is_for_the_admin_only_and_posts_only(browser, participant):
    event = EventFactory()
    enrollment = services.enroll(event_id=event.pk, participant_id=UserFactory().pk)
    url = f"/admin/events/event/{event.pk}/check-in/"
    assert browser.get(url).status_code == 302  # nothing happens on a GET: back to the page
    enrollment.refresh_from_db()
    assert enrollment.checked_in_at is None
    assert browser.post("/admin/events/event/999999/check-in/", {"checkin_code": "AAAA"}).status_code == 404
    assert browser.post("/admin/events/event/nope/check-in/", {"checkin_code": "AAAA"}).status_code == 404

    outsider = Client()
    outsider.force_login(participant)
    response = outsider.post(url, {"checkin_code": enrollment.checkin_code})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    anonymous = Client().post(url, {"checkin_code": enrollment.checkin_code})
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    # The admin's forms are CSRF-protected like the rest of the admin.
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(AdminFactory())
    assert strict.post(url, {"checkin_code": enrollment.checkin_code}).status_code == 403
    enrollment.refresh_from_db()
    assert enrollment.checked_in_at is None


def test_the_event_list_shows_the_attendance_and_sorts_by_it(browser):
    empty = EventFactory(title="Nobody yet")
    half = EventFactory(title="Half came")
    full = EventFactory(title="All came")
    for event, come in ((half, 1), (full, 2)):
        enrollments = [services.enroll(event_id=event.pk, participant_id=UserFactory().pk) for _ in range(2)]
        for enrollment in enrollments[:come]:
            services.check_in(event_id=event.pk, code=enrollment.checkin_code)

    page = browser.get("/admin/events/event/").content.decode()
    assert '<td class="field-attendance">1 of 2 (50%)</td>' in page
    assert '<td class="field-attendance">2 of 2 (100%)</td>' in page
    assert '<td class="field-attendance">—</td>' in page  # nobody enrolled: no rate
    order = browser.get("/admin/events/event/?o=10").content.decode()  # the attendance column
    assert order.index("Half came") < order.index("All came")
    assert empty.title in order


def test_the_participants_csv_says_when_each_checked_in(browser):
    event = EventFactory()
    came = services.enroll(event_id=event.pk, participant_id=UserFactory().pk)
    services.enroll(event_id=event.pk, participant_id=UserFactory().pk)
    services.check_in(event_id=event.pk, code=came.checkin_code)
    came.refresh_from_db()
    response = browser.post(
        "/admin/events/event/", {"action": "export_participants_csv", "_selected_action": [event.pk]}
    )
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][-1] == "checked_in_at"
    assert [r[-1] for r in rows[1:]] == [came.checked_in_at.isoformat(), ""]  # enrollment order
