"""HTTP plumbing around every request: request ids, the request log line, the error shape."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse

from config.logging import current_request_id
from config.problems import is_problem, problem_response

request_log = logging.getLogger("http.request")
error_log = logging.getLogger("http.error")

REQUEST_ID_HEADER = "X-Request-ID"
# A client's id is echoed only when it is short and harmless in logs and headers.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# The Django admin is a browser UI: its error pages stay HTML.
_HTML_PREFIXES = ("/admin/",)


class RequestIdMiddleware:
    """Gives each request an id (echoed from X-Request-ID when sane) and logs one line for it.

    The line carries method, path (without query string: it may hold a token), status, duration,
    user id and request id; never a header, body, password or token.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        token = current_request_id.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request_id
            user = getattr(request, "user", None)
            request_log.info(
                "request",
                extra={
                    "fields": {
                        "method": request.method,
                        "path": request.path,
                        "status": response.status_code,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        "user_id": user.pk if user is not None and user.is_authenticated else None,
                    }
                },
            )
            return response
        finally:
            current_request_id.reset(token)


class ProblemDetailsMiddleware:
    """Makes every error outside the admin answer in the contract's problem+json shape.

    DRF views already answer that way (config.exceptions); this catches the rest: unknown routes,
    Django's own 404/405/400 pages, and any uncaught exception, which becomes a 500 without a trace.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code >= 400 and not is_problem(response) and not _wants_html(request):
            headers = {"Allow": response["Allow"]} if response.has_header("Allow") else None
            return problem_response(response.status_code, headers=headers)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if _wants_html(request):
            return None
        if isinstance(exception, Http404):
            return problem_response(404)
        if isinstance(exception, PermissionDenied):
            return problem_response(403)
        if isinstance(exception, SuspiciousOperation):
            return problem_response(400, "bad_request", "The request was rejected as malformed.")
        error_log.error("Unhandled exception on %s %s", request.method, request.path, exc_info=exception)
        return problem_response(500)


def _wants_html(request: HttpRequest) -> bool:
    return request.path.startswith(_HTML_PREFIXES)
