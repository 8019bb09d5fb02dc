"""Every route added so far, called by each role: anonymous 401, wrong role 403, right role passes."""

import pytest

from tests.conftest import assert_problem, client_for
from tests.factories import AdminFactory, EventFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

ANON, PARTICIPANT, ADMIN = "anon", "participant", "admin"


@pytest.fixture
def world():
    event = EventFactory()
    other = UserFactory()
    client_for(other).post(f"/api/v1/events/{event.pk}/enrollments/")
    return {"event": event.pk, "other": other.pk}


# (method, path, body, roles allowed). Paths use {event} and {other} (a participant enrolled there).
ROUTES = [
    ("get", "/api/v1/me/", None, {PARTICIPANT, ADMIN}),
    ("get", "/api/v1/me/enrollments/", None, {PARTICIPANT, ADMIN}),
    ("get", "/api/v1/participants/", None, {ADMIN}),
    (
        "post",
        "/api/v1/participants/",
        {"email": "n@example.com", "password": "Str0ng-Passw0rd!", "full_name": "N"},
        {ADMIN},
    ),
    ("get", "/api/v1/participants/{other}/", None, {ADMIN}),
    ("patch", "/api/v1/participants/{other}/", {"phone": "1"}, {ADMIN}),
    ("get", "/api/v1/participants/{other}/events/", None, {ADMIN}),
    ("delete", "/api/v1/participants/{other}/", None, {ADMIN}),
    ("get", "/api/v1/events/", None, {PARTICIPANT, ADMIN}),
    ("get", "/api/v1/events/{event}/", None, {PARTICIPANT, ADMIN}),
    (
        "post",
        "/api/v1/events/",
        {"title": "T", "date": "2031-01-01", "time": "10:00", "location": "L", "capacity": 3},
        {ADMIN},
    ),
    ("patch", "/api/v1/events/{event}/", {"title": "T2"}, {ADMIN}),
    ("delete", "/api/v1/events/{event}/", None, {ADMIN}),
    ("post", "/api/v1/events/{event}/enrollments/", None, {PARTICIPANT}),
    ("delete", "/api/v1/events/{event}/enrollments/me/", None, set()),  # a participant not enrolled: 404
    ("get", "/api/v1/events/{event}/participants/", None, {ADMIN}),
    ("delete", "/api/v1/events/{event}/participants/{other}/", None, {ADMIN}),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "allowed"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES]
)
@pytest.mark.parametrize("role", [ANON, PARTICIPANT, ADMIN])
def test_route_enforces_roles(world, method, path, body, allowed, role):
    user = {ANON: None, PARTICIPANT: UserFactory, ADMIN: AdminFactory}[role]
    api = client_for(user() if user else None)
    response = getattr(api, method)(path.format(**world), body)
    if role == ANON:
        assert_problem(response, 401, "not_authenticated")
    elif role in allowed:
        assert response.status_code < 300, (response.status_code, response.content[:300])
    elif path.endswith("/enrollments/me/") and role == PARTICIPANT:
        assert_problem(response, 404, "not_found")
    elif path.endswith("/enrollments/") and role == ADMIN:
        assert_problem(response, 400, "validation_error")  # admins must name the participant
    else:
        assert_problem(response, 403, "permission_denied")
