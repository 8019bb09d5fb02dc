"""The Django admin goes through the same services as the API."""

import csv
import io

import pytest
from django.test import Client

from events import services
from events.models import Event, WaitlistEntry
from notifications.models import Notification
from participants.models import User
from tests.factories import PASSWORD, AdminFactory, EventFactory, UserFactory

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
