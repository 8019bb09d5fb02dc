"""Participant management by admins."""

import pytest

from events.models import Enrollment, Event
from participants.models import User
from tests.factories import PASSWORD, EnrollmentFactory, EventFactory, UserFactory
from tests.helpers import assert_problem, client_for

pytestmark = pytest.mark.django_db(transaction=True)

PARTICIPANTS = "/api/v1/participants/"


def test_admin_creates_reads_updates_and_lists(admin_api, admin):
    created = admin_api.post(
        PARTICIPANTS, {"email": "Bo@Example.com", "password": PASSWORD, "full_name": "Bo", "phone": "+44 1"}
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert set(body) == {"id", "email", "full_name", "phone", "created_at"}
    assert body["email"] == "bo@example.com"
    # The new participant signs in with the password the admin set.
    assert (
        client_for(None)
        .post("/api/v1/auth/token/", {"email": "bo@example.com", "password": PASSWORD})
        .status_code
        == 200
    )

    assert (
        admin_api.patch(f"{PARTICIPANTS}{body['id']}/", {"full_name": "Bo Diddley"}).json()["full_name"]
        == "Bo Diddley"
    )
    put = admin_api.put(
        f"{PARTICIPANTS}{body['id']}/", {"email": "bo2@example.com", "full_name": "Bo", "phone": ""}
    )
    assert put.status_code == 200, put.content
    listed = admin_api.get(PARTICIPANTS).json()
    assert [p["email"] for p in listed["results"]] == ["bo2@example.com"]  # admins are not participants
    assert admin_api.get(f"{PARTICIPANTS}?search=BO2").json()["count"] == 1
    assert admin_api.get(f"{PARTICIPANTS}?search=zzz").json()["count"] == 0
    assert_problem(admin_api.get(f"{PARTICIPANTS}{admin.pk}/"), 404, "not_found")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "a@example.com", "full_name": "A"}, "password"),
        ({"email": "a@example.com", "full_name": "A", "password": "123"}, "password"),
        ({"email": "bad", "full_name": "A", "password": PASSWORD}, "email"),
        ({"email": "a@example.com", "password": PASSWORD}, "full_name"),
        ({"email": "a@example.com", "full_name": "A", "password": PASSWORD, "is_staff": True}, "is_staff"),
    ],
)
def test_create_bad_input_writes_nothing(admin_api, payload, field):
    before = User.objects.count()
    body = assert_problem(admin_api.post(PARTICIPANTS, payload), 400, "validation_error")
    assert field in body["errors"]
    assert User.objects.count() == before


def test_duplicate_email_on_create_and_update(admin_api):
    a, b = UserFactory(), UserFactory()
    assert_problem(
        admin_api.post(PARTICIPANTS, {"email": a.email, "password": PASSWORD, "full_name": "A"}),
        400,
        "validation_error",
    )
    assert_problem(
        admin_api.patch(f"{PARTICIPANTS}{b.pk}/", {"email": a.email.upper()}), 400, "validation_error"
    )
    b.refresh_from_db()
    assert b.email != a.email


def test_deleting_a_participant_frees_their_seats(admin_api):
    leaving, staying = UserFactory(), UserFactory()
    events = EventFactory.create_batch(2, capacity=2)
    for event in events:
        for user in (leaving, staying):
            EnrollmentFactory(event=event, participant=user)

    assert admin_api.delete(f"{PARTICIPANTS}{leaving.pk}/").status_code == 204
    assert not User.objects.filter(pk=leaving.pk).exists()
    assert not Enrollment.objects.filter(participant_id=leaving.pk).exists()
    assert list(Event.objects.values_list("enrolled_count", flat=True)) == [1, 1]
    assert [e["seats_left"] for e in admin_api.get("/api/v1/events/").json()["results"]] == [1, 1]
    assert_problem(admin_api.delete(f"{PARTICIPANTS}{leaving.pk}/"), 404, "not_found")


def test_participant_events_of_unknown_participant(admin_api):
    assert_problem(admin_api.get(f"{PARTICIPANTS}424242/events/"), 404, "not_found")
