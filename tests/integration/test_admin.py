"""The Django admin goes through the same services as the API."""

import csv
import datetime as dt
import io
import re

import pytest
from django.test import Client

from events import services
from events.models import AdmissionRequest, Enrollment, Event, WaitlistEntry
from notifications.models import Notification
from participants.models import User
from tests.factories import (
    PASSWORD,
    AdminFactory,
    EnrollmentFactory,
    EventFactory,
    NotificationFactory,
    ReportFactory,
    UserFactory,
    WaitlistEntryFactory,
)
from tests.helpers import form_as_posted

pytestmark = pytest.mark.django_db(transaction=True)


# The rest of the event page as posted when only the enrollments change: direct admission, and the
# management forms of the "Enroll participants" and both waiting-list inlines, with no rows.
NO_NEW_ENROLLMENTS = {
    "admission": "direct",
    "enrollments-2-TOTAL_FORMS": "0",
    "enrollments-2-INITIAL_FORMS": "0",
    "waitlist-TOTAL_FORMS": "0",
    "waitlist-INITIAL_FORMS": "0",
    "waitlist-2-TOTAL_FORMS": "0",
    "waitlist-2-INITIAL_FORMS": "0",
}


def change_form(event, *, enroll=(), wait=()):
    """The event's change form as the admin page posts it, enrolling the `enroll` participants and
    putting the `wait` participants on the waiting list."""
    form = {
        "title": event.title,
        "description": event.description,
        "date": event.date.isoformat(),
        "time": event.time.strftime("%H:%M"),
        "duration_minutes": str(event.duration_minutes),
        "location": event.location,
        "capacity": str(event.capacity),
        "admission": event.admission,
        "enrollments-TOTAL_FORMS": "0",
        "enrollments-INITIAL_FORMS": "0",
        "enrollments-2-TOTAL_FORMS": str(len(enroll)),
        "enrollments-2-INITIAL_FORMS": "0",
        "waitlist-TOTAL_FORMS": "0",
        "waitlist-INITIAL_FORMS": "0",
        "waitlist-2-TOTAL_FORMS": str(len(wait)),
        "waitlist-2-INITIAL_FORMS": "0",
    }
    for i, participant in enumerate(enroll):
        form[f"enrollments-2-{i}-participant"] = str(participant.pk)
    for i, participant in enumerate(wait):
        form[f"waitlist-2-{i}-participant"] = str(participant.pk)
    return form


@pytest.fixture
def browser():
    client = Client()
    client.force_login(AdminFactory())
    return client


def test_event_changelist_shows_seats(browser):
    event = EventFactory(title="Town hall", capacity=3)
    services.enroll(event_id=event.pk, participant_id=UserFactory().pk)
    page = browser.get("/admin/events/event/?q=town")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Town hall" in html
    assert '<td class="field-seats_left">2</td>' in html
    assert browser.get(f"/admin/events/event/{event.pk}/change/").status_code == 200


def test_add_and_edit_through_the_admin_respect_capacity(browser, participant_api):
    form = {
        "title": "Offsite",
        "description": "",
        "date": "2031-03-01",
        "time": "09:00",
        "duration_minutes": "90",
        "location": "Lake",
        "capacity": "2",
        "enrollments-TOTAL_FORMS": "0",
        "enrollments-INITIAL_FORMS": "0",
        **NO_NEW_ENROLLMENTS,
    }
    assert participant_api.get("/api/v1/events/").json()["count"] == 0  # warms the cache
    response = browser.post("/admin/events/event/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    event = Event.objects.get(title="Offsite")
    assert participant_api.get("/api/v1/events/").json()["count"] == 1  # the admin invalidated it

    for user in UserFactory.create_batch(2):
        services.enroll(event_id=event.pk, participant_id=user.pk)
    form.update({"capacity": "1", "enrollments-TOTAL_FORMS": "2", "enrollments-INITIAL_FORMS": "2"})
    for i, enrollment in enumerate(event.enrollments.all()):
        form[f"enrollments-{i}-id"] = str(enrollment.pk)
        form[f"enrollments-{i}-event"] = str(event.pk)
    response = browser.post(f"/admin/events/event/{event.pk}/change/", form)
    assert response.status_code == 200
    assert "Capacity cannot be lower than the 2 participants already enrolled" in response.content.decode()
    event.refresh_from_db()
    assert event.capacity == 2


def test_removing_an_enrollment_inline_frees_the_seat(browser):
    event = EventFactory(capacity=2)
    leaving, staying = UserFactory(), UserFactory()
    for user in (leaving, staying):
        services.enroll(event_id=event.pk, participant_id=user.pk)
    form = {
        "title": event.title,
        "description": event.description,
        "date": event.date.isoformat(),
        "time": "10:30",
        "duration_minutes": str(event.duration_minutes),
        "location": event.location,
        "capacity": "2",
        "enrollments-TOTAL_FORMS": "2",
        "enrollments-INITIAL_FORMS": "2",
        **NO_NEW_ENROLLMENTS,
    }
    for i, enrollment in enumerate(event.enrollments.order_by("id")):
        form[f"enrollments-{i}-id"] = str(enrollment.pk)
        form[f"enrollments-{i}-event"] = str(event.pk)
    form["enrollments-0-DELETE"] = "on"
    response = browser.post(f"/admin/events/event/{event.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    event.refresh_from_db()
    assert event.enrolled_count == 1
    assert list(event.enrollments.values_list("participant_id", flat=True)) == [staying.pk]


def test_the_admin_refuses_an_event_date_beyond_what_calendars_can_hold(browser):
    event = EventFactory(title="Offsite")
    response = browser.post(
        f"/admin/events/event/{event.pk}/change/", {**change_form(event), "date": "9999-12-31"}
    )
    assert response.status_code == 200  # the form again, with the error
    assert "Ensure this value is less than or equal to 2999-12-31" in response.content.decode()
    assert Event.objects.get(pk=event.pk).date == event.date


def test_export_participants_as_csv(browser):
    first, second = EventFactory(title="=cmd|calc"), EventFactory()
    ann = UserFactory(full_name="Ann")
    bob = UserFactory(full_name="Bob")
    services.enroll(event_id=first.pk, participant_id=ann.pk)
    services.enroll(event_id=second.pk, participant_id=bob.pk)
    response = browser.post(
        "/admin/events/event/",
        {"action": "export_participants_csv", "_selected_action": [first.pk, second.pk]},
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:6] == ["event_id", "event_title", "event_date", "participant_id", "full_name", "email"]
    assert {(r[0], r[4], r[5]) for r in rows[1:]} == {
        (str(first.pk), "Ann", ann.email),
        (str(second.pk), "Bob", bob.email),
    }
    assert rows[1][1] == "'=cmd|calc"  # formula neutralised


def test_deleting_a_participant_in_the_admin_frees_seats(browser):
    event = EventFactory(capacity=1)
    user = UserFactory()
    services.enroll(event_id=event.pk, participant_id=user.pk)
    response = browser.post(f"/admin/participants/user/{user.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not User.objects.filter(pk=user.pk).exists()
    event.refresh_from_db()
    assert event.enrolled_count == 0


def test_participants_cannot_use_the_admin(participant):
    client = Client()
    client.force_login(participant)
    response = client.get("/admin/events/event/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_enrolling_participants_from_the_event_page(browser, participant_api):
    event = EventFactory(capacity=3)
    ann, bob = UserFactory(), UserFactory()
    page = browser.get(f"/admin/events/event/{event.pk}/change/").content.decode()
    assert 'name="enrollments-2-TOTAL_FORMS"' in page and "Enroll participants" in page
    assert participant_api.get(f"/api/v1/events/{event.pk}/").json()["seats_left"] == 3  # cached now

    response = browser.post(f"/admin/events/event/{event.pk}/change/", change_form(event, enroll=[ann, bob]))
    assert response.status_code == 302, response.content.decode()[:3000]
    event.refresh_from_db()
    assert event.enrolled_count == 2
    assert set(event.enrollments.values_list("participant_id", flat=True)) == {ann.pk, bob.pk}
    assert Notification.objects.filter(kind="enrollment_confirmed").count() == 2  # as through the API
    assert participant_api.get(f"/api/v1/events/{event.pk}/").json()["seats_left"] == 1


@pytest.mark.parametrize("case", ["too_many", "already_enrolled", "closed", "admin"])
def test_enrolling_from_the_event_page_keeps_the_rules(browser, case):
    event = EventFactory(capacity=2)
    ann, bob, cat = UserFactory(), UserFactory(), UserFactory()
    services.enroll(event_id=event.pk, participant_id=ann.pk)
    enroll, expected = {
        "too_many": ([bob, cat], "2 participant(s) to enroll, but only 1 seat(s) left."),
        "already_enrolled": ([ann], "already enrolled"),
        "closed": ([bob], "already started"),
        "admin": ([AdminFactory()], "Select a valid choice"),
    }[case]
    if case == "closed":
        Event.objects.filter(pk=event.pk).update(date="2020-01-01")
        event.refresh_from_db()
    response = browser.post(f"/admin/events/event/{event.pk}/change/", change_form(event, enroll=enroll))
    assert response.status_code == 200  # the form again, with the error
    assert expected in response.content.decode()
    event.refresh_from_db()
    assert event.enrolled_count == 1
    assert list(event.enrollments.values_list("participant_id", flat=True)) == [ann.pk]


def test_a_new_event_with_errors_and_participants_to_enroll_shows_the_errors(browser):
    ann = UserFactory()
    form = change_form(EventFactory.build(), enroll=[ann])
    form.update({"date": "2031-02-30", "capacity": "0"})  # no such day; no seat
    response = browser.post("/admin/events/event/add/", form)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Enter a valid date." in html
    assert not Event.objects.exists()


def test_the_event_page_shows_and_edits_the_waiting_list(browser):
    event = EventFactory(capacity=1)
    services.enroll(event_id=event.pk, participant_id=UserFactory().pk)
    first, second, third = (
        UserFactory(full_name="First Waiter"),
        UserFactory(full_name="Second Waiter"),
        UserFactory(),
    )
    services.join_waitlist(event_id=event.pk, participant_id=first.pk)
    services.join_waitlist(event_id=event.pk, participant_id=second.pk)

    page = browser.get(f"/admin/events/event/{event.pk}/change/").content.decode()
    assert "Waiting list" in page and "First Waiter" in page
    assert page.index("First Waiter") < page.index("Second Waiter")

    # Add one at the end and take the first off, in one save.
    form = change_form(event, wait=[third])
    entries = list(WaitlistEntry.objects.filter(event=event).order_by("id"))
    form.update({"waitlist-TOTAL_FORMS": "2", "waitlist-INITIAL_FORMS": "2"})
    for i, entry in enumerate(entries):
        form[f"waitlist-{i}-id"] = str(entry.pk)
        form[f"waitlist-{i}-event"] = str(event.pk)
    form["waitlist-0-DELETE"] = "on"
    response = browser.post(f"/admin/events/event/{event.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(
        WaitlistEntry.objects.filter(event=event).order_by("id").values_list("participant_id", flat=True)
    ) == [
        second.pk,
        third.pk,
    ]
    event.refresh_from_db()
    assert event.waitlist_count == 2

    changelist = browser.get("/admin/events/event/").content.decode()
    assert "Waitlist count" in changelist and "Admission" in changelist


def test_the_admin_refuses_a_waiting_list_place_while_seats_are_left(browser):
    event = EventFactory(capacity=3)
    response = browser.post(
        f"/admin/events/event/{event.pk}/change/", change_form(event, wait=[UserFactory()]), follow=True
    )
    assert "still has seats" in response.content.decode()
    assert not WaitlistEntry.objects.filter(event=event).exists()


def test_the_admins_hand_puts_someone_on_the_list_ahead_of_pending_requests(browser):
    """A participant joining a queued event's list themself waits for the requests queued before
    (409 "enroll instead"); the admin, deciding by hand, may put someone on it at once."""
    event = EventFactory(capacity=1, admission="queue")
    services.enroll(event_id=event.pk, participant_id=UserFactory().pk)
    AdmissionRequest.objects.create(event=event, participant=UserFactory())  # not decided yet
    chosen = UserFactory()
    response = browser.post(
        f"/admin/events/event/{event.pk}/change/", change_form(event, wait=[chosen]), follow=True
    )
    assert "on the waiting list at position 1" in response.content.decode()
    assert list(WaitlistEntry.objects.filter(event=event).values_list("participant_id", flat=True)) == [
        chosen.pk
    ]


def test_the_admin_sets_queued_admission(browser):
    event = EventFactory()
    form = change_form(event)
    form["admission"] = "queue"
    assert browser.post(f"/admin/events/event/{event.pk}/change/", form).status_code == 302
    assert Event.objects.get(pk=event.pk).admission == "queue"


def test_the_admin_sign_in_locks_an_account_after_repeated_failures_from_one_address(settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    boss = AdminFactory()
    attacker, colleague = Client(REMOTE_ADDR="203.0.113.9"), Client(REMOTE_ADDR="198.51.100.7")
    wrong = {"username": boss.email, "password": "wrong-guess", "next": "/admin/"}
    for _ in range(3):
        assert "Please enter the correct email" in attacker.post("/admin/login/", wrong).content.decode()
    right = {**wrong, "password": PASSWORD}
    locked = attacker.post("/admin/login/", right).content.decode()
    assert "Too many failed sign-ins for this account" in locked  # even the right password waits
    # From another address the account is not locked: an attacker cannot lock the admin out.
    assert colleague.post("/admin/login/", right).status_code == 302


# --- The dashboard on the admin index ---------------------------------------------------------------


def test_the_dashboard_shows_upcoming_events_failures_and_enrollments_per_day(browser):
    from django.utils import timezone

    from events import dashboard

    today = dashboard.local_now().date()
    full = EventFactory(title="Full talk", capacity=2, date=today + dt.timedelta(days=2), admission="queue")
    roomy = EventFactory(title="Roomy talk", capacity=10, date=today + dt.timedelta(days=5))
    past = EventFactory(title="Old talk", date=today - dt.timedelta(days=3))
    for user in UserFactory.create_batch(2):
        services.enroll(event_id=full.pk, participant_id=user.pk)
    services.join_waitlist(event_id=full.pk, participant_id=UserFactory().pk)
    services.enroll(event_id=roomy.pk, participant_id=UserFactory().pk)
    # Three days ago: one enrollment of that day, counted on its own day of the chart.
    Enrollment.objects.filter(event=roomy).update(created_at=timezone.now() - dt.timedelta(days=3))
    EnrollmentFactory(event=past, created_at=timezone.now() - dt.timedelta(days=40))
    NotificationFactory(to_email="a@example.com", status="failed")
    NotificationFactory(to_email="b@example.com", status="sent")
    for status in ("pending", "running", "done"):
        ReportFactory(event=roomy, status=status)

    html = browser.get("/admin/").content.decode()

    dash = html[html.index('id="event-dashboard"') :]
    upcoming = dash[dash.index('id="upcoming-events"') : dash.index('id="enrollments-chart"')]
    assert upcoming.index("Full talk") < upcoming.index("Roomy talk")  # soonest first
    assert "Old talk" not in upcoming
    row = upcoming[upcoming.index(f'id="upcoming-event-{full.pk}"') :]
    row = row[: row.index("</tr>")]
    assert "width: 100%" in row and "2/2" in row and "queued" in row
    assert '<td class="num waitlist">1</td>' in row
    row = upcoming[upcoming.index(f'id="upcoming-event-{roomy.pk}"') :]
    assert "width: 10%" in row[: row.index("</tr>")] and "1/10" in row and "direct" in row

    failed = dash[dash.index('id="figure-failed-notifications"') :]
    assert "<strong>1</strong>" in failed[:200]
    assert 'href="/admin/notifications/notification/?status__exact=failed"' in failed[:400]
    reports = dash[dash.index('id="figure-reports-not-ready"') :]
    assert "<strong>2</strong>" in reports[:200]  # pending and running, not done
    assert 'href="/admin/reports/report/?status__in=pending,running"' in reports[:400]
    enrolled = dash[dash.index('id="figure-enrollments"') :]
    assert "<strong>3</strong>" in enrolled[:200]  # the one of 40 days ago is out of the period

    chart = dash[dash.index("<svg") : dash.index("</svg>")]
    assert chart.count('<rect class="bar"') == 30
    assert f"<title>{today.isoformat()}: 2 enrollments</title>" in chart
    assert f"<title>{(today - dt.timedelta(days=3)).isoformat()}: 1 enrollment</title>" in chart
    assert f"<title>{(today - dt.timedelta(days=1)).isoformat()}: 0 enrollments</title>" in chart
    assert "http" not in chart.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing to load
    assert html.index("</svg>") < html.index("Accounts and participants")  # above the list of apps


def test_the_linked_lists_show_what_the_dashboard_counted(browser):

    event = EventFactory()
    NotificationFactory(kind="waitlisted", to_email="gone@example.com", status="failed")
    NotificationFactory(kind="waitlisted", to_email="fine@example.com", status="sent")
    ReportFactory(event=event, status="running")
    ReportFactory(event=event, status="failed")
    failed = browser.get("/admin/notifications/notification/?status__exact=failed").content.decode()
    assert "gone@example.com" in failed and "fine@example.com" not in failed
    reports = browser.get("/admin/reports/report/?status__in=pending,running")
    assert reports.status_code == 200
    assert "1 report" in reports.content.decode()


def test_the_dashboard_costs_the_same_queries_however_many_events(browser, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert browser.get("/admin/").status_code == 200
        return len(captured)

    EventFactory.create_batch(2)
    few = queries()
    EventFactory.create_batch(12)
    assert queries() == few


def test_the_dashboard_and_the_app_pages_stay_apart(browser):
    assert 'id="event-dashboard"' not in browser.get("/admin/events/").content.decode()
    EventFactory(title="Nothing yet")
    html = browser.get("/admin/").content.decode()
    assert "<strong>0</strong>" in html and "Nothing yet" in html


# --- The events changelist ---------------------------------------------------------------------------


def test_the_event_list_shows_fill_and_filters_by_time_seats_and_waiting_list(browser):
    from django.utils import timezone

    today = timezone.localdate()
    full = EventFactory(title="Full one", capacity=2)
    half = EventFactory(title="Half one", capacity=4)
    EventFactory(title="Past one", date=today - dt.timedelta(days=1))
    for user in UserFactory.create_batch(2):
        services.enroll(event_id=full.pk, participant_id=user.pk)
    services.enroll(event_id=half.pk, participant_id=UserFactory().pk)
    services.enroll(event_id=half.pk, participant_id=UserFactory().pk)
    services.join_waitlist(event_id=full.pk, participant_id=UserFactory().pk)

    def titles(query: str) -> set[str]:
        html = browser.get(f"/admin/events/event/{query}").content.decode()
        return {t for t in ("Full one", "Half one", "Past one") if f">{t}</a>" in html}

    html = browser.get("/admin/events/event/").content.decode()
    assert ">100%</td>" in html.replace("</span>", "") and ">50%</td>" in html.replace("</span>", "")
    assert '<td class="field-seats_left">0</td>' in html
    assert titles("?when=upcoming") == {"Full one", "Half one"}
    assert titles("?when=past") == {"Past one"}
    assert titles("?seats=full") == {"Full one"}
    assert titles("?seats=available") == {"Half one", "Past one"}
    assert titles("?seats=waitlist") == {"Full one"}
    assert titles("?q=half") == {"Half one"}
    assert '<nav class="toplinks">' in html and "date__year=" in html  # the date hierarchy is kept
    # Sorting by fill: the column's own order (ascending), from the database.
    ordered = browser.get("/admin/events/event/?o=8").content.decode()
    assert ordered.index(">Past one<") < ordered.index(">Half one<") < ordered.index(">Full one<")


# --- Accounts ---------------------------------------------------------------------------------------


def test_participants_and_administrators_are_separate_entries(browser):
    ann = UserFactory(full_name="Ann Participant")
    boss = AdminFactory(full_name="Boss Administrator")
    index = browser.get("/admin/").content.decode()
    assert 'href="/admin/participants/participant/"' in index
    assert 'href="/admin/participants/administrator/"' in index
    assert 'href="/admin/participants/user/"' not in index

    participants = browser.get("/admin/participants/participant/").content.decode()
    assert "Ann Participant" in participants and "Boss Administrator" not in participants
    administrators = browser.get("/admin/participants/administrator/").content.decode()
    assert "Boss Administrator" in administrators and "Ann Participant" not in administrators
    assert browser.get(f"/admin/participants/participant/{boss.pk}/change/").status_code == 302  # not one

    # Links to the accounts' common pages lead to the right one.
    response = browser.get(f"/admin/participants/user/{ann.pk}/change/")
    assert response["Location"] == f"/admin/participants/participant/{ann.pk}/change/"
    response = browser.get(f"/admin/participants/user/{boss.pk}/change/")
    assert response["Location"] == f"/admin/participants/administrator/{boss.pk}/change/"


def test_an_administrator_added_in_the_admin_is_one(browser):
    form = {
        "email": "new.boss@example.com",
        "full_name": "New Boss",
        "phone": "",
        "password1": "A-l0ng-enough-passw0rd",
        "password2": "A-l0ng-enough-passw0rd",
        "usable_password": "true",
    }
    response = browser.post("/admin/participants/administrator/add/", {**form, "is_superuser": "on"})
    assert response.status_code == 302, response.content.decode()[:3000]
    boss = User.objects.get(email="new.boss@example.com")
    assert boss.is_staff and boss.is_superuser
    response = browser.post("/admin/participants/participant/add/", {**form, "email": "new.one@example.com"})
    assert response.status_code == 302, response.content.decode()[:3000]
    assert not User.objects.get(email="new.one@example.com").is_staff


def test_a_participants_page_lists_enrollments_waiting_list_places_and_notifications(browser):
    ann = UserFactory(full_name="Ann Lee")
    talk = EventFactory(title="Talk", capacity=5)
    busy = EventFactory(title="Busy", capacity=1)
    services.enroll(event_id=talk.pk, participant_id=ann.pk)
    services.enroll(event_id=busy.pk, participant_id=UserFactory().pk)
    services.join_waitlist(event_id=busy.pk, participant_id=UserFactory().pk)
    services.join_waitlist(event_id=busy.pk, participant_id=ann.pk)
    NotificationFactory(user=ann, kind="waitlisted", subject="On the list")

    html = browser.get(f"/admin/participants/participant/{ann.pk}/change/").content.decode()
    enrollments = html[html.index('id="enrollments-group"') : html.index('id="waitlist_entries-group"')]
    assert f'href="/admin/events/event/{talk.pk}/change/"' in enrollments and "Busy" not in enrollments
    waiting = html[html.index('id="waitlist_entries-group"') : html.index('id="notifications-group"')]
    assert f'href="/admin/events/event/{busy.pk}/change/"' in waiting
    assert re.search(r'<td class="field-position">\s*<p>2</p>', waiting)  # second on that list
    notes = html[html.index('id="notifications-group"') :]
    assert "On the list" in notes
    # Read-only: nothing to add, change or delete from this page.
    for prefix in ("enrollments", "waitlist_entries", "notifications"):
        assert f'name="{prefix}-MAX_NUM_FORMS" value="0"' in html  # no row can be added
        assert f'name="{prefix}-0-DELETE"' not in html
    assert f"{ann.pk} @ {talk.pk}" not in html

    # Saving the page (its profile) leaves the lists alone.
    form = {
        "email": ann.email,
        "full_name": "Ann Lee-Smith",
        "phone": "",
        "is_active": "on",
        "enrollments-TOTAL_FORMS": "1",
        "enrollments-INITIAL_FORMS": "1",
        "waitlist_entries-TOTAL_FORMS": "1",
        "waitlist_entries-INITIAL_FORMS": "1",
        "notifications-TOTAL_FORMS": "1",
        "notifications-INITIAL_FORMS": "1",
    }
    response = browser.post(f"/admin/participants/participant/{ann.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    ann.refresh_from_db()
    assert ann.full_name == "Ann Lee-Smith"
    assert ann.enrollments.count() == 1 and ann.waitlist_entries.count() == 1


def test_the_participant_picker_offers_participants_only(browser):
    event = EventFactory()
    UserFactory(full_name="Pat Picker")
    AdminFactory(full_name="Pat Boss")
    response = browser.get(
        "/admin/autocomplete/",
        {"term": "Pat", "app_label": "events", "model_name": "enrollment", "field_name": "participant"},
    )
    assert response.status_code == 200
    assert [r["text"] for r in response.json()["results"]] == [
        f"Pat Picker <{User.objects.get(full_name='Pat Picker').email}>"
    ]
    assert event.pk


# --- The event page's inlines and messages -------------------------------------------------------------


def test_enrollment_rows_read_as_people_and_the_add_row_speaks_plainly(browser):
    import html as html_lib

    event = EventFactory(capacity=3)
    ann = UserFactory(full_name="Ann Lee", email="ann@example.com")
    services.enroll(event_id=event.pk, participant_id=ann.pk)
    page = browser.get(f"/admin/events/event/{event.pk}/change/").content.decode()
    enrolled = page[page.index('id="enrollments-group"') : page.index('id="enrollments-2-group"')]
    assert (
        f'<a href="/admin/participants/participant/{ann.pk}/change/">Ann Lee &lt;ann@example.com&gt;</a>'
        in enrolled
    )
    assert "Enrolled at" in enrolled
    assert f"{ann.pk} @ {event.pk}" not in page
    texts = [html_lib.unescape(chunk) for chunk in page.split('data-inline-formset="')[1:]]
    assert any('"addText": "Enroll another participant"' in t for t in texts)
    assert any('"addText": "Put a participant on the waiting list"' in t for t in texts)
    assert "Add another New enrollment" not in html_lib.unescape(page)
    picker = page[page.index('id="enrollments-2-group"') : page.index('id="waitlist-group"')]
    assert 'class="related-widget-wrapper-link add-related"' in picker  # a new participant: yes
    assert "change-related" not in picker and "view-related" not in picker


def test_the_report_action_links_to_the_reports(browser):
    event = EventFactory()
    response = browser.post(
        "/admin/events/event/", {"action": "generate_report", "_selected_action": [event.pk]}, follow=True
    )
    html = response.content.decode()
    assert '1 report(s) requested; see <a href="/admin/reports/report/">Reports</a>.' in html


def test_the_pickers_plus_adds_a_participant_in_a_popup(browser):
    """The "+" beside the participant picker opens the accounts' add page (hidden from the index)."""
    page = browser.get("/admin/participants/user/add/", {"_to_field": "id", "_popup": "1"})
    assert page.status_code == 200
    assert 'name="_popup"' in page.content.decode()
    response = browser.post(
        "/admin/participants/user/add/?_to_field=id&_popup=1",
        {
            "_popup": "1",
            "_to_field": "id",
            "email": "walk.in@example.com",
            "full_name": "Walk In",
            "phone": "",
            "password1": "A-l0ng-enough-passw0rd",
            "password2": "A-l0ng-enough-passw0rd",
            "usable_password": "true",
        },
    )
    assert response.status_code == 200, response.content.decode()[:2000]
    assert "popup_response" in response.content.decode()  # the page that closes the popup
    assert not User.objects.get(email="walk.in@example.com").is_staff


def test_the_admin_tells_each_participant_added_to_the_waiting_list_their_place_or_why_not(browser):
    event = EventFactory(capacity=1)
    services.enroll(event_id=event.pk, participant_id=UserFactory().pk)
    waiting = UserFactory(full_name="Already Waiting")
    services.join_waitlist(event_id=event.pk, participant_id=waiting.pk)
    newcomer = UserFactory(full_name="New Waiter")
    response = browser.post(
        f"/admin/events/event/{event.pk}/change/", change_form(event, wait=[newcomer, waiting]), follow=True
    )
    said = [str(m) for m in response.context["messages"]]
    assert [m for m in said if m.startswith("New Waiter") and m.endswith("at position 2.")]
    assert [m for m in said if m.startswith("Already Waiting") and "was not put on the waiting list: " in m]
    places = WaitlistEntry.objects.filter(event=event).order_by("id")
    assert list(places.values_list("participant_id", flat=True)) == [waiting.pk, newcomer.pk]


def test_an_event_page_with_hundreds_of_people_saves(browser, settings):
    """Its lists posted fields for every person: Django's 1,000 refused to save an event of about
    500. A page of each list posts well under that bound, whatever the event's size."""
    event = EventFactory(title="All hands", capacity=520)
    for user in UserFactory.create_batch(520):
        EnrollmentFactory(event=event, participant=user)
    for user in UserFactory.create_batch(30):
        WaitlistEntryFactory(event=event, participant=user)
    form = form_as_posted(browser.get(f"/admin/events/event/{event.pk}/change/").content.decode())
    assert len(form) < settings.DATA_UPLOAD_MAX_NUMBER_FIELDS / 2
    form["title"] = "All hands, renamed"
    response = browser.post(f"/admin/events/event/{event.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    event.refresh_from_db()
    assert (event.title, event.enrolled_count, event.waitlist_count) == ("All hands, renamed", 520, 30)


def test_deactivated_participants_are_neither_offered_nor_enrolled(browser, admin_api):
    event = EventFactory(capacity=5)
    gone = UserFactory(full_name="Gone Person", is_active=False)
    picker = browser.get(
        "/admin/autocomplete/",
        {"app_label": "events", "model_name": "enrollment", "field_name": "participant", "term": "Gone"},
    ).json()
    assert picker["results"] == []
    response = browser.post(f"/admin/events/event/{event.pk}/change/", change_form(event, enroll=[gone]))
    assert response.status_code == 200  # the form again, with the error
    for route in ("enrollments", "waitlist"):
        answer = admin_api.post(f"/api/v1/events/{event.pk}/{route}/", {"participant": gone.pk})
        assert "participant" in answer.json()["errors"]
    assert not Enrollment.objects.exists() and not WaitlistEntry.objects.exists()


def test_a_nul_in_the_participant_picker_is_a_bad_request(browser):
    """Like a NUL anywhere in the admin's parameters (tests/integration/test_admin_bad_input.py)."""
    UserFactory(full_name="Ann")
    picker = browser.get(
        "/admin/autocomplete/",
        {"app_label": "events", "model_name": "enrollment", "field_name": "participant", "term": "A\x00"},
    )
    assert picker.status_code == 400


def test_an_administrator_made_a_participant_again_is_no_superuser_any_more():
    boss = AdminFactory()
    assert boss.is_superuser
    boss.is_staff = False
    boss.save()
    boss.refresh_from_db()
    assert not boss.is_superuser
    boss = AdminFactory()
    boss.is_staff = False
    boss.save(update_fields=["is_staff"])
    boss.refresh_from_db()
    assert not boss.is_superuser


def test_the_csv_neutralises_a_formula_in_an_address_too(browser):
    event = EventFactory()
    services.enroll(event_id=event.pk, participant_id=UserFactory(email="=cmd|x@example.com").pk)
    response = browser.post(
        "/admin/events/event/", {"action": "export_participants_csv", "_selected_action": [event.pk]}
    )
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[1][5] == "'=cmd|x@example.com"


def staff_with(*permissions):
    """A staff account (not a superuser) holding only these permissions ("app.codename")."""
    from django.contrib.auth.models import Permission

    user = AdminFactory(is_superuser=False)
    for permission in permissions:
        app_label, codename = permission.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    client = Client()
    client.force_login(user)
    return client


def test_what_a_staff_account_may_do_follows_its_permissions():
    event = EventFactory()
    services.enroll(event_id=event.pk, participant_id=UserFactory().pk)
    viewer = staff_with("events.view_event", "notifications.view_notification")
    page = viewer.get("/admin/events/event/").content.decode()
    # Only seeing events does not let one export the participants' addresses or have them e-mailed.
    assert "export_participants_csv" not in page and "generate_report" not in page
    response = viewer.post(
        "/admin/events/event/", {"action": "export_participants_csv", "_selected_action": [event.pk]}
    )
    assert "text/csv" not in response.get("Content-Type", "")
    assert "send_again" not in viewer.get("/admin/notifications/notification/").content.decode()

    entitled = staff_with("events.view_event", "participants.view_participant", "reports.add_report")
    page = entitled.get("/admin/events/event/").content.decode()
    assert "export_participants_csv" in page and "generate_report" in page

    # A staff account without the right to see accounts learns nothing about an id.
    nobody = staff_with()
    assert nobody.get(f"/admin/participants/user/{UserFactory().pk}/change/").status_code == 403


def test_a_notifications_page_does_not_show_the_check_in_code(browser, participant_api):
    event = EventFactory()
    assert participant_api.post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201
    notification = Notification.objects.get(kind="enrollment_confirmed")
    code = notification.checkin_code
    assert code and code[:4] in notification.body  # the e-mail itself carries it
    page = browser.get(f"/admin/notifications/notification/{notification.pk}/change/").content.decode()
    assert notification.subject in page and "[check-in code]" in page
    assert code not in page and code[:4] + "-" + code[4:8] not in page


def test_deleting_an_event_with_a_long_waiting_list_asks_in_a_few_queries(browser):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    event = EventFactory(capacity=1)
    EnrollmentFactory(event=event)
    for user in UserFactory.create_batch(60):
        WaitlistEntryFactory(event=event, participant=user)
    with CaptureQueriesContext(connection) as queries:
        page = browser.get(f"/admin/events/event/{event.pk}/delete/")
    assert page.status_code == 200
    assert len(queries) < 30  # not one per place


# --- An event's long lists, a page at a time ----------------------------------------------------


def crowded_event(*, enrolled: int, waiting: int) -> tuple[Event, list[User], list[User]]:
    """A full event of `enrolled` seats with `waiting` more on its waiting list, each list in the
    order its people came (names numbered in that order)."""
    event = EventFactory(capacity=enrolled)
    people = [UserFactory(full_name=f"Crowd {i:03d}") for i in range(enrolled + waiting)]
    for person in people[:enrolled]:
        EnrollmentFactory(event=event, participant=person)
    for person in people[enrolled:]:
        WaitlistEntryFactory(event=event, participant=person)
    return event, people[:enrolled], people[enrolled:]


def shown_names(page: str, prefix: str) -> list[str]:
    group = page[page.index(f'id="{prefix}-group"') :]
    group = group[: group.index("</table>")]
    return re.findall(r"(Crowd \d{3})", group)


def test_an_events_long_lists_are_shown_a_page_at_a_time(browser):
    """An event of 5,000 seats and 4,500 waiting made a page of 11 MB, 10 s to build."""
    event, seated, waiting = crowded_event(enrolled=230, waiting=120)
    url = f"/admin/events/event/{event.pk}/change/"
    first = browser.get(url).content.decode()
    assert shown_names(first, "enrollments") == [p.full_name for p in seated[:100]]
    assert shown_names(first, "waitlist") == [p.full_name for p in waiting[:100]]
    assert 'name="enrollments-INITIAL_FORMS" value="100"' in first
    assert "1–100 of 230" in first and 'href="?enrolled=2#enrollments-group"' in first
    assert "1–100 of 120" in first and 'href="?waiting=2#waitlist-group"' in first

    last = browser.get(url, {"enrolled": "3", "waiting": "2"}).content.decode()
    assert shown_names(last, "enrollments") == [p.full_name for p in seated[200:]]
    assert "201–230 of 230" in last and 'href="?enrolled=2&amp;waiting=2#enrollments-group"' in last
    assert shown_names(last, "waitlist") == [p.full_name for p in waiting[100:]]
    assert re.search(r'field-position">\s*<p>101</p>', last)  # positions run on across pages
    # Not a page number: the first page; past the end: the last.
    assert (
        shown_names(browser.get(url, {"enrolled": "abc"}).content.decode(), "enrollments")[0] == "Crowd 000"
    )
    assert (
        shown_names(browser.get(url, {"enrolled": "99"}).content.decode(), "enrollments")[-1] == "Crowd 229"
    )


def test_a_short_list_has_no_pager(browser):
    event, _, _ = crowded_event(enrolled=3, waiting=2)
    page = browser.get(f"/admin/events/event/{event.pk}/change/").content.decode()
    assert "paginator" not in page and "?enrolled=" not in page


def test_removing_someone_on_a_later_page_frees_that_seat_for_the_first_waiting(browser):
    event, seated, waiting = crowded_event(enrolled=150, waiting=3)
    url = f"/admin/events/event/{event.pk}/change/?enrolled=2"
    page = browser.get(url).content.decode()
    form = form_as_posted(page)
    assert form["enrollments-INITIAL_FORMS"] == "50"
    form["enrollments-0-DELETE"] = "on"  # the first of this page: the 101st seated
    response = browser.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    seated_now = set(Enrollment.objects.filter(event=event).values_list("participant_id", flat=True))
    assert seated[100].pk not in seated_now and waiting[0].pk in seated_now
    assert len(seated_now) == 150
    event.refresh_from_db()
    assert (event.enrolled_count, event.waitlist_count) == (150, 2)


def test_a_save_acts_on_the_rows_the_form_showed_though_the_list_moved_meanwhile(browser):
    """Its page counted again held other rows (the head of the waiting list had been promoted),
    and the removal ticked on the form was skipped without a word."""
    event, seated, waiting = crowded_event(enrolled=3, waiting=120)
    url = f"/admin/events/event/{event.pk}/change/?waiting=2"
    form = form_as_posted(browser.get(url).content.decode())
    place_101 = WaitlistEntry.objects.get(event=event, participant=waiting[100])
    assert form["waitlist-0-id"] == str(place_101.pk)  # this page's first
    form["waitlist-0-DELETE"] = "on"
    services.leave_waitlist(event_id=event.pk, participant_id=waiting[0].pk)  # 101 is now 100
    response = browser.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    still_waiting = set(WaitlistEntry.objects.filter(event=event).values_list("participant_id", flat=True))
    assert waiting[100].pk not in still_waiting and len(still_waiting) == 118


def test_a_save_naming_a_row_gone_meanwhile_says_to_reload(browser):
    """Django's own answer was "Please correct the error below" over a list without an error: the
    gone row's error sits on its hidden id."""
    event, seated, _ = crowded_event(enrolled=3, waiting=2)
    url = f"/admin/events/event/{event.pk}/change/"
    form = form_as_posted(browser.get(url).content.decode())
    form["title"] = "Renamed"
    services.cancel_enrollment(event_id=event.pk, participant_id=seated[0].pk)  # its row is gone
    response = browser.post(url, form)
    assert response.status_code == 200
    page = response.content.decode()
    assert "changed or left the list while this page was open" in page
    event.refresh_from_db()
    assert event.title != "Renamed"  # nothing half-saved
    # The page shown again holds every row the form showed, each in its place: Django's admin
    # paired rows and forms by position, so the gone row's form showed the next row's person and
    # the last form fell off the page.
    shown_again = form_as_posted(page)
    ids = [f"enrollments-{i}-id" for i in range(3)]
    assert [shown_again[name] for name in ids] == [form[name] for name in ids]
    table = page[page.index('id="enrollments-group"') :]
    # Before each row: its errors, if any (the first piece: the table's head, then the first's).
    before_rows, *rows = table[table.index("<tbody>") : table.index("</table>")].split('class="form-row')
    assert "This row left the list while the page was open." in before_rows
    assert "Crowd 000" not in rows[0] and "Crowd 001" in rows[1] and "Crowd 002" in rows[2]
    assert not any("left the list" in row for row in rows)
    assert all(row.startswith(" has_original") for row in rows[:3])  # no new row to take away


def test_a_row_gone_meanwhile_that_was_ticked_for_removal_is_no_reason_to_reload(browser):
    event, seated, _ = crowded_event(enrolled=3, waiting=0)
    url = f"/admin/events/event/{event.pk}/change/"
    form = form_as_posted(browser.get(url).content.decode())
    form["title"] = "Renamed"
    form["enrollments-0-DELETE"] = form["enrollments-1-DELETE"] = "on"
    services.cancel_enrollment(event_id=event.pk, participant_id=seated[0].pk)  # its row is gone
    response = browser.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    event.refresh_from_db()
    assert event.title == "Renamed"
    seated_now = set(Enrollment.objects.filter(event=event).values_list("participant_id", flat=True))
    assert seated_now == {seated[2].pk}


def test_a_participants_long_lists_are_paged_too(browser):
    person = UserFactory()
    NotificationFactory.create_batch(120, user=person)
    url = f"/admin/participants/participant/{person.pk}/change/"
    page = browser.get(url).content.decode()
    assert "1–100 of 120" in page and 'href="?notifications=2#notifications-group"' in page
    assert "101–120 of 120" in browser.get(url, {"notifications": "2"}).content.decode()


# --- One save that frees a seat and changes the waiting list -----------------------------------


def seated_ids(event):
    return set(Enrollment.objects.filter(event=event).values_list("participant_id", flat=True))


@pytest.mark.parametrize("frees_a_seat", ["removal", "capacity"])
def test_a_seat_freed_in_the_same_save_skips_whoever_the_admin_takes_off_the_list(browser, frees_a_seat):
    # Django saves the event, then the inlines in order: the seat went to the head of the list
    # before the same save took them off it (who was then enrolled, and told so).
    event, seated, (first, second) = crowded_event(enrolled=2, waiting=2)
    url = f"/admin/events/event/{event.pk}/change/"
    form = form_as_posted(browser.get(url).content.decode())
    form["waitlist-0-DELETE"] = "on"  # the first on the list
    if frees_a_seat == "removal":
        form["enrollments-0-DELETE"] = "on"
    else:
        form["capacity"] = "3"
    response = browser.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    kept = set(p.pk for p in seated[1:]) if frees_a_seat == "removal" else {p.pk for p in seated}
    assert seated_ids(event) == kept | {second.pk}
    assert not WaitlistEntry.objects.filter(event=event).exists()
    assert not Notification.objects.filter(user=first, kind="waitlist_promoted").exists()
    event.refresh_from_db()
    assert (event.enrolled_count, event.waitlist_count) == (len(kept) + 1, 0)


def test_seats_freed_in_the_same_save_can_be_given_by_hand(browser):
    # The one waiting is taken off the list and the capacity raised by one: the new seat is free
    # for the participant the admin adds in the same save.
    event, seated, (waiting,) = crowded_event(enrolled=2, waiting=1)
    url = f"/admin/events/event/{event.pk}/change/"
    form = form_as_posted(browser.get(url).content.decode())
    added = UserFactory()
    form.update({"capacity": "3", "waitlist-0-DELETE": "on", "enrollments-2-0-participant": str(added.pk)})
    response = browser.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert seated_ids(event) == {seated[0].pk, seated[1].pk, added.pk}
    assert not WaitlistEntry.objects.filter(event=event).exists()


def test_a_seat_taken_between_the_forms_check_and_the_save_saves_nothing(browser, monkeypatch):
    # The form checks the lowered capacity against the seats it read; the service checks again
    # under the event's lock. A seat taken in between: the page's transaction rolls back, and the
    # admin is told, instead of an error page.
    event, seated, _ = crowded_event(enrolled=2, waiting=0)
    event.capacity = 3
    event.save()
    seated_event_title = event.title
    url = f"/admin/events/event/{event.pk}/change/"
    form = form_as_posted(browser.get(url).content.decode())
    form.update({"capacity": "2", "title": "Renamed"})
    real_update = services.update_event

    def a_seat_taken_first(**fields):
        EnrollmentFactory(event_id=fields["event_id"])  # (the factory keeps the count exact)
        Event.objects.filter(pk=fields["event_id"]).update(enrolled_count=3)
        return real_update(**fields)

    monkeypatch.setattr(services, "update_event", a_seat_taken_first)
    response = browser.post(url, form, follow=True)
    assert response.status_code == 200
    assert "Nothing was saved: Capacity cannot be lower than the 3 participants" in response.content.decode()
    event.refresh_from_db()
    assert (event.capacity, event.title) == (3, seated_event_title)


def test_the_enroll_rows_count_the_waiting_list_when_the_capacity_is_raised(browser):
    event, seated, waiting = crowded_event(enrolled=2, waiting=1)
    url = f"/admin/events/event/{event.pk}/change/"
    form = form_as_posted(browser.get(url).content.decode())
    form.update({"capacity": "3", "enrollments-2-0-participant": str(UserFactory().pk)})
    response = browser.post(url, form)
    assert response.status_code == 200  # the form again, with the reason
    assert "1 participant(s) to enroll, but only 0 seat(s) left." in response.content.decode()
    assert Event.objects.get(pk=event.pk).capacity == 2


def test_a_tampered_row_id_out_of_range_is_no_error_page(browser):
    event, seated, _ = crowded_event(enrolled=1, waiting=0)
    url = f"/admin/events/event/{event.pk}/change/"
    form = form_as_posted(browser.get(url).content.decode())
    form["enrollments-0-id"] = "99999999999999999999"
    response = browser.post(url, form)
    assert response.status_code == 200
    assert "reload the page" in response.content.decode()
    assert seated_ids(event) == {seated[0].pk}


def test_bulk_actions_go_on_past_rows_gone_meanwhile(browser, monkeypatch):
    from participants import services as participant_services
    from reports import services as report_services

    events = EventFactory.create_batch(2)
    gone, kept = UserFactory.create_batch(2)
    # A report asked for an event deleted meanwhile: skipped, and counted out of the message.
    real_request = report_services.request_report

    def first_deleted(**kwargs):
        if kwargs["event_id"] == events[0].pk:
            services.delete_event(event_id=events[0].pk)
        return real_request(**kwargs)

    monkeypatch.setattr(report_services, "request_report", first_deleted)
    response = browser.post(
        "/admin/events/event/",
        {"action": "generate_report", "_selected_action": [str(e.pk) for e in events]},
        follow=True,
    )
    assert response.status_code == 200
    assert "1 report(s) requested" in response.content.decode()

    # Participants deleted in bulk, one of them gone meanwhile: the others are deleted.
    real_delete = participant_services.delete_participant

    def gone_first(*, participant_id):
        if participant_id == gone.pk:
            User.objects.filter(pk=gone.pk).delete()
        return real_delete(participant_id=participant_id)

    monkeypatch.setattr(participant_services, "delete_participant", gone_first)
    response = browser.post(
        "/admin/participants/participant/",
        {"action": "delete_selected", "_selected_action": [str(gone.pk), str(kept.pk)], "post": "yes"},
        follow=True,
    )
    assert response.status_code == 200
    assert not User.objects.filter(pk__in=[gone.pk, kept.pk]).exists()
