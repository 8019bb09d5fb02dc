"""Calendar files over the API: one event's `.ics`, and each account's personal feed.

The feed is for calendar apps, which subscribe to a URL and cannot send a bearer header, so the URL
carries a secret: `/api/v1/calendar/feed.ics?token=…`. In the query string, not the path: the
request log line writes the path only, and the servers' access logs redact `token=` parameters
(config/redaction.py), so the secret reaches no log. The token opens this feed and nothing else: no
authentication class reads it, and the feed view reads no other credential. An unknown, rotated or
missing token answers 404, like an address that does not exist.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from events import selectors, services
from notifications import calendar
from notifications.services import event_context
from participants import selectors as participant_selectors
from participants import services as participant_services
from participants.permissions import signed_in_user_id

CALENDAR_CONTENT_TYPE = "text/calendar; charset=utf-8"
# What participants.services makes (token_urlsafe), with room: anything else is not a token.
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ICalendarRenderer(BaseRenderer):
    """The files' media type, for the schema; the views answer the file themselves, and errors
    stay problem+json (the exception handler answers them directly)."""

    media_type = "text/calendar"
    format = "ics"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> Any:
        return data


class WhateverIsAccepted(BaseContentNegotiation):
    """The answer is a calendar file whatever the client's Accept says: calendar apps send all sorts
    (`text/calendar`, `*/*`, nothing), and none of them should get a 406 instead of the feed."""

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: Any, format_suffix: Any = None) -> Any:
        return renderers[0], renderers[0].media_type


def _ics_response(text: str, *, filename: str | None = None) -> HttpResponse:
    response = HttpResponse(text.encode("utf-8"), content_type=CALENDAR_CONTENT_TYPE)
    if filename:
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"  # personal, and a read must show the latest
    return response


ICS_RESPONSE = OpenApiResponse(
    response=OpenApiTypes.STR,
    description="An iCalendar file (RFC 5545), `METHOD:PUBLISH`: each event with its UID "
    "`event-{id}@{domain of DEFAULT_FROM_EMAIL}` (the same as in the e-mails), start and end in the "
    "platform's time zone (with its VTIMEZONE), location and SEQUENCE.",
)


class EventCalendarView(APIView):
    """GET: one event's calendar file, for any signed-in user."""

    permission_classes = [IsAuthenticated]
    renderer_classes = [ICalendarRenderer]
    content_negotiation_class = WhateverIsAccepted

    @extend_schema(
        operation_id="v1_events_calendar_retrieve", responses={(200, "text/calendar"): ICS_RESPONSE}
    )
    def get(self, request: Request, event_id: int) -> HttpResponse:
        event = selectors.events().filter(pk=event_id).first()
        if event is None:
            raise services.EventNotFound()
        text = calendar.render(calendar.PUBLISH, [(event.pk, event_context(event))])
        return _ics_response(text, filename=f"event-{event.pk}.ics")


class CalendarUrlSerializer(serializers.Serializer):
    url = serializers.URLField(
        read_only=True,
        help_text="Your calendar feed: subscribe to it in a calendar app. It is a secret: whoever "
        "has it sees your events. POST me/calendar/rotate/ replaces it.",
    )


def _feed_url(request: Request, token: str) -> str:
    return request.build_absolute_uri(f"{reverse('calendar-feed')}?{urlencode({'token': token})}")


class MyCalendarView(APIView):
    """GET: the URL of the caller's calendar feed (its token is made on the first call)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: CalendarUrlSerializer})
    def get(self, request: Request) -> Response:
        token = participant_services.calendar_token(user_id=signed_in_user_id(request))
        return Response(CalendarUrlSerializer({"url": _feed_url(request, token)}).data)


class MyCalendarRotateView(APIView):
    """POST: a new feed URL; the old one stops working at once. 200: the feed is the same resource
    at a new address, nothing is created."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={200: CalendarUrlSerializer})
    def post(self, request: Request) -> Response:
        request.data  # noqa: B018  # a body is not needed, but a malformed or oversized one is refused (400, 413)
        token = participant_services.rotate_calendar_token(user_id=signed_in_user_id(request))
        return Response(CalendarUrlSerializer({"url": _feed_url(request, token)}).data)


class CalendarFeedThrottle(SimpleRateThrottle):
    """Per client address, at the rate of the other routes anyone may call (sign-up, sign-in:
    AUTH_THROTTLE_RATE), counted on its own: a calendar app polling does not eat into sign-ins."""

    scope = "calendar_feed"

    def get_rate(self) -> str | None:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get("auth")
        return str(rate) if rate else None

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class CalendarFeedView(APIView):
    """GET ?token=…: the token's account's confirmed enrollments as a calendar. No other credential
    is read (a bearer header is ignored), and the token is read nowhere else."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes = [CalendarFeedThrottle]
    renderer_classes = [ICalendarRenderer]
    content_negotiation_class = WhateverIsAccepted

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code >= 400:
            # Django logs 4xx answers with the request on the record, and the request's repr has
            # the query string, token included. The request log line (path only) already has the
            # answer; this keeps the token off every record, whatever django.request's level.
            response._has_been_logged = True
        return response

    @extend_schema(
        operation_id="v1_calendar_feed_retrieve",
        parameters=[
            OpenApiParameter(
                "token",
                str,
                OpenApiParameter.QUERY,
                required=True,
                pattern=TOKEN_PATTERN.pattern,
                description="The feed's secret, as in the URL `GET me/calendar/` gives. Unknown, "
                "rotated or missing: 404.",
            )
        ],
        responses={(200, "text/calendar"): ICS_RESPONSE},
    )
    def get(self, request: Request) -> HttpResponse:
        token = request.query_params.get("token", "")
        if token and not TOKEN_PATTERN.fullmatch(token):  # ($ would let a final newline pass)
            raise ValidationError({"token": ["This is not a calendar feed token."]})
        account = participant_selectors.account_by_calendar_token(token)
        if account is None:
            raise NotFound("No calendar feed at this address.")
        enrollments = selectors.participant_enrollments(participant_id=account.pk)
        text = calendar.render(
            calendar.PUBLISH,
            [(e.event_id, event_context(e.event)) for e in enrollments],
            name="My events",
        )
        return _ics_response(text)
