"""The one error shape of the API: RFC 9457 problem details (see docs/api.md, Errors)."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from django.http import JsonResponse

from config.logging import current_request_id

PROBLEM_CONTENT_TYPE = "application/problem+json"

# A client told 503 (the request cannot be kept right now) may try again after this many seconds.
UNAVAILABLE_RETRY_AFTER_SECONDS = 5

# The code a client gets when nothing more specific is known than the status.
DEFAULT_CODES: dict[int, str] = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    426: "upgrade_required",
    429: "throttled",
    431: "headers_too_large",
    500: "server_error",
    501: "not_implemented",
    503: "service_unavailable",
}

DEFAULT_DETAILS: dict[int, str] = {
    404: "Not found.",
    405: "Method not allowed.",
    500: "A server error occurred.",
}


def default_code(status: int) -> str:
    return DEFAULT_CODES.get(status, "server_error" if status >= 500 else "error")


def default_detail(status: int) -> str:
    if status in DEFAULT_DETAILS:
        return DEFAULT_DETAILS[status]
    try:
        return HTTPStatus(status).phrase + "."
    except ValueError:
        return "Error."


def problem_response(
    status: int,
    code: str | None = None,
    detail: str | None = None,
    *,
    errors: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JsonResponse:
    body = problem_body(status, code, detail, request_id=current_request_id.get())
    if errors is not None:
        body["errors"] = dict(errors)
    body.update(extra)
    response = JsonResponse(body, status=status, content_type=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def problem_body(status: int, code: str | None, detail: str | None, *, request_id: str) -> dict[str, Any]:
    """The problem's fields every answer has (the status's default code and detail when not given)."""
    return {
        "type": "about:blank",
        "title": default_detail(status).rstrip("."),
        "status": status,
        "code": code or default_code(status),
        "detail": detail or default_detail(status),
        "request_id": request_id,
    }


def is_problem(response: Any) -> bool:
    return str(response.get("Content-Type", "")).startswith(PROBLEM_CONTENT_TYPE)
