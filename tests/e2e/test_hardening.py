"""Hostile and malformed input answered with a clear 4xx, never a 500; secrets that stop working
when they should."""

import json

import pytest
from django.db import connection
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.test import APIClient
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken

from events.models import Enrollment, Event
from participants import services as participant_services
from participants.models import User
from participants.tokens import RotatingRefreshSerializer
from tests.factories import PASSWORD, EventFactory, UserFactory
from tests.helpers import assert_problem, needs_service, while_held

pytestmark = pytest.mark.django_db(transaction=True)

DEEP = "[" * 1200 + "]" * 1200


@pytest.mark.parametrize(
    "path",
    ["/api/v1/auth/register/", "/api/v1/auth/token/", "/api/v1/auth/token/refresh/", "/api/v1/events/"],
)
def test_a_deeply_nested_body_is_400(path, admin_api):
    answer = admin_api.generic("POST", path, DEEP, content_type="application/json")
    assert_problem(answer, 400, "validation_error")


def test_a_deeply_nested_body_to_the_enrollment_route_is_400(participant_api):
    event = EventFactory()
    answer = participant_api.generic(
        "POST", f"/api/v1/events/{event.pk}/enrollments/", DEEP, content_type="application/json"
    )
    assert_problem(answer, 400, "validation_error")
    assert not Enrollment.objects.exists()


def test_a_lone_surrogate_in_the_sign_in_email_is_400(anon):
    body = '{"email": "\\ud800@example.com", "password": "x"}'
    answer = anon.generic("POST", "/api/v1/auth/token/", body, content_type="application/json")
    problem = assert_problem(answer, 400, "validation_error")
    assert "email" in problem["errors"]


def test_the_refresh_token_of_a_deleted_account_is_401(anon):
    user = UserFactory()
    refresh = str(RefreshToken.for_user(user))
    user.delete()
    assert_problem(
        anon.post("/api/v1/auth/token/refresh/", {"refresh": refresh}, format="json"), 401, "token_not_valid"
    )


@pytest.mark.parametrize("how", ["admin_api", "model"])
def test_a_password_change_revokes_outstanding_refresh_tokens(how, admin_api, anon):
    user = UserFactory()
    signed_in = anon.post("/api/v1/auth/token/", {"email": user.email, "password": PASSWORD}, format="json")
    refresh = signed_in.json()["refresh"]
    if how == "admin_api":
        changed = admin_api.patch(
            f"/api/v1/participants/{user.pk}/", {"password": "An0ther-Passw0rd!"}, format="json"
        )
        assert changed.status_code == 200, changed.content
    else:  # the Django admin's password form, the admin bootstrap: all save a new password
        user.set_password("An0ther-Passw0rd!")
        user.save()
    assert_problem(
        anon.post("/api/v1/auth/token/refresh/", {"refresh": refresh}, format="json"), 401, "token_not_valid"
    )
    # Other changes of the account keep its sessions.
    again = anon.post(
        "/api/v1/auth/token/", {"email": user.email, "password": "An0ther-Passw0rd!"}, format="json"
    )
    fresh = again.json()["refresh"]
    User.objects.filter(pk=user.pk).update(full_name="Renamed")
    account = User.objects.get(pk=user.pk)
    account.phone = "123"
    account.save()
    assert anon.post("/api/v1/auth/token/refresh/", {"refresh": fresh}, format="json").status_code == 200


@needs_service("DATABASE_URL")
def test_a_password_changed_while_a_refresh_token_is_traded_revokes_the_new_one_too(anon):
    """The change used to revoke the tokens it found, and the new token of a trade still under way
    was not among them: a session minted with the old password went on after the change."""
    user = UserFactory()
    signed_in = anon.post("/api/v1/auth/token/", {"email": user.email, "password": PASSWORD}, format="json")
    traded = {}

    def trade():
        serializer = RotatingRefreshSerializer(data={"refresh": signed_in.json()["refresh"]})
        serializer.is_valid(raise_exception=True)
        traded.update(serializer.validated_data)

    def change_password():
        participant_services.update_account(user_id=user.pk, password="An0ther-Passw0rd!")

    assert while_held(trade, change_password) == []
    assert_problem(
        anon.post("/api/v1/auth/token/refresh/", {"refresh": traded["refresh"]}, format="json"),
        401,
        "token_not_valid",
    )
    # The other way round: a trade during a change finds its token revoked when the change commits.
    signed_in = anon.post(
        "/api/v1/auth/token/", {"email": user.email, "password": "An0ther-Passw0rd!"}, format="json"
    )
    traded.clear()
    (refused,) = while_held(change_password, trade)
    assert isinstance(refused, TokenError) and traded == {}


@needs_service("DATABASE_URL")
def test_an_account_deactivated_while_its_refresh_token_waits_gets_no_new_pair(anon):
    """simplejwt checked the account before the trade took its lock: a deactivation committed in
    between let the trade mint a new pair for an account that could no longer sign in."""
    user = UserFactory()
    signed_in = anon.post("/api/v1/auth/token/", {"email": user.email, "password": PASSWORD}, format="json")
    serializer = RotatingRefreshSerializer(data={"refresh": signed_in.json()["refresh"]})

    def deactivate():
        account = User.objects.select_for_update().get(pk=user.pk)
        account.is_active = False
        account.save()

    (refused,) = while_held(deactivate, lambda: serializer.is_valid(raise_exception=True))
    assert isinstance(refused, AuthenticationFailed) and refused.get_codes() == "no_active_account"


@pytest.mark.parametrize("named", ["other", "missing", "garbage"])
def test_a_participant_naming_anyone_else_gets_403_whatever_the_id(named, participant_api):
    event = EventFactory()
    value = {"other": UserFactory().pk, "missing": 10**9, "garbage": "x"}[named]
    for route in ("enrollments", "waitlist"):
        answer = participant_api.post(
            f"/api/v1/events/{event.pk}/{route}/", {"participant": value}, format="json"
        )
        assert_problem(answer, 403, "permission_denied")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", "Party\r\nBcc: victim@example.com"),
        ("location", "Room \x1b[31m1"),
        ("title", "Invoice \u202egpj.exe"),
        ("description", "Agenda\x00"),
        ("description", "x" * 5001),
    ],
)
def test_event_text_with_control_characters_or_too_long_is_400(field, value, admin_api):
    body = {"title": "Launch", "date": "2031-01-01", "time": "10:00", "location": "Hall", "capacity": 5}
    body[field] = value
    problem = assert_problem(admin_api.post("/api/v1/events/", body, format="json"), 400, "validation_error")
    assert field in problem["errors"]
    assert not Event.objects.exists()


def test_multi_line_descriptions_and_ordinary_text_are_fine(admin_api):
    body = {
        "title": "Café ☕ — launch",
        "date": "2031-01-01",
        "time": "10:00",
        "location": "Hall",
        "capacity": 5,
        "description": "Agenda:\n\t1. Coffee\r\n\t2. Talks",
    }
    assert admin_api.post("/api/v1/events/", body, format="json").status_code == 201


@pytest.mark.parametrize("name", ["Ann\nBcc: x@example.com", "Ann\u202e", "Ann\x07"])
def test_names_with_control_characters_are_400(name, anon):
    body = {"email": "ann@example.com", "password": PASSWORD, "full_name": name}
    problem = assert_problem(
        anon.post("/api/v1/auth/register/", body, format="json"), 400, "validation_error"
    )
    assert "full_name" in problem["errors"]


@pytest.mark.parametrize(
    "query",
    [
        "page=-1",
        "page=0",
        "page=abc",
        "page=null",
        "page_size=0",
        "page_size=-1",
        "page_size=abc",
        "page_size=null",
        "page_size=1.5",
    ],
)
def test_malformed_paging_is_400(query, participant_api, admin_api):
    EventFactory()
    for api, path in ((participant_api, "/api/v1/events/"), (admin_api, "/api/v1/participants/")):
        problem = assert_problem(api.get(f"{path}?{query}"), 400, "validation_error")
        assert query.split("=")[0] in problem["errors"]


def test_good_paging_still_works(participant_api):
    EventFactory.create_batch(3)
    page = participant_api.get("/api/v1/events/?page=2&page_size=2").json()
    assert len(page["results"]) == 1 and page["previous"]
    assert participant_api.get("/api/v1/events/?page_size=500").json()["count"] == 3  # capped, not refused
    assert_problem(participant_api.get("/api/v1/events/?page=9"), 404, "not_found")


def test_the_password_hash_is_computed_outside_the_write_transaction(anon, monkeypatch):
    """SQLite has one writer at a time: hashing inside the transaction made every sign-up wait for
    the others' PBKDF2 (and some fail with "database is locked")."""
    from django.contrib.auth import hashers

    seen = []
    original = hashers.make_password

    def spy(*args, **kwargs):
        seen.append(connection.in_atomic_block)
        return original(*args, **kwargs)

    monkeypatch.setattr("django.contrib.auth.base_user.make_password", spy)
    body = {"email": "new@example.com", "password": PASSWORD, "full_name": "New"}
    assert anon.post("/api/v1/auth/register/", body, format="json").status_code == 201
    assert seen == [False]


def test_deep_json_through_a_plain_client_too():
    # Not only through the test client's encoder: the raw bytes a hostile client sends.
    client = APIClient()
    answer = client.generic(
        "POST",
        "/api/v1/auth/register/",
        json.dumps({"a": 1})[:-1] + DEEP + "}",
        content_type="application/json",
    )
    assert_problem(answer, 400, "validation_error")


@pytest.mark.parametrize("path", ["/api/v1/auth/register/", "/api/v1/events/"])
def test_a_body_over_the_limit_is_413_on_every_route(path, admin_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    answer = admin_api.generic(
        "POST", path, json.dumps({"title": "x" * 5000}), content_type="application/json"
    )
    assert_problem(answer, 413, "payload_too_large")


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND"])
def test_unserved_methods_are_405_before_any_permission_check(method, participant_api, anon):
    event = EventFactory()
    for api in (participant_api, anon):
        for path in (f"/api/v1/events/{event.pk}/", "/api/v1/participants/", "/api/v1/nowhere/"):
            answer = api.generic(method, path)
            assert_problem(answer, 405, "method_not_allowed")
            assert answer["Allow"]
    allow = participant_api.generic("TRACE", f"/api/v1/events/{event.pk}/enrollments/me/")["Allow"]
    assert set(allow.split(", ")) == {"GET", "DELETE", "OPTIONS", "HEAD"}


def test_numbers_where_text_is_declared_are_400(admin_api):
    body = {"title": "Launch", "date": "2031-01-01", "time": "10:00", "location": 0, "capacity": 5}
    problem = assert_problem(admin_api.post("/api/v1/events/", body, format="json"), 400, "validation_error")
    assert problem["errors"] == {"location": ["Not a valid string."]}


def test_errors_inside_a_list_are_named_by_their_path(admin_api):
    event = EventFactory()
    body = {"recipients": ["a@example.com", 0, "not-an-email"]}
    problem = assert_problem(
        admin_api.post(f"/api/v1/events/{event.pk}/reports/", body, format="json"), 400, "validation_error"
    )
    assert set(problem["errors"]) == {"recipients.1", "recipients.2"}
    assert all(isinstance(m, str) for messages in problem["errors"].values() for m in messages)


def test_an_empty_date_filter_is_400_not_ignored(participant_api):
    problem = assert_problem(participant_api.get("/api/v1/events/?date_to="), 400, "validation_error")
    assert "date_to" in problem["errors"]


@pytest.mark.parametrize("route", ["enrollments", "waitlist", "reports"])
def test_a_json_null_body_is_400_where_an_object_or_nothing_is_taken(route, admin_api):
    event = EventFactory()
    answer = admin_api.generic(
        "POST", f"/api/v1/events/{event.pk}/{route}/", "null", content_type="application/json"
    )
    assert_problem(answer, 400, "validation_error")


BEYOND_ANY_ID = str(2**63)  # one more than a bigint holds


@pytest.mark.parametrize(
    ("method", "route"),
    [
        ("post", "enrollments/"),
        ("get", "enrollments/me/"),
        ("delete", "enrollments/me/"),
        ("post", "waitlist/"),
        ("get", "waitlist/me/"),
        ("get", "participants/"),
        ("post", "reports/"),
    ],
)
def test_an_event_id_beyond_any_database_id_is_404(method, route, participant_api, admin_api):
    """Such an id used to reach the enrollment's own SQL, which cannot bind it: a 500."""
    for api in (participant_api, admin_api):
        answer = getattr(api, method)(f"/api/v1/events/{BEYOND_ANY_ID}/{route}")
        assert_problem(answer, 404, "not_found")


def test_the_largest_database_id_is_still_an_id(participant_api):
    largest = str(2**63 - 1)
    assert_problem(participant_api.post(f"/api/v1/events/{largest}/enrollments/"), 404, "not_found")
    assert participant_api.get(f"/api/v1/events/{largest}/enrollments/me/").status_code == 404


@pytest.mark.parametrize("value", ["1e400", "-1e400", "1.5", "true"])
def test_a_participant_id_that_is_no_integer_is_400(value, admin_api):
    """JSON's 1e400 is a float too large for an integer: DRF's related field let int() raise
    OverflowError, a 500."""
    event = EventFactory()
    for route in ("enrollments", "waitlist"):
        body = f'{{"participant": {value}}}'
        answer = admin_api.generic(
            "POST", f"/api/v1/events/{event.pk}/{route}/", body, content_type="application/json"
        )
        problem = assert_problem(answer, 400, "validation_error")
        assert "participant" in problem["errors"]
    assert not Enrollment.objects.exists()


@pytest.mark.parametrize("date", ["9999-12-31", "0001-01-01", "1899-12-31", "3000-01-01"])
def test_event_dates_beyond_what_calendars_can_hold_are_400(date, admin_api):
    """Near either end of Python's dates an event's end and its calendar's time-zone rules
    overflowed: its calendar and every notification about it failed."""
    body = {"title": "Launch", "date": date, "time": "23:30", "location": "Hall", "capacity": 5}
    problem = assert_problem(admin_api.post("/api/v1/events/", body, format="json"), 400, "validation_error")
    assert "date" in problem["errors"]
    assert not Event.objects.exists()
    event = EventFactory()
    problem = assert_problem(
        admin_api.patch(f"/api/v1/events/{event.pk}/", {"date": date}), 400, "validation_error"
    )
    assert "date" in problem["errors"]
    for edge in ("1900-01-01", "2999-12-31"):
        assert admin_api.patch(f"/api/v1/events/{event.pk}/", {"date": edge}).status_code == 200


def test_a_nul_in_the_participants_search_is_400(admin_api):
    """PostgreSQL's text cannot hold it: the query failed (a 500) before it was refused."""
    problem = assert_problem(admin_api.get("/api/v1/participants/?search=a%00b"), 400, "validation_error")
    assert "search" in problem["errors"]


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/api/v1/events"), ("put", "/api/v1/events/1"), ("post", "/api/v1/auth/token")],
)
def test_a_write_to_a_path_without_its_slash_is_404_not_a_redirect(method, path, debug, admin_api, settings):
    """Django redirected it (a 301 that clients follow as a GET, dropping the body) or, with DEBUG
    on, raised (an unlogged 500)."""
    settings.DEBUG = debug
    assert_problem(getattr(admin_api, method)(path, {"title": "x"}, format="json"), 404, "not_found")
    assert not Event.objects.exists()
    # A GET still goes to the path with the slash.
    answer = admin_api.get("/api/v1/events")
    assert (answer.status_code, answer["Location"]) == (301, "/api/v1/events/")


@pytest.mark.parametrize("version", ["%00", "a%0Ab", "v2"])
def test_the_schema_ignores_a_version_it_does_not_serve(version, anon):
    """drf-spectacular wrote `?version=` into a header: a NUL or a newline made it invalid (500)."""
    answer = anon.get(f"/api/schema/?version={version}")
    assert answer.status_code == 200
    assert "\n" not in answer["Content-Disposition"] and "\x00" not in answer["Content-Disposition"]


@pytest.mark.parametrize("route", ["events", "participants", "reports"])
@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_an_id_in_other_digits_names_nothing(route, method, admin_api):
    """DRF's router took any digits int() reads: `/events/٣/` was event 3, PATCH and DELETE too."""
    event = EventFactory(pk=3)
    assert_problem(getattr(admin_api, method)(f"/api/v1/{route}/\u0663/"), 404, "not_found")
    assert Event.objects.filter(pk=event.pk).exists()
