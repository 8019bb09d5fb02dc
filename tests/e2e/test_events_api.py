"""Events and enrollment through HTTP: the admin's and the participant's view."""

import datetime as dt

import pytest
from django.utils import timezone

from events.models import Enrollment, Event
from tests.factories import EnrollmentFactory, EventFactory, UserFactory
from tests.helpers import assert_problem, client_for

# Real commits: cache invalidation and other side effects run after commit, as in production.
pytestmark = pytest.mark.django_db(transaction=True)

EVENTS = "/api/v1/events/"


def future(days=30):
    return (timezone.localdate() + dt.timedelta(days=days)).isoformat()


def new_event(**over):
    body = {
        "title": "Quarterly all-hands",
        "description": "Numbers and plans",
        "date": future(),
        "time": "10:30",
        "location": "Auditorium A",
        "capacity": 2,
    }
    body.update(over)
    return body


def test_admin_creates_participant_enrolls_and_cancels(admin_api, participant_api):
    created = admin_api.post(EVENTS, new_event(capacity=2))
    assert created.status_code == 201, created.content
    event = created.json()
    assert (event["enrolled_count"], event["seats_left"], event["time"]) == (0, 2, "10:30:00")

    listed = participant_api.get(EVENTS).json()
    assert listed["count"] == 1
    assert listed["results"][0]["id"] == event["id"]

    enrolled = participant_api.post(f"{EVENTS}{event['id']}/enrollments/")
    assert enrolled.status_code == 201
    assert set(enrolled.json()) == {"id", "event", "participant", "created_at"}
    assert participant_api.get(f"{EVENTS}{event['id']}/").json()["seats_left"] == 1
    assert participant_api.get(EVENTS).json()["results"][0]["seats_left"] == 1

    mine = participant_api.get("/api/v1/me/enrollments/").json()
    assert [e["event"]["id"] for e in mine["results"]] == [event["id"]]

    assert participant_api.delete(f"{EVENTS}{event['id']}/enrollments/me/").status_code == 204
    assert participant_api.get(f"{EVENTS}{event['id']}/").json()["seats_left"] == 2
    assert participant_api.get("/api/v1/me/enrollments/").json()["count"] == 0


def test_full_duplicate_and_closed_enrollments_are_409(participant_api, participant):
    event = EventFactory(capacity=1)
    url = f"{EVENTS}{event.pk}/enrollments/"
    assert participant_api.post(url).status_code == 201
    assert_problem(participant_api.post(url), 409, "already_enrolled")
    assert_problem(client_for(UserFactory()).post(url), 409, "event_full")

    started = EventFactory(date=timezone.localdate() - dt.timedelta(days=1))
    assert_problem(participant_api.post(f"{EVENTS}{started.pk}/enrollments/"), 409, "event_closed")
    event.refresh_from_db()
    assert event.enrolled_count == Enrollment.objects.filter(event=event).count() == 1


def test_cancel_when_not_enrolled_or_after_start(participant_api, participant):
    event = EventFactory()
    assert_problem(participant_api.delete(f"{EVENTS}{event.pk}/enrollments/me/"), 404, "not_found")
    assert_problem(participant_api.delete(f"{EVENTS}999999/enrollments/me/"), 404, "not_found")
    assert participant_api.post(f"{EVENTS}{event.pk}/enrollments/").status_code == 201
    Event.objects.filter(pk=event.pk).update(date=timezone.localdate() - dt.timedelta(days=1))
    assert_problem(participant_api.delete(f"{EVENTS}{event.pk}/enrollments/me/"), 409, "event_closed")
    assert Enrollment.objects.filter(event=event, participant=participant).exists()  # still enrolled


def test_admin_enrolls_lists_and_removes_participants(admin_api):
    event = EventFactory(capacity=3)
    first, second = UserFactory(), UserFactory()
    url = f"{EVENTS}{event.pk}/enrollments/"
    assert admin_api.post(url, {"participant": first.pk}).status_code == 201
    assert admin_api.post(url, {"participant": second.pk}).status_code == 201

    listed = admin_api.get(f"{EVENTS}{event.pk}/participants/").json()
    assert [p["id"] for p in listed["results"]] == [first.pk, second.pk]
    assert set(listed["results"][0]) == {"id", "email", "full_name", "enrolled_at", "checked_in_at"}

    assert admin_api.delete(f"{EVENTS}{event.pk}/participants/{first.pk}/").status_code == 204
    assert_problem(admin_api.delete(f"{EVENTS}{event.pk}/participants/{first.pk}/"), 404, "not_found")
    event.refresh_from_db()
    assert event.enrolled_count == 1
    events_of_second = admin_api.get(f"/api/v1/participants/{second.pk}/events/").json()
    assert [e["id"] for e in events_of_second["results"]] == [event.pk]


def test_admin_enroll_bad_participant_ids(admin_api, admin):
    event = EventFactory()
    url = f"{EVENTS}{event.pk}/enrollments/"
    for payload in ({}, {"participant": 999999}, {"participant": "abc"}, {"participant": admin.pk}):
        body = assert_problem(admin_api.post(url, payload), 400, "validation_error")
        assert "participant" in body["errors"], payload
    assert_problem(admin_api.post(url, {"participant": UserFactory().pk, "seat": 4}), 400, "validation_error")
    assert not Enrollment.objects.exists()


def test_participant_cannot_enroll_someone_else(participant_api, participant):
    event = EventFactory()
    other = UserFactory()
    url = f"{EVENTS}{event.pk}/enrollments/"
    assert_problem(participant_api.post(url, {"participant": other.pk}), 403, "permission_denied")
    assert not Enrollment.objects.exists()
    assert participant_api.post(url, {"participant": participant.pk}).status_code == 201


def test_enroll_unknown_event(participant_api):
    assert_problem(participant_api.post(f"{EVENTS}424242/enrollments/"), 404, "not_found")
    assert_problem(participant_api.post(f"{EVENTS}abc/enrollments/"), 404, "not_found")


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"capacity": 0}, "capacity"),
        ({"capacity": -5}, "capacity"),
        ({"capacity": "many"}, "capacity"),
        ({"capacity": 10**12}, "capacity"),
        ({"date": "2027-02-30"}, "date"),
        ({"date": "tomorrow"}, "date"),
        ({"time": "25:00"}, "time"),
        ({"time": "10:61"}, "time"),
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"location": ""}, "location"),
        ({"seats": 3}, "seats"),
    ],
)
def test_create_event_bad_input_writes_nothing(admin_api, override, field):
    body = assert_problem(admin_api.post(EVENTS, new_event(**override)), 400, "validation_error")
    assert field in body["errors"], body
    assert not Event.objects.exists()


@pytest.mark.parametrize("missing", ["title", "date", "time", "location", "capacity"])
def test_create_event_required_fields(admin_api, missing):
    payload = new_event()
    del payload[missing]
    body = assert_problem(admin_api.post(EVENTS, payload), 400, "validation_error")
    assert missing in body["errors"]


def test_capacity_cannot_go_below_enrolled(admin_api):
    event = EventFactory(capacity=3)
    EnrollmentFactory.create_batch(2, event=event)
    body = assert_problem(admin_api.patch(f"{EVENTS}{event.pk}/", {"capacity": 1}), 400, "validation_error")
    assert "capacity" in body["errors"]
    event.refresh_from_db()
    assert event.capacity == 3
    response = admin_api.patch(f"{EVENTS}{event.pk}/", {"capacity": 2})
    assert (response.status_code, response.json()["seats_left"]) == (200, 0)


def test_put_round_trips_a_read_object(admin_api):
    event = admin_api.post(EVENTS, new_event()).json()
    event["title"] = "Renamed"
    response = admin_api.put(f"{EVENTS}{event['id']}/", event)
    assert response.status_code == 200, response.content
    assert Event.objects.get().title == "Renamed"


def test_participant_cannot_write_events(participant_api):
    event = EventFactory()
    assert_problem(participant_api.post(EVENTS, new_event()), 403, "permission_denied")
    assert_problem(participant_api.patch(f"{EVENTS}{event.pk}/", {"title": "Mine"}), 403, "permission_denied")
    assert_problem(participant_api.delete(f"{EVENTS}{event.pk}/"), 403, "permission_denied")
    event.refresh_from_db()
    assert event.title != "Mine"
    assert Event.objects.count() == 1


def test_delete_event_and_unknown_ids(admin_api):
    event = EventFactory()
    assert admin_api.delete(f"{EVENTS}{event.pk}/").status_code == 204
    assert_problem(admin_api.get(f"{EVENTS}{event.pk}/"), 404, "not_found")
    assert_problem(admin_api.delete(f"{EVENTS}{event.pk}/"), 404, "not_found")
    assert_problem(admin_api.patch(f"{EVENTS}999999999999999999999/", {"title": "x"}), 404, "not_found")


def test_filters_search_and_ordering(participant_api):
    today = timezone.localdate()
    a = EventFactory(title="Python meetup", date=today + dt.timedelta(days=3), location="Room 1")
    b = EventFactory(
        title="Board games", date=today + dt.timedelta(days=1), description="Bring python snacks"
    )
    c = EventFactory(title="Yoga", date=today + dt.timedelta(days=10), location="Roof")

    def ids(query):
        response = participant_api.get(EVENTS + query)
        assert response.status_code == 200, response.content
        return [e["id"] for e in response.json()["results"]]

    assert ids("") == [b.pk, a.pk, c.pk]
    assert ids("?search=PYTHON") == [b.pk, a.pk]
    assert ids("?search=roof") == [c.pk]
    assert ids(f"?date_from={(today + dt.timedelta(days=2)).isoformat()}") == [a.pk, c.pk]
    assert ids(f"?date_to={(today + dt.timedelta(days=3)).isoformat()}") == [b.pk, a.pk]
    assert ids("?ordering=-date") == [c.pk, a.pk, b.pk]
    assert ids("?ordering=title") == [b.pk, a.pk, c.pk]
    assert ids("?ordering=-title") == [c.pk, a.pk, b.pk]
    body = assert_problem(participant_api.get(EVENTS + "?date_from=nope"), 400, "validation_error")
    assert "date_from" in body["errors"]
    assert_problem(participant_api.get(EVENTS + "?ordering=location"), 400, "validation_error")


def test_same_day_events_order_by_start_time(participant_api):
    day = timezone.localdate() + dt.timedelta(days=5)
    late = EventFactory(date=day, time=dt.time(15, 0))
    early = EventFactory(date=day, time=dt.time(9, 0))
    results = participant_api.get(EVENTS).json()["results"]
    assert [e["id"] for e in results] == [early.pk, late.pk]


def test_pagination(participant_api):
    EventFactory.create_batch(25)
    first = participant_api.get(EVENTS).json()
    assert (first["count"], len(first["results"]), first["previous"]) == (25, 20, None)
    assert "page=2" in first["next"]
    second = participant_api.get(EVENTS + "?page=2").json()
    assert len(second["results"]) == 5 and second["next"] is None
    assert len(participant_api.get(EVENTS + "?page_size=500").json()["results"]) == 25
    assert len(participant_api.get(EVENTS + "?page_size=7").json()["results"]) == 7
    assert_problem(participant_api.get(EVENTS + "?page=99"), 404, "not_found")
