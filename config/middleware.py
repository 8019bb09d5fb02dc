"""HTTP plumbing around every request: request ids, the request log line and metrics, the error shape."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.views.main import ERROR_FLAG
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect, QueryDict
from django.middleware.common import CommonMiddleware as DjangoCommonMiddleware
from django.utils.functional import empty

from config import dbconnections
from config.logging import current_request_id, log_info_line, request_id_for
from config.metrics import observe_http_request
from config.problems import is_problem, problem_response

# Loaded by every process that serves HTTP: persistent connections skip the health check's round
# trip when they were in use moments ago.
dbconnections.install()

request_log = logging.getLogger("http.request")
error_log = logging.getLogger("http.error")

REQUEST_ID_HEADER = "X-Request-ID"

# The Django admin is a browser UI: its error pages stay HTML, and it alone uses sessions, the
# session's user and messages.
_HTML_PREFIXES = ("/admin/",)


class RequestIdMiddleware:
    """Gives each request an id (echoed from X-Request-ID when sane), logs one line and counts it.

    The line carries method, path (without query string: it may hold a token), status, duration,
    user id and request id; never a header, body, password or token. The HTTP metrics the
    dashboard reads (config.metrics) are recorded here too, once, over the whole stack. Both are on
    every request's path, so this is written for speed: headers read from META, the log record
    built only when INFO is on, the metric children looked up in a dictionary.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        request_id = request_id_for(request.META)
        request.request_id = request_id  # type: ignore[attr-defined]
        token = current_request_id.set(request_id)
        try:
            response = self.get_response(request)
            match = request.resolver_match
            record_answer(
                request, response, request_id, started, match.view_name if match is not None else None
            )
            return response
        finally:
            current_request_id.reset(token)


def record_answer(
    request: HttpRequest, response: HttpResponseBase, request_id: str, started: float, view_name: str | None
) -> None:
    """Stamps the answer with its request id, counts it in the HTTP metrics and writes its log line
    (also for answers of config.fastlane, which Django's middleware never sees)."""
    response.headers[REQUEST_ID_HEADER] = request_id
    duration = time.perf_counter() - started
    method = request.method or ""
    status = response.status_code
    observe_http_request(view_name, request.is_secure(), method, status, duration)
    if request_log.isEnabledFor(logging.INFO):
        fields = {
            "method": method,
            "path": request.path,
            "status": status,
            "duration_ms": round(duration * 1000, 2),
            "user_id": _user_id(request),
        }
        log_info_line(request_log, "request", request_id, fields)


def _user_id(request: HttpRequest) -> Any:
    """The id of the request's account, without loading one that nothing in the request asked for.

    DRF puts the account it authenticated on the request; the admin's session user is a lazy
    object, evaluated by the admin itself. An unevaluated lazy user was never needed: None.
    """
    user = request.__dict__.get("user")
    if user is None:
        return None
    if getattr(user, "_wrapped", None) is empty:
        return None
    return user.pk if user.is_authenticated else None


def _is_admin_path(request: HttpRequest) -> bool:
    return request.path_info.startswith(_HTML_PREFIXES)


class AdminSessionMiddleware(SessionMiddleware):
    """Sessions for the admin only: the API authenticates with bearer tokens and sets no cookie."""

    def __call__(self, request: HttpRequest) -> HttpResponse:  # type: ignore[override]
        if _is_admin_path(request):
            return super().__call__(request)  # type: ignore[return-value]
        return self.get_response(request)  # type: ignore[return-value]


class AdminAuthenticationMiddleware(AuthenticationMiddleware):
    """The session's user, for the admin only (API views get theirs from DRF's authentication)."""

    def __call__(self, request: HttpRequest) -> HttpResponse:  # type: ignore[override]
        if _is_admin_path(request):
            return super().__call__(request)  # type: ignore[return-value]
        return self.get_response(request)  # type: ignore[return-value]


class AdminMessageMiddleware(MessageMiddleware):
    """Django's messages, for the admin's pages only."""

    def __call__(self, request: HttpRequest) -> HttpResponse:  # type: ignore[override]
        if _is_admin_path(request):
            return super().__call__(request)  # type: ignore[return-value]
        return self.get_response(request)  # type: ignore[return-value]


class AdminInputMiddleware:
    """The admin's malformed input answered as such rather than with a 500, for every registered
    admin alike (Django's groups and the token blacklist's included), which Django leaves to each.

    - A NUL character in any parameter: 400. PostgreSQL refuses one in a query, and no name,
      address or text here holds one.
    - A selected object's id that no object of the list's model can have (`_selected_action`,
      posted by the list's actions): 400, where the action would have failed building its query.
    - A list filtered by a part of a date that no date has (`date__year=9999`, a month of twenty
      digits): Django's own answer to a filter it refuses, the list without its filters (`?e=1`).
      Django checks each lookup as it builds the query, but a year's bounds are computed only when
      the query is compiled (year + 1), and its date hierarchy catches only part of what reading
      one raises: both were 500s.
    Whenever a list with parameters is sent to `?e=1`, by Django or by this, it says so: Django's
    own redirect shows the plain list without a word, and an admin could take it for the filtered
    one.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        redirected = response.status_code == 302 and response.get("Location") == _invalid_list(request)
        if redirected and _is_list_with_parameters(request):
            named = ", ".join(sorted(name for name in request.GET if name != ERROR_FLAG))
            messages.warning(
                request,
                f"The list could not be shown with {named}: a value is malformed or out of range, or "
                "the page no longer exists. It is shown whole instead.",
                fail_silently=True,
            )
        return response

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        if not _is_admin_path(request):
            return None
        if _holds_nul(request.GET) or (request.method == "POST" and _holds_nul(request.POST)):
            raise BadRequest("A NUL character in the request's parameters.")
        model_admin = getattr(view, "model_admin", None)  # set on each of a ModelAdmin's views
        if model_admin is not None and request.method == "POST":
            primary_key = model_admin.model._meta.pk
            for value in request.POST.getlist(ACTION_CHECKBOX_NAME):
                try:
                    primary_key.clean(value, None)  # its type, and its range on this database
                except ValidationError:
                    raise BadRequest("A selected object's id is not an id of the list's model.") from None
        if _is_list_with_parameters(request) and not all(
            _is_possible_date_part(name, value) for name, values in request.GET.lists() for value in values
        ):
            return HttpResponseRedirect(_invalid_list(request))
        return None


def _invalid_list(request: HttpRequest) -> str:
    """Where Django's changelist sends a request whose filters it refuses: the list, flagged."""
    return f"{request.path}?{ERROR_FLAG}=1"


def _holds_nul(parameters: QueryDict) -> bool:
    return any(
        "\x00" in key or any("\x00" in value for value in values) for key, values in parameters.lists()
    )


def _is_list_with_parameters(request: HttpRequest) -> bool:
    """A GET of a model's list in the admin, with parameters, not already sent to `?e=1`."""
    match = request.resolver_match
    return (
        request.method in ("GET", "HEAD")
        and bool(request.GET)
        and ERROR_FLAG not in request.GET
        and match is not None
        and _is_admin_path(request)
        and getattr(match.func, "model_admin", None) is not None
        and (match.url_name or "").endswith("_changelist")
    )


# The years a year filter may name: a year's bounds run to the next one, and dates end in 9999.
_FILTERABLE_YEARS = range(1, 9999)
# Any other part of a date or time named in a filter (month, day, week, hour, …): Django answers one
# out of its range with no rows, or refuses it itself, as long as it is a small integer.
_FILTERABLE_PARTS = range(-(10**6), 10**6)
_DATE_PARTS = ("month", "day", "week", "week_day", "iso_week_day", "quarter", "hour", "minute", "second")


def _is_possible_date_part(name: str, value: str) -> bool:
    """False for a filter on a part of a date with a value that part cannot have."""
    part = name.rpartition("__")[2]
    if part in ("year", "iso_year"):
        allowed = _FILTERABLE_YEARS
    elif part in _DATE_PARTS:
        allowed = _FILTERABLE_PARTS
    else:
        return True
    try:
        return int(value) in allowed
    except ValueError:
        return True  # not a number: Django refuses it itself, as it builds the query


class CommonMiddleware(DjangoCommonMiddleware):
    """Django's, except that only a GET or a HEAD is redirected to its path with a slash appended.
    Any other method would lose its body on the way (clients follow a 301 with a GET), and Django
    refuses to redirect it anyway when DEBUG is on (a RuntimeError: an unlogged 500): a `POST
    /api/v1/events` answers 404 in the problem shape instead, like any other unknown path."""

    def should_redirect_with_slash(self, request: HttpRequest) -> bool:
        return request.method in ("GET", "HEAD") and super().should_redirect_with_slash(request)


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
