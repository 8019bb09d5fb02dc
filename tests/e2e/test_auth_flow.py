"""Sign-up → sign-in → refresh → logout through HTTP, and every bad input on the way."""

import datetime as dt
import time

import pytest
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle
from rest_framework_simplejwt.tokens import AccessToken

from participants.models import User
from tests.factories import PASSWORD, UserFactory
from tests.helpers import assert_problem

# Real commits: cache invalidation and other side effects run after commit, as in production.
pytestmark = pytest.mark.django_db(transaction=True)

REGISTER, TOKEN, REFRESH, LOGOUT, ME = (
    "/api/v1/auth/register/",
    "/api/v1/auth/token/",
    "/api/v1/auth/token/refresh/",
    "/api/v1/auth/logout/",
    "/api/v1/me/",
)


def sign_in(email, password=PASSWORD):
    response = APIClient().post(TOKEN, {"email": email, "password": password})
    assert response.status_code == 200, response.content
    return response.json()


def bearer(access):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return api


def test_full_account_lifecycle(anon):
    response = anon.post(REGISTER, {"email": "Ann@Example.com", "password": PASSWORD, "full_name": "Ann Lee"})
    assert response.status_code == 201
    account = response.json()
    assert account["email"] == "ann@example.com"
    assert account["role"] == "participant"
    assert "password" not in account

    tokens = sign_in("ANN@example.com")
    me = bearer(tokens["access"]).get(ME).json()
    assert (me["id"], me["full_name"], me["role"]) == (account["id"], "Ann Lee", "participant")

    refreshed = anon.post(REFRESH, {"refresh": tokens["refresh"]})
    assert refreshed.status_code == 200
    pair = refreshed.json()
    assert set(pair) >= {"access", "refresh"}
    # Rotation: the old refresh token stops working.
    assert_problem(anon.post(REFRESH, {"refresh": tokens["refresh"]}), 401, "token_not_valid")

    assert bearer(pair["access"]).post(LOGOUT, {"refresh": pair["refresh"]}).status_code == 204
    assert_problem(anon.post(REFRESH, {"refresh": pair["refresh"]}), 401, "token_not_valid")


def test_me_patch_changes_profile_but_not_role(participant_api, participant):
    response = participant_api.patch(ME, {"full_name": "New Name", "phone": "+1 555 0100", "role": "admin"})
    assert response.status_code == 200
    participant.refresh_from_db()
    assert (participant.full_name, participant.phone, participant.is_staff) == (
        "New Name",
        "+1 555 0100",
        False,
    )


def test_me_rejects_put_and_unknown_fields(participant_api, participant):
    assert_problem(participant_api.put(ME, {"full_name": "X"}), 405, "method_not_allowed")
    body = assert_problem(participant_api.patch(ME, {"nickname": "x"}), 400, "validation_error")
    assert body["errors"] == {"nickname": ["Unknown field."]}


def test_me_email_change_checks_uniqueness(participant_api, participant):
    other = UserFactory()
    body = assert_problem(participant_api.patch(ME, {"email": other.email.upper()}), 400, "validation_error")
    assert "email" in body["errors"]
    participant.refresh_from_db()
    assert participant.email != other.email


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"password": PASSWORD, "full_name": "No Mail"}, "email"),
        ({"email": "x@example.com", "full_name": "No Pass"}, "password"),
        ({"email": "x@example.com", "password": PASSWORD}, "full_name"),
        ({"email": "x@example.com", "password": PASSWORD, "full_name": ""}, "full_name"),
        ({"email": "not-an-email", "password": PASSWORD, "full_name": "A"}, "email"),
        ({"email": "x@example.com", "password": "short", "full_name": "A"}, "password"),
        ({"email": "x@example.com", "password": "password123", "full_name": "A"}, "password"),
        ({"email": "x@example.com", "password": "12345678901", "full_name": "A"}, "password"),
        ({"email": "x@example.com", "password": PASSWORD, "full_name": "A", "is_staff": True}, "is_staff"),
    ],
)
def test_register_bad_input_writes_nothing(anon, payload, field):
    body = assert_problem(anon.post(REGISTER, payload), 400, "validation_error")
    assert field in body["errors"], body
    assert User.objects.count() == 0


def test_register_cannot_choose_a_role(anon):
    payload = {"email": "x@example.com", "password": PASSWORD, "full_name": "A", "role": "admin"}
    response = anon.post(REGISTER, payload)
    assert response.status_code == 201
    assert response.json()["role"] == "participant"
    assert not User.objects.get(email="x@example.com").is_staff


def test_register_duplicate_email_in_any_case(anon, participant):
    body = assert_problem(
        anon.post(REGISTER, {"email": participant.email.upper(), "password": PASSWORD, "full_name": "Twin"}),
        400,
        "validation_error",
    )
    assert body["errors"]["email"] == ["An account with this email already exists."]
    assert User.objects.count() == 1


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '"text"'])
def test_register_malformed_or_non_object_json(anon, body):
    response = anon.post(REGISTER, body, content_type="application/json")
    assert_problem(response, 400, "validation_error")
    assert User.objects.count() == 0


def test_wrong_password_and_unknown_account_are_401(anon, participant):
    assert_problem(
        anon.post(TOKEN, {"email": participant.email, "password": "wrong"}), 401, "not_authenticated"
    )
    assert_problem(
        anon.post(TOKEN, {"email": "nobody@example.com", "password": "x"}), 401, "not_authenticated"
    )
    assert_problem(anon.post(TOKEN, {"email": participant.email}), 400, "validation_error")


def test_inactive_account_cannot_sign_in(anon, participant):
    participant.is_active = False
    participant.save()
    assert_problem(
        anon.post(TOKEN, {"email": participant.email, "password": PASSWORD}), 401, "not_authenticated"
    )


def test_tampered_and_expired_tokens_are_rejected(participant):
    access = sign_in(participant.email)["access"]
    head, payload, signature = access.split(".")
    tampered = f"{head}.{payload}.{signature[:-4]}AAAA"
    assert_problem(bearer(tampered).get(ME), 401, "token_not_valid")
    assert_problem(bearer("garbage").get(ME), 401, "token_not_valid")

    expired = AccessToken.for_user(participant)
    expired.set_exp(lifetime=-dt.timedelta(seconds=1))
    assert_problem(bearer(str(expired)).get(ME), 401, "token_not_valid")
    assert_problem(APIClient().get(ME), 401, "not_authenticated")


def test_refresh_token_is_not_an_access_token(participant):
    refresh = sign_in(participant.email)["refresh"]
    assert_problem(bearer(refresh).get(ME), 401, "token_not_valid")


def test_logout_needs_a_valid_own_refresh_token(participant):
    mine = sign_in(participant.email)
    api = bearer(mine["access"])
    assert_problem(api.post(LOGOUT, {}), 400, "validation_error")
    assert_problem(api.post(LOGOUT, {"refresh": "junk"}), 401, "token_not_valid")
    other = sign_in(UserFactory().email)
    body = assert_problem(api.post(LOGOUT, {"refresh": other["refresh"]}), 400, "validation_error")
    assert "refresh" in body["errors"]
    # The other account's token still works: nothing was blacklisted.
    assert APIClient().post(REFRESH, {"refresh": other["refresh"]}).status_code == 200
    assert_problem(APIClient().post(LOGOUT, {"refresh": mine["refresh"]}), 401, "not_authenticated")


def test_repeated_failed_sign_ins_throttle_that_account_only(anon, participant, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    other = UserFactory()
    for _ in range(3):
        assert_problem(
            anon.post(TOKEN, {"email": participant.email, "password": "bad"}), 401, "not_authenticated"
        )
    response = anon.post(TOKEN, {"email": participant.email, "password": PASSWORD})
    assert_problem(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    # Another account from the same address is not affected.
    assert anon.post(TOKEN, {"email": other.email, "password": PASSWORD}).status_code == 200


def test_successful_sign_in_resets_the_failure_count(anon, participant, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(2):
        anon.post(TOKEN, {"email": participant.email, "password": "bad"})
    assert anon.post(TOKEN, {"email": participant.email, "password": PASSWORD}).status_code == 200
    for _ in range(2):
        anon.post(TOKEN, {"email": participant.email, "password": "bad"})
    assert anon.post(TOKEN, {"email": participant.email, "password": PASSWORD}).status_code == 200


def test_per_address_rate_limit_on_auth_routes(anon, monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth": "5/min"})
    for i in range(5):
        payload = {"email": f"u{i}@example.com", "password": PASSWORD, "full_name": "U"}
        assert anon.post(REGISTER, payload).status_code == 201
    response = anon.post(REGISTER, {"email": "u9@example.com", "password": PASSWORD, "full_name": "U"})
    assert_problem(response, 429, "throttled")
    assert "Retry-After" in response
    assert not User.objects.filter(email="u9@example.com").exists()


def test_default_rate_lets_an_office_sign_up_together(anon):
    """Hundreds of sign-ups a minute from one address pass (the default rate is not lowered)."""
    for i in range(300):
        payload = {"email": f"colleague{i}@example.com", "password": PASSWORD, "full_name": f"Colleague {i}"}
        assert anon.post(REGISTER, payload).status_code == 201, i


def test_reads_trust_the_token_but_writes_check_the_account(participant, event):
    """Event reads skip the account lookup (hot path); any write still loads and checks the account."""
    access = sign_in(participant.email)["access"]
    api = bearer(access)
    assert api.get("/api/v1/events/").status_code == 200
    participant.is_active = False
    participant.save()
    assert api.get("/api/v1/events/").status_code == 200  # until the access token expires
    assert_problem(api.post(f"/api/v1/events/{event.pk}/enrollments/"), 401, "not_authenticated")
    assert_problem(api.get(ME), 401, "not_authenticated")
    assert_problem(bearer(access[:-3] + "xyz").get("/api/v1/events/"), 401, "token_not_valid")


def test_a_remembered_token_is_still_refused_once_expired(participant):
    token = AccessToken.for_user(participant)
    token.set_exp(lifetime=dt.timedelta(seconds=2))
    api = bearer(str(token))
    assert api.get("/api/v1/events/").status_code == 200
    time.sleep(2.1)
    assert_problem(api.get("/api/v1/events/"), 401, "token_not_valid")


def test_me_email_change_signs_in_with_the_new_address(participant_api, participant, anon):
    changed = participant_api.patch(ME, {"email": "  New.Address@Example.com "}, format="json")
    assert changed.status_code == 200 and changed.json()["email"] == "new.address@example.com"
    new = anon.post(
        "/api/v1/auth/token/", {"email": "new.address@example.com", "password": PASSWORD}, format="json"
    )
    assert new.status_code == 200
    old = anon.post("/api/v1/auth/token/", {"email": participant.email, "password": PASSWORD}, format="json")
    assert_problem(old, 401, "not_authenticated")


def test_refreshing_the_token_of_an_inactive_account_is_refused(anon, participant):
    refresh = anon.post(
        "/api/v1/auth/token/", {"email": participant.email, "password": PASSWORD}, format="json"
    )
    token = refresh.json()["refresh"]
    User.objects.filter(pk=participant.pk).update(is_active=False)
    answer = anon.post("/api/v1/auth/token/refresh/", {"refresh": token}, format="json")
    assert answer.status_code == 401
    assert answer["Content-Type"].startswith("application/problem+json")


@pytest.mark.django_db(transaction=True)
def test_a_refresh_token_sent_twice_at_once_is_traded_once(live_server):
    """Rotation checked the blacklist before blacklisting: trades at the same moment all passed,
    and one refresh token became as many sessions."""
    import httpx

    from tests.integration.test_concurrency import fire_together

    user = UserFactory()
    url = f"{live_server.url}/api/v1/auth/token/"
    refresh = httpx.post(url, json={"email": user.email, "password": PASSWORD}).json()["refresh"]
    answers = fire_together([("POST", f"{url}refresh/", None, {"refresh": refresh})] * 8)
    assert sorted(answers) == [(200, None)] + [(401, "token_not_valid")] * 7


@pytest.mark.django_db(transaction=True)
def test_guesses_sent_at_once_are_tried_no_more_than_the_lockout_allows(live_server, settings):
    """The lockout checked before the password and counted after it: guesses sent at the same
    moment were all tried, however many."""
    from tests.integration.test_concurrency import fire_together

    user = UserFactory()
    guess = (
        "POST",
        f"{live_server.url}/api/v1/auth/token/",
        None,
        {"email": user.email, "password": "guess"},
    )
    answers = fire_together([guess] * 30)
    assert answers.count((401, "not_authenticated")) == settings.LOGIN_FAILURE_LIMIT
    assert answers.count((429, "throttled")) == 30 - settings.LOGIN_FAILURE_LIMIT
