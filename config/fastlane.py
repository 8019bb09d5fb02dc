"""The fast lane: the hottest requests' usual case answered in front of Django's handler.

A cached event read, the platform's most frequent request, needs a signed token and one Redis round
trip (events/api/reads.py); a participant's own enrollment, the rush's request, one statement
(events.services). Through Django's handler each also paid for the request signals, URL resolution
over every route and a dozen middleware layers, none of which changes their answer: about 140 µs
of a cached read's 330 µs of CPU in-process, and more for the enrollment's deeper route
(docs/architecture.md, Performance).

`FastLane` wraps the WSGI application (config/wsgi.py). A request whose method and path match a
`FastRoute` (events/api/urls.py declares them) goes to that route's `answer`, which returns the
answer of the cases it recognises and None for everything else; Django then serves the request
exactly as before, so every other case keeps its usual answer. An answer from the lane gets what
the middleware stack would have given it:
- the stack's checks first: a Host not in ALLOWED_HOSTS, an HTTP request to redirect to HTTPS, a
  disallowed user agent, or a POST with an idempotency key (its replay is the idempotency
  middleware's) goes to Django;
- the same headers (security headers, X-Frame-Options, Content-Length, X-Request-ID), the request
  log line and the HTTP metrics, under the route's own name;
- for a route that uses the database, the request signals, which check and close its connections
  (for a route whose `miss` uses it, around that second answer only);
- an unexpected exception answers 500 and is logged, as the problem details middleware does, for a
  route that may have written; a read's goes back to Django, which serves it.
What the lane leaves out changes nothing for these routes: the admin's sessions, messages,
session user and input checks, CSRF (API views are exempt), unserved methods (only served ones are
routed), WhiteNoise (static files), and the request signals of a read, which uses no database
connection.

It stands in for exactly the stack of `REPLICATED_MIDDLEWARE`: with any other `MIDDLEWARE` the lane
stays shut and Django serves everything, and a test fails until the lane is reviewed for the change.
ASGI (`make run`) has no lane: the same views answer there through Django, as they always do.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest, get_script_name
from django.core.signals import request_finished, request_started
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import set_script_prefix
from django.utils.module_loading import import_string
from rest_framework.permissions import SAFE_METHODS

from config.idempotency import META_KEY
from config.logging import REQUEST_ID_META, current_request_id, request_id_for
from config.middleware import CommonMiddleware, ProblemDetailsMiddleware, record_answer

error_log = logging.getLogger("http.error")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# The MIDDLEWARE this lane stands in for (config/settings.py); see the module's docstring.
REPLICATED_MIDDLEWARE = (
    "config.middleware.RequestIdMiddleware",
    "config.middleware.ProblemDetailsMiddleware",
    "config.methods.UnservedMethodMiddleware",
    "config.idempotency.IdempotencyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.AdminSessionMiddleware",
    "config.middleware.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "config.middleware.AdminAuthenticationMiddleware",
    "config.middleware.AdminMessageMiddleware",
    "config.middleware.AdminInputMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
)


@dataclass(frozen=True)
class FastRoute:
    """A route the lane may answer: `method` and `path` (matched whole against PATH_INFO) must
    agree with the URLconf's route, whose name `view_name` labels the metrics as Django's would.
    `miss`: a second answer, tried when `answer` gave None, that uses the database (a read's
    answer built when the cache missed); the route's `answer` then uses none."""

    method: str
    path: re.Pattern[str]
    view_name: str
    answer: Callable[[HttpRequest, re.Match[str]], HttpResponse | None]
    uses_database: bool = False
    miss: Callable[[HttpRequest, re.Match[str]], HttpResponse | None] | None = None


def _unreachable(request: HttpRequest) -> HttpResponse:
    raise AssertionError("the lane calls the middlewares' hooks, never the rest of the stack")


class FastLane:
    """The WSGI application: the fast lane's routes, then Django (`app`) for every other request."""

    def __init__(self, app: WSGIApp, routes: Sequence[FastRoute] | None = None):
        self.app = app
        if routes is None:
            routes = import_string(settings.FAST_LANE_ROUTES)
        # Shut (no routes) unless the middleware stack is the one the lane stands in for.
        self.routes = tuple(routes) if tuple(settings.MIDDLEWARE) == REPLICATED_MIDDLEWARE else ()
        # The middlewares' own hooks, where the lane does what they do.
        self._security = SecurityMiddleware(_unreachable)
        self._common = CommonMiddleware(_unreachable)
        self._problems = ProblemDetailsMiddleware(_unreachable)
        # The hooks that add the stack's headers, in the order the stack runs them.
        self._response_hooks: tuple[Callable[[HttpRequest, Any], HttpResponseBase], ...] = (
            XFrameOptionsMiddleware(_unreachable).process_response,
            self._common.process_response,
            self._security.process_response,
        )

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        for route in self.routes:
            if route.method == method:
                match = route.path.fullmatch(environ.get("PATH_INFO", ""))
                # A retry with an idempotency key is the idempotency middleware's to replay.
                if match is not None and not (method == "POST" and META_KEY in environ):
                    answered = self._answer(route, match, environ, start_response)
                    if answered is not None:
                        return answered
                    break
        return self.app(environ, start_response)

    def _answer(
        self,
        route: FastRoute,
        match: re.Match[str],
        environ: dict[str, Any],
        start_response: Callable[..., Any],
    ) -> Iterable[bytes] | None:
        started = time.perf_counter()
        # What Django's handler does first: the script prefix, a request, and for a route that uses
        # the database the request signals (which check, and close when due, its connections).
        set_script_prefix(get_script_name(environ))
        request = WSGIRequest(environ)
        request_id = request_id_for(request.META)
        request.request_id = request_id  # type: ignore[attr-defined]
        token = current_request_id.set(request_id)
        signalled = route.uses_database
        if signalled:
            request_started.send(sender=self.__class__, environ=environ)
        answered = False
        try:
            # The stack's checks before any view: a bad Host, an HTTP request to redirect to HTTPS
            # or a disallowed user agent is Django's to answer (it raises or redirects again).
            try:
                if self._security.process_request(request) or self._common.process_request(request):
                    return None
            except Exception:  # noqa: BLE001
                return None
            try:
                response = route.answer(request, match)
                if response is None and route.miss is not None:
                    signalled = True
                    request_started.send(sender=self.__class__, environ=environ)
                    response = route.miss(request, match)
            except Exception as exc:
                if request.method not in SAFE_METHODS:  # it may have done its work: never twice
                    response = self._problems.process_exception(request, exc)
                else:
                    error_log.exception(
                        "The fast lane failed on %s %s; Django answers it", request.method, request.path
                    )
                    return None
            if response is None:
                return None
            answer: HttpResponseBase = response
            for process_response in self._response_hooks:
                answer = process_response(request, answer)
            record_answer(request, answer, request_id, started, route.view_name)
            answered = True
        finally:
            if signalled:
                request_finished.send(sender=self.__class__)
            current_request_id.reset(token)
            if not answered:  # Django serves it under the same id as the lane's log lines about it
                environ[REQUEST_ID_META] = request_id
        start_response(
            f"{answer.status_code} {answer.reason_phrase}",
            [*answer.items(), *(("Set-Cookie", c.output(header="")) for c in answer.cookies.values())],
        )
        return [cast(HttpResponse, answer).content]  # never streaming: the routes' answers and the hooks'
