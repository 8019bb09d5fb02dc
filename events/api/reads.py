"""The event reads' fast path: a cache hit answered by a plain Django view, without DRF.

`GET /api/v1/events/` (and `/events/{id}/`) answered from the cache costs one Redis round trip;
through DRF it also paid for the request wrapper, content negotiation, authentication and
permission classes and the response finalisation, about as much again. `cached_event_read` answers
only the case that needs none of them: a GET with a signed, unexpired access token (the checks of
`CachedStatelessJWTAuthentication`, participants/authentication.py) whose answer is in the cache
under the current generation (events/cache.py). It returns the stored bytes with the headers the
DRF view sends. Everything else (no or a bad token, another method, an `Accept` that only DRF's
negotiation can answer, a cache miss, Redis away) returns None: the caller then runs the DRF view,
which answers exactly as before (problem+json errors, and on a miss it builds and stores the answer).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from events import cache as event_cache
from participants.authentication import stateless_user

# What DRF sends besides the body: its `Allow` header, per route (no `Vary`: one renderer only).
ALLOW_LIST = "GET, POST, HEAD, OPTIONS"
ALLOW_DETAIL = "GET, PUT, PATCH, DELETE, HEAD, OPTIONS"

# Media ranges for which DRF's negotiation picks its one renderer (JSON) without a parameter that
# could change the rendering (`; indent=4`): anything else goes through DRF.
_JSON_RANGES = frozenset({"*/*", "application/*", "application/json"})


def _accepts_plain_json(accept: str) -> bool:
    if not accept:
        return True
    for media_range in accept.split(","):
        media_type, _, params = media_range.partition(";")
        if media_type.strip() in _JSON_RANGES:
            params = params.strip()
            if not params or params.startswith("q="):
                return True
    return False


def cached_event_read(request: HttpRequest, *, detail: bool) -> HttpResponse | None:
    """The cached answer of an event list or detail read, or None to let the DRF view answer."""
    if request.method != "GET":
        return None
    meta = request.META
    if not _accepts_plain_json(meta.get("HTTP_ACCEPT", "")):
        return None
    user = stateless_user(meta.get("HTTP_AUTHORIZATION", ""))
    if user is None:
        return None
    body = event_cache.cached_answer(request.build_absolute_uri())
    if body is None:
        return None
    # The request log line names the account, as for DRF requests.
    request.user = user
    response = HttpResponse(body, content_type="application/json")
    response.headers["Allow"] = ALLOW_DETAIL if detail else ALLOW_LIST
    return response


def with_cached_reads(drf_view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """`drf_view` (EventViewSet's list or detail route) with `cached_event_read` in front of it.

    The wrapper keeps the DRF view's attributes (`cls`, `actions`, `initkwargs`, `csrf_exempt`), which
    the router and the OpenAPI schema generation read.
    """

    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = cached_event_read(request, detail="pk" in kwargs)
        if response is not None:
            return response
        return drf_view(request, *args, **kwargs)

    functools.update_wrapper(view, drf_view)
    return view


# The same reads in front of Django's handler, for the WSGI servers (config/fastlane.py; the routes
# are declared in events/api/urls.py).
def list_in_fast_lane(request: HttpRequest, match: re.Match[str]) -> HttpResponse | None:
    return cached_event_read(request, detail=False)


def detail_in_fast_lane(request: HttpRequest, match: re.Match[str]) -> HttpResponse | None:
    return cached_event_read(request, detail=True)
