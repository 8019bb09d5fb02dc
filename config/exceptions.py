"""DRF's exception handler, answering every API error in the contract's problem+json shape."""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, serializers
from rest_framework_simplejwt.exceptions import InvalidToken

from config import errors
from config.problems import UNAVAILABLE_RETRY_AFTER_SECONDS, problem_response

log = logging.getLogger(__name__)
# Datetimes in a problem body read like those of the API's answers (DRF's format, current zone).
_DATETIME = serializers.DateTimeField()


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> JsonResponse | None:
    if isinstance(exc, errors.DomainError):
        return _domain_problem(exc)
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The database is away or locked: the request was not kept (its transaction rolled back),
        # and saying so with a 503 tells the client to come back, where a 500 would not.
        log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
        return problem_response(
            503,
            "service_unavailable",
            "The service cannot keep this request right now; try again shortly.",
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, RequestDataTooBig):
        return problem_response(413, "payload_too_large", "The request body is too large.")
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # uncaught: config.middleware logs it and answers 500

    status = exc.status_code
    headers: dict[str, str] = {}
    wait = getattr(exc, "wait", None)  # set on Throttled
    if isinstance(exc, exceptions.Throttled) and wait is not None:
        headers["Retry-After"] = str(max(1, math.ceil(wait)))
    if status == 401:
        # The contract names two 401 codes: a token that fails, and anything else (no or bad credentials).
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
        reason = "token_not_valid" if isinstance(exc, InvalidToken) else "not_authenticated"
        return problem_response(401, reason, _first_message(exc.detail), headers=headers)
    if isinstance(exc, exceptions.ValidationError):
        return problem_response(
            400, "validation_error", "The request is invalid.", errors=_field_errors(exc.detail)
        )
    if isinstance(exc, exceptions.ParseError):
        return problem_response(
            400, "validation_error", "The request body is not valid JSON.", errors={"body": [str(exc.detail)]}
        )
    code = {
        exceptions.PermissionDenied: "permission_denied",
        exceptions.NotFound: "not_found",
        exceptions.MethodNotAllowed: "method_not_allowed",
        exceptions.Throttled: "throttled",
    }.get(type(exc))
    return problem_response(status, code, _first_message(exc.detail), headers=headers)


def _domain_problem(exc: errors.DomainError) -> JsonResponse:
    if isinstance(exc, errors.InvalidValue):
        return problem_response(
            400, "validation_error", "The request is invalid.", errors={exc.field: [exc.message]}
        )
    status = 404 if isinstance(exc, errors.NotFound) else 409
    extra: dict[str, Any] = {
        name: _DATETIME.to_representation(value) if isinstance(value, datetime) else value
        for name, value in exc.extra.items()
    }
    return problem_response(status, exc.code, exc.message, **extra)


def _first_message(detail: Any) -> str:
    """Flattens a DRF error detail (string, list or dict) to one human sentence."""
    if isinstance(detail, dict):
        for value in detail.values():
            return _first_message(value)
        return ""
    if isinstance(detail, list):
        return _first_message(detail[0]) if detail else ""
    return str(detail)


def _field_errors(detail: Any) -> dict[str, list[str]]:
    """`{"field": ["message", ...]}`, with errors not tied to a field under `non_field_errors`.
    Errors inside a nested value are named by their path: `recipients.1`, `participant.email`."""
    errors: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for field, value in detail.items():
            _collect(str(field), value, errors)
    else:
        _collect("non_field_errors", detail, errors)
    return errors


def _collect(path: str, value: Any, errors: dict[str, list[str]]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _collect(f"{path}.{key}", inner, errors)
    elif isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        for index, item in enumerate(value):
            if item:  # DRF lists an empty entry for each valid item of a list
                _collect(f"{path}.{index}", item, errors)
    elif isinstance(value, list):
        errors.setdefault(path, []).extend(str(item) for item in value)
    else:
        errors.setdefault(path, []).append(str(value))
