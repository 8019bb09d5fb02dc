"""The exception handler maps every kind of error to the contract's shape (no database needed)."""

import json

from rest_framework import exceptions
from rest_framework_simplejwt.exceptions import InvalidToken

from config.exceptions import problem_exception_handler
from config.logging import current_request_id
from events import domain


def handle(exc):
    token = current_request_id.set("req-1")
    try:
        response = problem_exception_handler(exc, {})
    finally:
        current_request_id.reset(token)
    assert response is not None
    assert response["Content-Type"] == "application/problem+json"
    body = json.loads(response.content)
    assert body["request_id"] == "req-1"
    assert body["status"] == response.status_code
    return response, body


def test_validation_error_lists_fields():
    _, body = handle(exceptions.ValidationError({"capacity": ["Too small."], "title": ["Required."]}))
    assert body["code"] == "validation_error"
    assert body["errors"] == {"capacity": ["Too small."], "title": ["Required."]}


def test_validation_error_without_field_goes_under_non_field_errors():
    _, body = handle(exceptions.ValidationError("Bad."))
    assert body["errors"] == {"non_field_errors": ["Bad."]}


def test_malformed_json_is_a_validation_error():
    response, body = handle(exceptions.ParseError("JSON parse error"))
    assert response.status_code == 400
    assert body["code"] == "validation_error"
    assert "body" in body["errors"]


def test_401_codes():
    response, body = handle(exceptions.NotAuthenticated())
    assert (response.status_code, body["code"]) == (401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")
    _, body = handle(exceptions.AuthenticationFailed("No active account", code="no_active_account"))
    assert body["code"] == "not_authenticated"
    _, body = handle(InvalidToken())
    assert body["code"] == "token_not_valid"


def test_throttled_sets_retry_after():
    response, body = handle(exceptions.Throttled(wait=12.2))
    assert (response.status_code, body["code"], response["Retry-After"]) == (429, "throttled", "13")


def test_domain_conflicts_are_409_with_their_code():
    response, body = handle(domain.EventFull())
    assert (response.status_code, body["code"], body["detail"]) == (
        409,
        "event_full",
        "This event has no seats left.",
    )
    response, body = handle(domain.AlreadyEnrolled())
    assert (response.status_code, body["code"]) == (409, "already_enrolled")


def test_domain_invalid_value_is_a_field_error():
    response, body = handle(domain.InvalidValue("capacity", "Too low."))
    assert (response.status_code, body["code"], body["errors"]) == (
        400,
        "validation_error",
        {"capacity": ["Too low."]},
    )


def test_domain_not_found_is_404():
    response, body = handle(domain.NotEnrolled())
    assert (response.status_code, body["code"]) == (404, "not_found")


def test_unknown_exceptions_are_left_to_the_middleware():
    assert problem_exception_handler(RuntimeError("boom"), {}) is None
