"""Check-in at the door: an admin (or the scanner an admin signed in) presents a participant's
check-in code, `POST /api/v1/events/{id}/check-ins/ {code}`, and the first check-in is recorded.

The rules (which code belongs to whom, cancelled codes, the first time winning) are
events.services.check_in's; this module reads the body and shapes the answers."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.serializers import StrictSerializer
from events import domain, services
from events.api.serializers import WaitlistParticipantSerializer
from events.models import Enrollment
from participants.permissions import IsAdmin


class CheckinRequestSerializer(StrictSerializer):
    """The code presented at the door."""

    code = serializers.CharField(
        max_length=domain.CHECKIN_CODE_MAX_LENGTH,
        # The schema states the same pattern, so every text it admits is looked up.
        validators=[RegexValidator(domain.CHECKIN_CODE_AS_TYPED, domain.NOT_A_CHECKIN_CODE)],
        help_text="The participant's check-in code, as printed in the confirmation e-mail or read from "
        "its QR code. Case, spaces and dashes do not matter: `abcd efgh-ijkl mnop` is `ABCDEFGHIJKLMNOP`.",
    )

    def validate_code(self, value: str) -> str:
        return domain.normalize_checkin_code(value)


class CheckinSerializer(serializers.Serializer):
    """Who checked in (to greet them and match their badge), and when."""

    # The participant is an object, as in the other admin answers that name a person (the waiting
    # list): the door has no time for a second request to learn a name.
    participant = WaitlistParticipantSerializer(read_only=True)
    checked_in_at = serializers.DateTimeField(read_only=True)


class EventCheckinsView(APIView):
    """POST: check a participant in with their code (admins)."""

    permission_classes = [IsAdmin]

    @extend_schema(
        request=CheckinRequestSerializer,
        responses={201: CheckinSerializer},
        examples=[
            OpenApiExample("A code as printed", value={"code": "ABCD-EFGH-IJKL-MNOP"}, request_only=True),
            OpenApiExample(
                "Checked in",
                value={
                    "participant": {"id": 42, "email": "ann.lee@example.com", "full_name": "Ann Lee"},
                    "checked_in_at": "2031-03-12T09:48:05.123456Z",
                },
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    def post(self, request: Request, event_id: int) -> Response:
        body = CheckinRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        enrollment: Enrollment = services.check_in(event_id=event_id, code=body.validated_data["code"])
        answer: dict[str, Any] = CheckinSerializer(enrollment).data
        return Response(answer, status=status.HTTP_201_CREATED)
