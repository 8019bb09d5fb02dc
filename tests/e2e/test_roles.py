"""Every route added so far, called by each role: anonymous 401, wrong role 403, right role passes."""

import pytest

from tests.factories import AdminFactory, EventFactory, UserFactory
from tests.helpers import assert_problem, client_for

pytestmark = pytest.mark.django_db(transaction=True)

ANON, PARTICIPANT, ADMIN = "anon", "participant", "admin"


@pytest.fixture
def world():
    event = EventFactory()
    other = UserFactory()
    client_for(other).post(f"/api/v1/events/{event.pk}/enrollments/")
    return {"event": event.pk, "other": other.pk}


# (method, path, body, roles allowed, what the allowed answer holds: the keys of its body, or of a
# list's items; None for an empty body). Paths use {event} and {other} (a participant enrolled there).
PAGE = {"count", "next", "previous", "results"}
ACCOUNT = {"id", "email", "full_name", "phone", "role", "created_at"}
PARTICIPANT_ITEM = {"id", "email", "full_name", "phone", "created_at"}
EVENT = {
    "id", "title", "description", "date", "time", "duration_minutes", "location", "capacity",
    "enrolled_count", "seats_left", "waitlist_count", "admission", "created_at", "updated_at",
}  # fmt: skip
ROUTES = [
    ("get", "/api/v1/me/", None, {PARTICIPANT, ADMIN}, ACCOUNT),
    ("get", "/api/v1/me/enrollments/", None, {PARTICIPANT, ADMIN}, PAGE),
    ("get", "/api/v1/participants/", None, {ADMIN}, PAGE),
    (
        "post",
        "/api/v1/participants/",
        {"email": "n@example.com", "password": "Str0ng-Passw0rd!", "full_name": "N"},
        {ADMIN},
        PARTICIPANT_ITEM,
    ),
    ("get", "/api/v1/participants/{other}/", None, {ADMIN}, PARTICIPANT_ITEM),
    ("patch", "/api/v1/participants/{other}/", {"phone": "1"}, {ADMIN}, PARTICIPANT_ITEM),
    ("get", "/api/v1/participants/{other}/events/", None, {ADMIN}, PAGE),
    ("delete", "/api/v1/participants/{other}/", None, {ADMIN}, None),
    ("get", "/api/v1/events/", None, {PARTICIPANT, ADMIN}, PAGE),
    ("get", "/api/v1/events/{event}/", None, {PARTICIPANT, ADMIN}, EVENT),
    (
        "post",
        "/api/v1/events/",
        {"title": "T", "date": "2031-01-01", "time": "10:00", "location": "L", "capacity": 3},
        {ADMIN},
        EVENT,
    ),
    ("patch", "/api/v1/events/{event}/", {"title": "T2"}, {ADMIN}, EVENT),
    ("delete", "/api/v1/events/{event}/", None, {ADMIN}, None),
    (
        "post",
        "/api/v1/events/{event}/enrollments/",
        None,
        {PARTICIPANT},
        {"id", "event", "participant", "created_at"},
    ),
    ("get", "/api/v1/events/{event}/enrollments/me/", None, set(), None),  # a participant not enrolled: 404
    (
        "delete",
        "/api/v1/events/{event}/enrollments/me/",
        None,
        set(),
        None,
    ),  # a participant not enrolled: 404
    ("get", "/api/v1/events/{event}/participants/", None, {ADMIN}, PAGE),
    ("delete", "/api/v1/events/{event}/participants/{other}/", None, {ADMIN}, None),
    ("get", "/api/v1/events/{event}/waitlist/", None, {ADMIN}, PAGE),
    ("get", "/api/v1/events/{event}/waitlist/me/", None, set(), None),  # a participant not on it: 404
    ("delete", "/api/v1/events/{event}/waitlist/me/", None, set(), None),  # a participant not on it: 404
]


@pytest.mark.parametrize(
    ("method", "path", "body", "allowed", "keys"), ROUTES, ids=[f"{r[0]} {r[1]}" for r in ROUTES]
)
@pytest.mark.parametrize("role", [ANON, PARTICIPANT, ADMIN])
def test_route_enforces_roles(world, method, path, body, allowed, keys, role):
    user = {ANON: None, PARTICIPANT: UserFactory, ADMIN: AdminFactory}[role]
    api = client_for(user() if user else None)
    response = getattr(api, method)(path.format(**world), body)
    if role == ANON:
        assert_problem(response, 401, "not_authenticated")
    elif role in allowed:
        assert response.status_code < 300, (response.status_code, response.content[:300])
        if keys is None:
            assert response.status_code == 204 and not response.content
        else:
            assert set(response.json()) == keys, response.json()
    elif path.endswith("/me/") and "{event}" in path and role == PARTICIPANT:
        assert_problem(response, 404, "not_found")
    elif path.endswith("/enrollments/") and role == ADMIN:
        assert_problem(response, 400, "validation_error")  # admins must name the participant
    else:
        assert_problem(response, 403, "permission_denied")


def test_a_participant_joins_a_full_events_waiting_list_and_an_admin_cannot_without_a_name(world):
    from events.models import Event

    Event.objects.filter(pk=world["event"]).update(capacity=1)
    joined = client_for(UserFactory()).post(f"/api/v1/events/{world['event']}/waitlist/")
    assert joined.status_code == 201 and set(joined.json()) == {
        "event",
        "participant",
        "position",
        "joined_at",
    }
    assert_problem(
        client_for(AdminFactory()).post(f"/api/v1/events/{world['event']}/waitlist/"), 400, "validation_error"
    )
    assert_problem(
        client_for(None).post(f"/api/v1/events/{world['event']}/waitlist/"), 401, "not_authenticated"
    )


@pytest.mark.parametrize("role", [ANON, PARTICIPANT, ADMIN])
def test_calendar_and_check_in_routes_enforce_roles(world, role):
    user = {ANON: None, PARTICIPANT: UserFactory, ADMIN: AdminFactory}[role]
    api = client_for(user() if user else None)
    event = world["event"]
    answers = {
        "calendar": api.get(f"/api/v1/events/{event}/calendar.ics"),
        "feed url": api.get("/api/v1/me/calendar/"),
        "rotate": api.post("/api/v1/me/calendar/rotate/"),
        "check-in": api.post(
            f"/api/v1/events/{event}/check-ins/", {"code": "AAAABBBBCCCCDDDD"}, format="json"
        ),
    }
    if role == ANON:
        for answer in answers.values():
            assert_problem(answer, 401, "not_authenticated")
        return
    assert answers["calendar"].status_code == 200
    assert answers["calendar"]["Content-Type"].startswith("text/calendar")
    assert set(answers["feed url"].json()) == set(answers["rotate"].json()) == {"url"}
    if role == PARTICIPANT:
        assert_problem(answers["check-in"], 403, "permission_denied")
    else:  # past the role check: the code is unknown
        assert_problem(answers["check-in"], 404, "not_found")
