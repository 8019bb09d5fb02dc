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

Two misses are answered here instead (`plain_miss`), the pages everyone reloads during a rush: the
list's first page and an event's answer, each with no query at all. Every enrollment replaces the
cache's seats token, so beside a rush nearly every read finds its answer with older seats; it is
refreshed (`with_current_seats`: one query sets the stored answer's seat fields), which a miss
through Django's stack, DRF, its filters and its paginator would have built anew at about 2.3 ms
of a web worker's CPU (docs/architecture.md, Performance). A page not stored yet, or stored under
an older generation (an event was written), is built by `first_list_page` or `event_answer`:
the same bytes from the same serializer, order and page size, stored as the DRF view would
(`events.cache.read_through`: the tokens read before the database).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.urls import replace_query_param

from config.pagination import PageNumberPagination
from events import cache as event_cache
from events import selectors
from events.api.filters import DEFAULT_ORDER
from events.api.serializers import EventSerializer
from participants.authentication import stateless_user

# An event id the database's bigint holds (longer ones are DRF's to answer).
_EVENT_ID = re.compile(r"[0-9]{1,18}")

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


def _plain_reader(request: HttpRequest) -> Any | None:
    """The token user of a GET that DRF would answer with plain JSON, else None."""
    if request.method != "GET":
        return None
    meta = request.META
    if not _accepts_plain_json(meta.get("HTTP_ACCEPT", "")):
        return None
    return stateless_user(meta.get("HTTP_AUTHORIZATION", ""))


def _answer(request: HttpRequest, user: Any, body: bytes, *, detail: bool) -> HttpResponse:
    # The request log line names the account, as for DRF requests.
    request.user = user
    response = HttpResponse(body, content_type="application/json")
    response.headers["Allow"] = ALLOW_DETAIL if detail else ALLOW_LIST
    return response


def answer_identity(request: HttpRequest) -> str:
    """What a read's cached answer is stored under (events.cache): all that the answer depends on
    besides the database, so that two requests with the same identity have the same answer. Those
    are the scheme and host that its links are built with (DRF's pagination builds them with
    `build_absolute_uri`), the query as sent, and the path, script prefix included. The path comes
    last: it alone is decoded, and the others cannot hold the line break between them. (It was
    `build_absolute_uri()`, which normalises the same parts, for a tenth of a hit's CPU; requests
    that spell the same URL differently are now stored apart.)"""
    return f"{request.scheme}\n{request.get_host()}\n{request.META.get('QUERY_STRING', '')}\n{request.path}"


@dataclass(frozen=True)
class _Missed:
    """What `cached_event_read` found out before it missed, for `plain_miss` on the same request."""

    user: Any
    identity: str
    looked_up: event_cache.Lookup | None


def cached_event_read(request: HttpRequest, *, detail: bool) -> HttpResponse | None:
    """The cached answer of an event list or detail read, or None to let the DRF view answer."""
    user = _plain_reader(request)
    if user is None:
        return None
    identity = answer_identity(request)
    looked_up = event_cache.look_up(identity)
    body = None if looked_up is None else looked_up.answer
    if body is None:
        request.event_read_missed = _Missed(user, identity, looked_up)  # type: ignore[attr-defined]
        return None
    return _answer(request, user, body, detail=detail)


class _NoSuchEvent(Exception):
    """A detail read's event does not exist: nothing is stored, and DRF answers its 404."""


def plain_miss(request: HttpRequest, *, event_id: int | None = None) -> HttpResponse | None:
    """After `cached_event_read` missed: the list's first page (`event_id` None) or the event's
    answer, with no query, built and stored as the DRF view would; None for any other request, and
    for an event that does not exist. It uses the database."""
    if request.META.get("QUERY_STRING"):
        return None
    # What the read's `cached_event_read` found out: the token's user, and its round trip to the cache.
    missed: _Missed | None = getattr(request, "event_read_missed", None)
    if missed is None:
        user = _plain_reader(request)
        if user is None:
            return None
        missed = _Missed(user, answer_identity(request), None)
    user, identity = missed.user, missed.identity
    if event_id is None:
        # The list's URL for its next-page link, made only if the page is built (not refreshed).
        def build() -> bytes:
            return first_list_page(request.build_absolute_uri())

    else:
        build = functools.partial(event_answer, event_id)
    try:
        body = event_cache.read_through(identity, build, with_current_seats, missed.looked_up)
    except _NoSuchEvent:  # (event_answer's: nothing was stored)
        return None
    return _answer(request, user, body, detail=event_id is not None)


def first_list_page(url: str) -> bytes:
    """The event list's first page as the DRF view renders it for `url` (the list's absolute URL,
    no query): its count, the next page's link, no previous one, and the events in the list's
    default order, through EventSerializer; the same two queries (the count and the page)."""
    events = selectors.events().order_by(*DEFAULT_ORDER)
    size = PageNumberPagination.page_size
    count = events.count()
    row = _event_row()
    page = [row.to_representation(event) for event in events[:size]] if count else []
    next_link = replace_query_param(url, PageNumberPagination.page_query_param, 2) if count > size else None
    return JSONRenderer().render({"count": count, "next": next_link, "previous": None, "results": page})


def event_answer(event_id: int) -> bytes:
    """The event's answer as the DRF view renders it, through EventSerializer: one query."""
    event = selectors.events().filter(pk=event_id).first()
    if event is None:
        raise _NoSuchEvent(event_id)
    return JSONRenderer().render(_event_row().to_representation(event))


# In an answer (a list page, or one event) as EventSerializer renders it: where each event begins
# (its id comes first), and its seat fields (consecutive, in this order). Neither can match inside a
# string, where every quote is escaped.
_EVENT_START = re.compile(rb'\{"id":([0-9]+),')
_SEAT_FIELDS = re.compile(
    rb'"capacity":[0-9]+,"enrolled_count":[0-9]+,"seats_left":[0-9]+,"waitlist_count":[0-9]+'
)


def with_current_seats(answer: bytes) -> bytes | None:
    """`answer` (events rendered by EventSerializer, under an older seats token: events.cache) with
    each event's seat fields as the database has them now: one query instead of building the whole
    answer again. None when an event is gone or the answer is not of that shape (then it is built)."""
    starts = list(_EVENT_START.finditer(answer))
    seat_fields = list(_SEAT_FIELDS.finditer(answer))
    if len(starts) != len(seat_fields):
        return None
    for index, (start, fields) in enumerate(zip(starts, seat_fields, strict=True)):
        # Each event's seat fields lie between its start and the next event's.
        next_start = starts[index + 1].start() if index + 1 < len(starts) else len(answer)
        if not start.end() <= fields.start() < fields.end() <= next_start:
            return None
    current = selectors.seats_and_waiting([int(start[1]) for start in starts]) if starts else {}
    parts: list[bytes] = []
    done = 0
    for start, fields in zip(starts, seat_fields, strict=True):
        found = current.get(int(start[1]))
        if found is None:
            return None
        seats, waiting = found
        parts += (
            answer[done : fields.start()],
            b'"capacity":%d,"enrolled_count":%d,"seats_left":%d,"waitlist_count":%d'
            % (seats.capacity, seats.enrolled, seats.left, waiting),
        )
        done = fields.end()
    parts.append(answer[done:])
    return b"".join(parts)


@functools.cache
def _event_row() -> EventSerializer:
    """One EventSerializer for every page's rows: a new one per page built its fields again (the
    model's introspection), half the serializer's time. Its `to_representation` only reads them."""
    row = EventSerializer()
    row.fields  # noqa: B018 (built now, once)
    return row


def with_cached_reads(drf_view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """`drf_view` (EventViewSet's list or detail route) with `cached_event_read` in front of it,
    and `plain_miss` after it.

    The wrapper keeps the DRF view's attributes (`cls`, `actions`, `initkwargs`, `csrf_exempt`), which
    the router and the OpenAPI schema generation read.
    """

    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        detail = "pk" in kwargs
        response = cached_event_read(request, detail=detail)
        if response is None and not detail:
            response = plain_miss(request)
        elif response is None and _EVENT_ID.fullmatch(str(kwargs["pk"])):
            response = plain_miss(request, event_id=int(kwargs["pk"]))
        if response is not None:
            return response
        return drf_view(request, *args, **kwargs)

    functools.update_wrapper(view, drf_view)
    return view


# The same reads in front of Django's handler, for the WSGI servers (config/fastlane.py; the routes
# are declared in events/api/urls.py).
def list_in_fast_lane(request: HttpRequest, match: re.Match[str]) -> HttpResponse | None:
    return cached_event_read(request, detail=False)


def list_miss_in_fast_lane(request: HttpRequest, match: re.Match[str]) -> HttpResponse | None:
    return plain_miss(request)


def detail_miss_in_fast_lane(request: HttpRequest, match: re.Match[str]) -> HttpResponse | None:
    return plain_miss(request, event_id=int(match["event_id"]))


def detail_in_fast_lane(request: HttpRequest, match: re.Match[str]) -> HttpResponse | None:
    return cached_event_read(request, detail=True)
