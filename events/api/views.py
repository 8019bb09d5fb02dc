from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import get_script_prefix, get_urlconf, reverse
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status, viewsets
from rest_framework.exceptions import APIException, NotAuthenticated, NotFound, ParseError, PermissionDenied
from rest_framework.permissions import SAFE_METHODS, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication

from config.exceptions import problem_exception_handler
from events import admission, domain, selectors, services
from events import cache as event_cache
from events.api.filters import EventFilter
from events.api.reads import answer_identity, with_cached_reads, with_current_seats
from events.api.serializers import (
    EnrollmentSerializer,
    EnrollmentStatusSerializer,
    EnrollRequestSerializer,
    EventParticipantSerializer,
    EventSerializer,
    MyEnrollmentSerializer,
    QueuedEnrollmentSerializer,
    WaitlistEntrySerializer,
    WaitlistPlaceSerializer,
)
from events.models import AdmissionRequest, Enrollment, Event
from participants import selectors as participant_selectors
from participants.authentication import CachedStatelessJWTAuthentication, stateless_user
from participants.domain import Role
from participants.models import User
from participants.permissions import IsAdmin, IsAdminOrReadOnly, IsParticipant, signed_in_user_id


def _cached(request: Request, build: Any) -> HttpResponse:
    """Serves a read from the event cache; `build` produces the DRF response on a miss."""
    missed = getattr(request, "event_read_missed", None)  # (the fast path's round trip, if it made one)
    body = event_cache.read_through(
        answer_identity(request),
        lambda: JSONRenderer().render(build().data),
        with_current_seats,
        None if missed is None else missed.looked_up,
    )
    return HttpResponse(body, content_type="application/json")


class EventViewSet(viewsets.ModelViewSet):
    """Events: every signed-in user reads, admins write. Reads are cached, writes invalidate."""

    permission_classes = [IsAdminOrReadOnly]
    serializer_class = EventSerializer
    # <id:...>, as the other routes: DRF's default took "٣" for 3 (the router is path-based).
    lookup_value_converter = "id"
    filterset_class = EventFilter
    queryset = selectors.events()

    def get_authenticators(self) -> list[Any]:
        # Reading events needs a valid signed token, not a database round trip: the hottest
        # endpoint stays cheap (see CachedStatelessJWTAuthentication for the trade-off).
        # (Schema generation, with no or a fake request, documents the API's one Bearer scheme.)
        schema = self.request is None or getattr(self, "swagger_fake_view", False)
        if not schema and self.request.method in SAFE_METHODS:
            return [CachedStatelessJWTAuthentication()]
        return super().get_authenticators()

    @classmethod
    def as_view(cls, actions: Any = None, **initkwargs: Any) -> Any:  # type: ignore[override]
        view = super().as_view(actions, **initkwargs)
        # Cache hits of the list and detail are answered without DRF (events/api/reads.py).
        if actions and actions.get("get") in ("list", "retrieve"):
            return with_cached_reads(view)
        return view

    # Cached reads answer with the stored bytes (an HttpResponse), not a DRF Response.
    def list(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:  # type: ignore[override]
        return _cached(request, lambda: super(EventViewSet, self).list(request, *args, **kwargs))

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:  # type: ignore[override]
        return _cached(request, lambda: super(EventViewSet, self).retrieve(request, *args, **kwargs))

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        serializer.instance = services.create_event(**serializer.validated_data)

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        instance = serializer.instance
        assert instance is not None
        serializer.instance = services.update_event(event_id=instance.pk, **serializer.validated_data)

    def perform_destroy(self, instance: Event) -> None:
        services.delete_event(event_id=instance.pk)


class PayloadTooLarge(APIException):
    status_code = 413
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


def _acting_for(request: Request, data: Any) -> User:
    """Whom a participant's or an admin's request is for: participants act for themselves (no body),
    admins name the participant (`{participant: id}`)."""
    user: User = request.user  # type: ignore[assignment]
    # A participant naming anyone else is refused before the name is looked up: one answer
    # whatever the id, so that participants cannot learn which ids exist.
    named_raw = data.get("participant") if isinstance(data, dict) else None
    if user.role != Role.ADMIN and named_raw is not None and str(named_raw) != str(user.pk):
        raise PermissionDenied("Participants can only act for themselves.")
    serializer = EnrollRequestSerializer(data=data)  # an empty body is {}; JSON null is refused
    serializer.is_valid(raise_exception=True)
    named: User | None = serializer.validated_data.get("participant")
    if user.role == Role.ADMIN:
        if named is None:
            raise serializers.ValidationError({"participant": ["Admins must name the participant."]})
        return named
    if named is not None and named.pk != user.pk:
        raise PermissionDenied("Participants can only act for themselves.")
    return user


class EventEnrollmentsView(generics.GenericAPIView):
    """POST: a participant enrolls themself (no body); an admin enrolls `{participant: id}`.
    A direct event answers 201 (or 409); a queued event answers 202: the request is queued and
    decided in arrival order (GET enrollments/me/ tells the outcome).

    The rush's hottest route, so POST skips DRF's request and response machinery (content
    negotiation, parsers, renderers, permission classes): the same JWT authentication and account
    check, the same rules and problem+json answers (DRF's own exceptions, through the same handler),
    and the request log line and metrics of the middleware. The class stays a DRF view so the
    OpenAPI schema still describes it."""

    permission_classes = [IsAuthenticated]
    serializer_class = EnrollRequestSerializer
    _authentication = JWTAuthentication()

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method != "POST":
            return super().dispatch(request, *args, **kwargs)  # 405 and OPTIONS, as DRF answers them
        return _answering_problems(lambda: self._enroll(request, event_id=kwargs["event_id"]))

    def _enroll(self, request: HttpRequest, *, event_id: int) -> HttpResponse:
        try:
            body = _json_body(request)
        except (ParseError, PayloadTooLarge):
            body = None  # answered below, after the authentication, as always
        if body == {}:
            fast = _enroll_token_participant(request, event_id=event_id)
            if fast is not None:
                return fast
        found = self._authentication.authenticate(request)  # type: ignore[arg-type]
        if found is None:
            raise NotAuthenticated()
        request.user = cast(User, found[0])  # the request log's user id
        if body is None:
            body = _json_body(request)  # raises the parse error again
        participant = _acting_for(request, body)  # type: ignore[arg-type]
        result = admission.enroll_or_queue(event_id=event_id, participant_id=participant.pk)
        return _enrollment_answer(result, event_id=event_id)

    @extend_schema(
        request=EnrollRequestSerializer,
        responses={201: EnrollmentSerializer, 202: QueuedEnrollmentSerializer},
    )
    def post(self, request: Request, event_id: int) -> Response:
        raise AssertionError("served by dispatch()")  # here for the schema only


_Answer = TypeVar("_Answer", bound=HttpResponse | None)


def _enroll_token_participant(request: HttpRequest, *, event_id: int) -> HttpResponse | None:
    """The rush's usual request, a participant enrolling themself (no body), without the query
    that loads the account: the signed token gives the id, and the seat's own statement on a
    direct event (events.services.enroll's `check_account`), or the request's insert on a
    queued one (events.admission.request_admission's), checks that the account is an active
    participant's, so a deactivated account or one made admin is refused as at once as before.
    None for anything else, and for an account that check refuses: the caller then
    authenticates the usual way, which answers exactly as before (401, or an admin's 400)."""
    user = stateless_user(request.META.get("HTTP_AUTHORIZATION", ""))
    if user is None:
        return None
    request.user = user  # the request log's user id (also for a refusal's problem answer)
    try:
        result = admission.enroll_or_queue(event_id=event_id, participant_id=user.pk, check_account=True)
    except DjangoPermissionDenied:
        return None
    return _enrollment_answer(result, event_id=event_id)


def enroll_in_fast_lane(request: HttpRequest, match: re.Match[str]) -> HttpResponse | None:
    """The rush's usual request in front of Django's handler (config/fastlane.py): a participant
    enrolling themself, without a body. Answers as EventEnrollmentsView does (201, 202, or the
    problem of a full, closed or unknown event); None for a body, an admin, no or a bad token, or an
    account the statement refuses, and Django serves the request through EventEnrollmentsView."""
    meta = request.META
    if meta.get("CONTENT_LENGTH") not in (None, "", "0") or "HTTP_TRANSFER_ENCODING" in meta:
        return None
    return _answering_problems(lambda: _enroll_token_participant(request, event_id=int(match["event_id"])))


def _answering_problems(answer: Callable[[], _Answer]) -> _Answer | HttpResponse:
    """`answer()`, or the problem+json answer of the API error it raised (DRF's exceptions, through
    the API's exception handler). Any other exception propagates: the middleware (or the fast lane)
    logs it and answers 500."""
    try:
        return answer()
    except Exception as exc:
        problem = problem_exception_handler(exc, {})
        if problem is None:
            raise
        return problem


def _enrollment_answer(result: Enrollment | AdmissionRequest, *, event_id: int) -> HttpResponse:
    """201 with the enrollment, or 202 with the queued request and where to ask for its outcome."""
    if isinstance(result, Enrollment):
        return JsonResponse(_enrollment_body(result), status=status.HTTP_201_CREATED)
    response = JsonResponse(_queued_body(result), status=status.HTTP_202_ACCEPTED)
    response["Location"] = _status_location(get_script_prefix(), get_urlconf(), event_id)
    return response


# The 201's and the 202's fields, formatted by the same fields as EnrollmentSerializer's and
# QueuedEnrollmentSerializer's (which describe the answers in the schema): building a serializer per
# answer cost a rush's request about 100 us of its few hundred, copying its fields. The tests of
# the fast paths (tests/e2e/test_*_fast_path.py) hold each answer to its serializer's bytes.
_DATETIME = serializers.DateTimeField(read_only=True)


def _enrollment_body(enrollment: Enrollment) -> dict[str, Any]:
    return {
        "id": int(enrollment.pk),
        "event": int(enrollment.event_id),
        "participant": int(enrollment.participant_id),
        "created_at": _DATETIME.to_representation(enrollment.created_at),
    }


def _queued_body(request: AdmissionRequest) -> dict[str, Any]:
    return {
        "status": str(request.status),
        "event": int(request.event_id),
        "participant": int(request.participant_id),
        "queued_at": _DATETIME.to_representation(request.queued_at),
    }


@functools.lru_cache(maxsize=4096)
def _status_location(prefix: str, urlconf: str | None, event_id: int) -> str:
    """The enrollment status route of an event (a rush asks for the same one thousands of times:
    `reverse` costs about 50 us). Keyed by what `reverse` depends on besides the event."""
    return reverse("event-enrollment-me", kwargs={"event_id": event_id})


def _json_body(request: HttpRequest) -> Any:
    """The request's JSON body, {} when empty (as DRF reads it); 400 when not JSON, 413 when over
    the limit."""
    try:
        body = request.body
    except RequestDataTooBig as exc:
        raise PayloadTooLarge() from exc
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ParseError(f"JSON parse error - {exc}") from exc
    except RecursionError as exc:  # nested deeper than the parser goes: malformed, not a 500
        raise ParseError("JSON parse error - the document is nested too deeply.") from exc


class MyEnrollmentView(APIView):
    """GET: where the participant's enrollment stands (pending, confirmed, waitlisted).
    DELETE: a participant cancels their own enrollment."""

    permission_classes = [IsParticipant]

    @extend_schema(responses={200: EnrollmentStatusSerializer})
    def get(self, request: Request, event_id: int) -> Response:
        found = selectors.enrollment_status(event_id=event_id, participant_id=signed_in_user_id(request))
        if found is None:
            if not selectors.event_exists(event_id):
                raise services.EventNotFound()
            raise domain.NoAdmissionRequest()
        return Response(EnrollmentStatusSerializer(found).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, event_id: int) -> Response:
        services.cancel_enrollment(event_id=event_id, participant_id=signed_in_user_id(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class EventWaitlistView(generics.ListAPIView):
    """POST: join a full event's waiting list (participants for themselves, admins `{participant}`).
    GET: the waiting list in order (admins)."""

    serializer_class = WaitlistEntrySerializer

    def get_permissions(self) -> list[Any]:
        return [IsAuthenticated()] if self.request.method == "POST" else [IsAdmin()]

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no URL kwargs
            return selectors.waitlist(event_id=0)
        event_id = self.kwargs["event_id"]
        if not selectors.event_exists(event_id):
            raise NotFound("No event with this id.")
        return selectors.waitlist(event_id=event_id)

    @extend_schema(request=EnrollRequestSerializer, responses={201: WaitlistPlaceSerializer})
    def post(self, request: Request, event_id: int) -> Response:
        participant = _acting_for(request, request.data)
        place = services.join_waitlist(event_id=event_id, participant_id=participant.pk)
        return Response(WaitlistPlaceSerializer(place).data, status=status.HTTP_201_CREATED)


class MyWaitlistView(APIView):
    """GET: the participant's place on the waiting list. DELETE: leave it."""

    permission_classes = [IsParticipant]

    @extend_schema(responses={200: WaitlistPlaceSerializer})
    def get(self, request: Request, event_id: int) -> Response:
        place = selectors.waitlist_place(event_id=event_id, participant_id=signed_in_user_id(request))
        if place is None:
            if not selectors.event_exists(event_id):
                raise services.EventNotFound()
            raise domain.NotWaitlisted()
        return Response(WaitlistPlaceSerializer(place).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, event_id: int) -> Response:
        services.leave_waitlist(event_id=event_id, participant_id=signed_in_user_id(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class EventParticipantsView(generics.ListAPIView):
    """The event's participants in enrollment order (admins)."""

    permission_classes = [IsAdmin]
    serializer_class = EventParticipantSerializer

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no URL kwargs
            return selectors.event_enrollments(event_id=0)
        event_id = self.kwargs["event_id"]
        if not selectors.events().filter(pk=event_id).exists():
            raise NotFound("No event with this id.")
        return selectors.event_enrollments(event_id=event_id)


class EventParticipantView(APIView):
    """DELETE: an admin takes a participant off the event, freeing the seat."""

    permission_classes = [IsAdmin]

    @extend_schema(responses={204: None})
    def delete(self, request: Request, event_id: int, participant_id: int) -> Response:
        services.remove_participant(event_id=event_id, participant_id=participant_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MyEnrollmentsView(generics.ListAPIView):
    """The signed-in user's enrollments, each with its event."""

    permission_classes = [IsAuthenticated]
    serializer_class = MyEnrollmentSerializer

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: nobody is signed in
            return selectors.participant_enrollments(participant_id=0)
        return selectors.participant_enrollments(participant_id=signed_in_user_id(self.request))


class ParticipantEventsView(generics.ListAPIView):
    """The events a participant is enrolled in (admins)."""

    permission_classes = [IsAdmin]
    serializer_class = EventSerializer

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no URL kwargs
            return selectors.events().none()
        participant = get_object_or_404(
            participant_selectors.participants(), pk=self.kwargs["participant_id"]
        )
        return selectors.participant_events(participant_id=participant.pk)
