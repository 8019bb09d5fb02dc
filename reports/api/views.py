from __future__ import annotations

from typing import cast

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from participants.domain import normalize_email
from participants.models import User
from participants.permissions import IsAdmin
from reports import selectors, services
from reports.api.serializers import ReportRequestSerializer, ReportSerializer
from reports.domain import Status


class EventReportsView(generics.GenericAPIView):
    """POST: asks the reports worker for a participant report of the event (answers at once, 202)."""

    permission_classes = [IsAdmin]
    serializer_class = ReportRequestSerializer

    @extend_schema(request=ReportRequestSerializer, responses={202: ReportSerializer})
    def post(self, request: Request, event_id: int) -> Response:
        serializer = self.get_serializer(data=request.data)  # an empty body is {}; JSON null is refused
        serializer.is_valid(raise_exception=True)
        admin = cast(User, request.user)
        recipients = serializer.validated_data.get("recipients") or [admin.email]
        report = services.request_report(
            event_id=event_id,
            requested_by_id=admin.pk,
            recipients=[normalize_email(r) for r in recipients],
        )
        return Response(ReportSerializer(report).data, status=status.HTTP_202_ACCEPTED)


class ReportViewSet(viewsets.ReadOnlyModelViewSet):
    """Reports, newest first; `?event=<id>` narrows to one event."""

    permission_classes = [IsAdmin]
    serializer_class = ReportSerializer
    queryset = selectors.reports()
    filterset_fields = ["event"]

    @extend_schema(
        responses={200: OpenApiResponse(OpenApiTypes.BINARY, description="The report document (JSON).")}
    )
    @action(detail=True, methods=["get"])
    def download(self, request: Request, pk: str | None = None) -> FileResponse:
        report = self.get_object()
        if report.status != Status.DONE or not report.document:
            raise services.ReportNotReady()
        return FileResponse(
            report.document.open("rb"),
            as_attachment=True,
            filename=report.filename,
            content_type="application/json",
        )
