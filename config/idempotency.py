"""Safe retries of the creating POSTs: an `Idempotency-Key` header makes a retry replay the first
answer instead of doing the work again (the IETF draft "The Idempotency-Key HTTP Header Field").

- The same key with the same body within IDEMPOTENCY_TTL_SECONDS (24 h) replays the first answer:
  its status, body, `Content-Type` and `Location`, with `Idempotent-Replayed: true`.
- The same key with another body (or on another route) answers 422 `idempotency_key_reused`.
- While the first request runs, a second one with the key answers 409 `request_in_progress`.
- Keys belong to the account of the request's token, or to the address for anonymous sign-up.
- Answers are kept in the cache (Redis in production: every web replica sees them). A server error
  (5xx) is not kept, and neither is 429: retrying those should run again. While the cache keeps
  nothing (Redis away), a request with a key answers 503 `service_unavailable`: it could not be
  replayed, so it is not run.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from rest_framework.throttling import BaseThrottle
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings

from config.problems import UNAVAILABLE_RETRY_AFTER_SECONDS, problem_response

HEADER = "Idempotency-Key"
META_KEY = "HTTP_IDEMPOTENCY_KEY"  # the header in request.META
# The routes whose POST creates something (URL names).
CREATING_ROUTES = frozenset(
    {
        "auth-register",
        "participant-list",
        "event-list",
        "event-enrollments",
        "event-waitlist",
        "event-reports",
        "event-check-ins",
    }
)
# Of those, the ones anyone may call: their keys belong to the address.
ANONYMOUS_ROUTES = frozenset({"auth-register"})
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as the draft's examples
# How long a request may hold its key before a retry may run it again (it died, say).
IN_PROGRESS_SECONDS = 60
_KEPT_HEADERS = ("Content-Type", "Location")


class IdempotencyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        key = request.META.get(META_KEY)
        if key is None or request.method != "POST":
            return self.get_response(request)
        route = _route(request)
        if route not in CREATING_ROUTES:
            return self.get_response(request)
        owner = _owner(request, anonymous_allowed=route in ANONYMOUS_ROUTES)
        if owner is None:  # no valid token where one is needed: the view answers 401 itself
            return self.get_response(request)
        if not _VALID_KEY.match(key):
            return problem_response(
                400,
                "validation_error",
                "The request is invalid.",
                errors={HEADER: ["Use 1 to 255 visible ASCII characters."]},
            )
        try:
            body = request.body
        except RequestDataTooBig:
            return problem_response(413, "payload_too_large", "The request body is too large.")
        fingerprint = hashlib.sha256(request.path.encode() + b"\n" + body).hexdigest()
        slot = f"idempotency:{hashlib.sha256(f'{owner}|{key}'.encode()).hexdigest()}"

        taken = _take(slot, fingerprint)
        if taken is not None:
            return taken
        try:
            response = self.get_response(request)
        except BaseException:
            cache.delete(slot)
            raise
        if response.status_code >= 500 or response.status_code == 429 or response.streaming:
            cache.delete(slot)  # not an answer to replay: a retry runs again
            return response
        kept = {
            "state": "done",
            "fingerprint": fingerprint,
            "status": response.status_code,
            "content": response.content,
            "headers": {name: response[name] for name in _KEPT_HEADERS if response.has_header(name)},
        }
        cache.set(slot, kept, settings.IDEMPOTENCY_TTL_SECONDS)
        return response


def _take(slot: str, fingerprint: str) -> HttpResponse | None:
    """None once this request holds the key's slot; else the answer for a key already taken, or
    503 when the cache keeps nothing (it is down: the cache swallows its errors, so nothing can be
    told apart from a key taken a moment ago and gone). A slot that expired between the two calls
    is taken on the second try; asking again for ever spun while the cache was away."""
    for _ in range(2):
        if cache.add(slot, {"state": "running", "fingerprint": fingerprint}, IN_PROGRESS_SECONDS):
            return None
        answer = _answer_from(cache.get(slot), fingerprint)
        if answer is not None:
            return answer
    return problem_response(
        503,
        "service_unavailable",
        "Requests with an Idempotency-Key cannot be kept right now; retry in a moment.",
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)},
    )


def _route(request: HttpRequest) -> str | None:
    try:
        return resolve(request.path_info).url_name
    except Resolver404:
        return None


def _owner(request: HttpRequest, *, anonymous_allowed: bool) -> str | None:
    """Whose key it is: the account of a valid access token; on a route anyone may call (sign-up)
    without one, the address; else None."""
    scheme, _, raw = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme == "Bearer" and raw:
        access_token = api_settings.AUTH_TOKEN_CLASSES[0]  # the access token class the settings name
        try:
            return f"account:{access_token(raw.strip())[api_settings.USER_ID_CLAIM]}"
        except (TokenError, KeyError):
            pass
    if not anonymous_allowed:
        return None
    return f"address:{BaseThrottle().get_ident(request)}"  # type: ignore[arg-type]  # reads META only


def _answer_from(stored: Any, fingerprint: str) -> HttpResponse | None:
    """The answer for a key already taken; None when it expired meanwhile (then run as new)."""
    if stored is None:
        return None
    if stored["fingerprint"] != fingerprint:
        return problem_response(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was used for another request; use a new key for a new request.",
        )
    if stored["state"] == "running":
        return problem_response(
            409,
            "request_in_progress",
            "A request with this Idempotency-Key is still running; retry in a moment.",
            headers={"Retry-After": "1"},
        )
    response = HttpResponse(stored["content"], status=stored["status"])
    for name, value in stored["headers"].items():
        response[name] = value
    response["Idempotent-Replayed"] = "true"
    return response
