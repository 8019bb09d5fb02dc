"""The admin and the API docs as their users see them, in Chromium, against a live server."""

from __future__ import annotations

import datetime as dt
import re

import httpx
from django.utils import timezone

from events import services
from events.models import Enrollment, Event
from notifications.models import Notification
from tests.factories import PASSWORD, AdminFactory, EventFactory, UserFactory


def people(*names: str) -> list:
    """Participants that never sign in (no password to hash)."""
    return [UserFactory(full_name=name, password=None) for name in names]


def pick_participant(page, row: str, name: str) -> None:
    """Chooses `name` in the participant picker (select2 autocomplete) of the inline row `row`."""
    page.click(f"#{row} .select2-selection")
    page.fill(".select2-container--open .select2-search__field", name.split()[0])
    page.click(f".select2-container--open .select2-results__option:has-text('{name}')")


def test_an_admin_signs_in_and_the_dashboard_shows_real_figures(page, sign_in, docs_screenshot):
    admin = AdminFactory(full_name="Ada Admin")
    today = timezone.localdate()
    town_hall = EventFactory(title="Town hall", capacity=4, date=today + dt.timedelta(days=3))
    launch = EventFactory(
        title="Rush launch", capacity=2, date=today + dt.timedelta(days=6), admission="queue"
    )
    EventFactory(title="Last year's party", date=today - dt.timedelta(days=300))
    for person in people("Ann Lee", "Bob Ray", "Cat Poe"):
        services.enroll(event_id=town_hall.pk, participant_id=person.pk)
    # Enrollments of earlier days: 2 five days ago, 1 twelve days ago; a waiting list on the full one.
    for days_ago, person in zip((5, 5, 12), people("Dan Oak", "Eve Fox", "Fay Elm"), strict=True):
        services.enroll(event_id=launch.pk if days_ago == 5 else town_hall.pk, participant_id=person.pk)
        Enrollment.objects.filter(participant=person).update(
            created_at=timezone.now() - dt.timedelta(days=days_ago)
        )
    services.join_waitlist(event_id=launch.pk, participant_id=people("Gus Ash")[0].pk)
    Notification.objects.create(
        kind="enrollment_confirmed", to_email="bounce@example.com", subject="s", body="b", status="failed"
    )

    sign_in(page, admin.email, PASSWORD)
    assert page.url.endswith("/admin/")
    dashboard = page.locator("#event-dashboard")
    assert dashboard.locator("#figure-failed-notifications strong").inner_text() == "1"
    assert dashboard.locator("#figure-reports-not-ready strong").inner_text() == "0"
    assert dashboard.locator("#figure-enrollments strong").inner_text() == "6"
    row = dashboard.locator(f"#upcoming-event-{town_hall.pk}")
    assert "4/4" in row.inner_text()
    assert row.locator(".fillbar span").evaluate("e => e.style.width") == "100%"
    rows = dashboard.locator("#upcoming-events tbody tr").all_inner_texts()
    assert [r.split("\t")[0] for r in rows] == ["Town hall", "Rush launch"]  # soonest first, no past one
    assert "2/2" in rows[1] and "queued" in rows[1]
    assert dashboard.locator(f"#upcoming-event-{launch.pk} .waitlist").inner_text() == "1"
    chart = dashboard.locator("#enrollments-chart svg")
    bars = chart.locator("rect.bar")
    assert bars.count() == 30
    heights = [float(bars.nth(i).get_attribute("height") or 0) for i in range(30)]
    assert [i for i, h in enumerate(heights) if h > 0] == [29 - 12, 29 - 5, 29]  # oldest day first
    assert heights[29] > heights[29 - 5] > heights[29 - 12]  # 3, 2, 1
    assert bars.nth(29).locator("title").text_content().endswith(": 3 enrollments")
    assert chart.bounding_box()["width"] > 300  # drawn, and wide
    docs_screenshot(page, "admin-dashboard")

    page.click("#figure-failed-notifications a")
    assert "status__exact=failed" in page.url
    assert page.locator("#result_list").inner_text().count("bounce@example.com") == 1


def test_an_admin_creates_an_event_enrolls_two_and_the_third_is_refused(page, sign_in):
    admin = AdminFactory()
    ann, bob, cat = people("Ann Lee", "Bob Ray", "Cat Poe")
    sign_in(page, admin.email, PASSWORD)

    page.goto("/admin/events/event/add/")
    page.fill("#id_title", "Two-seat workshop")
    page.fill("#id_date", (dt.date.today() + dt.timedelta(days=14)).isoformat())
    page.fill("#id_time", "10:00")
    page.fill("#id_location", "Room 4")
    page.fill("#id_capacity", "2")
    page.click("input[name=_continue]")
    assert "was added successfully" in page.locator(".messagelist").inner_text()
    event = Event.objects.get(title="Two-seat workshop")
    assert page.url.endswith(f"/admin/events/event/{event.pk}/change/")

    # Two at once: the picker, then "Enroll another participant" for a second row.
    pick_participant(page, "enrollments-2-0", ann.full_name)
    page.click("#enrollments-2-group .add-row a")
    assert page.locator("#enrollments-2-group .add-row a").inner_text() == "Enroll another participant"
    pick_participant(page, "enrollments-2-1", bob.full_name)
    page.click("input[name=_continue]")
    assert "was changed successfully" in page.locator(".messagelist").inner_text()
    enrolled = page.locator("#enrollments-group tbody").inner_text()
    assert f"{ann.full_name} <{ann.email}>" in enrolled and f"{bob.full_name} <{bob.email}>" in enrolled

    # The third: refused, with the reason, and nothing changed.
    pick_participant(page, "enrollments-2-0", cat.full_name)
    page.click("input[name=_continue]")
    assert (
        "1 participant(s) to enroll, but only 0 seat(s) left."
        in page.locator("#enrollments-2-group .errorlist").inner_text()
    )
    event.refresh_from_db()
    assert event.enrolled_count == 2
    assert set(event.enrollments.values_list("participant_id", flat=True)) == {ann.pk, bob.pk}


def test_the_event_page_shows_the_waiting_list_in_order(page, sign_in, docs_screenshot):
    admin = AdminFactory()
    event = EventFactory(title="Sold-out talk", capacity=2, description="Seats for two, a queue for more.")
    ann, bob, cat, dan = people("Ann Lee", "Bob Ray", "Cat Poe", "Dan Oak")
    for person in (ann, bob):
        services.enroll(event_id=event.pk, participant_id=person.pk)
    for person in (cat, dan):
        services.join_waitlist(event_id=event.pk, participant_id=person.pk)

    sign_in(page, admin.email, PASSWORD)
    page.goto(f"/admin/events/event/{event.pk}/change/")
    waiting = page.locator("#waitlist-group")
    assert waiting.locator("h2").text_content().strip() == "Waiting list"
    rows = [re.sub(r"\s+", " ", r).strip() for r in waiting.locator("tbody tr").all_inner_texts()]
    assert rows[0].startswith(f"1 {cat.full_name} <{cat.email}>")
    assert rows[1].startswith(f"2 {dan.full_name} <{dan.email}>")
    assert page.locator("#id_admission").input_value() == "direct"
    docs_screenshot(page, "admin-event", "#content")

    # The list's names lead to the participant's page, which shows the place too.
    waiting.get_by_role("link", name=f"{cat.full_name} <{cat.email}>").click()
    assert page.url.endswith(f"/admin/participants/participant/{cat.pk}/change/")
    place = page.locator("#waitlist_entries-group tbody").inner_text()
    assert "Sold-out talk" in place and re.search(r"\b1\b", place)


def test_a_big_events_lists_page_and_a_seat_is_freed_from_a_later_page(page, sign_in):
    admin = AdminFactory()
    event = EventFactory(title="All hands", capacity=130)
    crowd = [UserFactory(full_name=f"Person {i:03d}", password=None) for i in range(131)]
    for person in crowd[:130]:
        services.enroll(event_id=event.pk, participant_id=person.pk)
    services.join_waitlist(event_id=event.pk, participant_id=crowd[130].pk)

    sign_in(page, admin.email, PASSWORD)
    page.goto(f"/admin/events/event/{event.pk}/change/")
    seated = page.locator("#enrollments-group")
    assert seated.locator("tbody tr.has_original").count() == 100
    assert re.sub(r"\s+", " ", seated.locator(".paginator").inner_text()).strip() == "1–100 of 130 · next ›"
    with page.expect_navigation():
        seated.get_by_role("link", name="next ›").click()
    assert page.url.endswith(f"/admin/events/event/{event.pk}/change/?enrolled=2#enrollments-group")
    rows = seated.locator("tbody tr.has_original")
    assert rows.count() == 30 and "Person 100" in rows.first.inner_text()
    rows.first.locator("td.delete input").check()
    with page.expect_navigation():
        page.click("input[name=_continue]")
    assert "was changed successfully" in page.locator(".messagelist").inner_text()
    seated_now = set(Enrollment.objects.filter(event=event).values_list("participant_id", flat=True))
    assert crowd[100].pk not in seated_now and crowd[130].pk in seated_now  # the first waiting took it


def test_the_pager_asks_before_leaving_changes_not_saved(page, sign_in):
    admin = AdminFactory()
    event = EventFactory(title="All hands", capacity=101)
    for person in UserFactory.create_batch(101, password=None):
        services.enroll(event_id=event.pk, participant_id=person.pk)
    sign_in(page, admin.email, PASSWORD)
    page.goto(f"/admin/events/event/{event.pk}/change/")
    seated = page.locator("#enrollments-group")
    seated.locator("tbody tr.has_original").first.locator("td.delete input").check()
    asked = []

    def answer(dialog, leave):
        asked.append(dialog.message)
        dialog.accept() if leave else dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, leave=False))
    seated.get_by_role("link", name="next ›").click()
    page.wait_for_timeout(300)
    assert asked == ["Changes on this page are not saved yet. Leave it and lose them?"]
    assert page.url.endswith(f"/admin/events/event/{event.pk}/change/")  # stayed, the change kept
    assert seated.locator("tbody tr.has_original").first.locator("td.delete input").is_checked()

    page.once("dialog", lambda dialog: answer(dialog, leave=True))
    with page.expect_navigation():
        seated.get_by_role("link", name="next ›").click()
    assert len(asked) == 2 and "?enrolled=2" in page.url
    assert Enrollment.objects.filter(event=event).count() == 101  # nothing was saved


def test_a_participant_cannot_sign_in_to_the_admin(page, sign_in):
    participant = UserFactory()
    sign_in(page, participant.email, PASSWORD)
    assert "/admin/login/" in page.url
    assert "for a staff account" in page.locator(".errornote").inner_text()
    page.goto("/admin/")
    assert "/admin/login/" in page.url  # still not signed in


def test_swagger_authorizes_with_a_token_and_lists_events(page, live_url, traffic):
    EventFactory(title="Visible in Swagger")
    participant = UserFactory()
    token = httpx.post(
        f"{live_url}/api/v1/auth/token/", json={"email": participant.email, "password": PASSWORD}
    ).json()["access"]

    page.goto("/api/docs/")
    page.click("button.authorize")
    page.fill(".modal-ux input", token)
    page.click(".modal-ux button.authorize")
    page.click(".modal-ux button.btn-done")
    operation = page.locator("#operations-Events-v1_events_list")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    response = operation.locator(".live-responses-table .response")
    assert response.locator(".response-col_status").inner_text().strip() == "200"
    assert "Visible in Swagger" in response.locator(".response-col_description").inner_text()
    assert f"Authorization: Bearer {token}" in operation.locator(".curl-command").inner_text()
    assert traffic.failed == []


def test_redoc_renders_without_any_request_leaving_the_machine(page, traffic):
    page.goto("/api/redoc/")
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").first.inner_text().startswith("Event platform API")
    assert page.get_by_role("heading", name="List events").count() >= 1
    menu = page.locator(".menu-content")  # the side menu: a tag, then one of its operations
    menu.get_by_text("Events", exact=True).first.click()
    menu.get_by_text("List events").first.click()
    # ReDoc sets the address once it has scrolled there: asked at once, a busy machine saw the tag's.
    page.wait_for_function("location.hash.endsWith('#tag/Events/operation/v1_events_list')", timeout=10_000)
    page.wait_for_load_state("networkidle")
    assert traffic.failed == []
    assert traffic.outside() == []
    assert any(url.endswith("/api/redoc/redoc.standalone.js") for url in traffic.requests)
