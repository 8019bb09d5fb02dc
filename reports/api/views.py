from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from django.http import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from participants.domain import normalize_email
from participants.models import User
from participants.permissions import IsAdmin
from reports import selectors, services
from reports.api.serializers import ReportRequestSerializer, ReportSerializer
from reports.domain import ReportNotReady, Status
from reports.files import document_response
from reports.models import Report


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


class DownloadNegotiation(DefaultContentNegotiation):
    """`?format=gzip` chooses the stored file, not a renderer: without this, DRF's format override
    would answer 404 (no renderer is called "gzip"). Errors are still rendered as JSON."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderers = list(renderers)
        chosen = request.query_params.get("format")
        if chosen is not None and chosen not in ("json", "gzip"):
            raise ValidationError({"format": ["Must be json or gzip."]})
        if chosen in ("json", "gzip"):  # the stored file; errors are still JSON
            return renderers[0], str(renderers[0].media_type)
        return cast(tuple[BaseRenderer, str], super().select_renderer(request, renderers, format_suffix))


class ReportViewSet(viewsets.ReadOnlyModelViewSet):
    """Reports, newest first; `?event=<id>` narrows to one event."""

    permission_classes = [IsAdmin]
    serializer_class = ReportSerializer
    # <id:...>, as the other routes: DRF's default took "٣" for 3 (the router is path-based).
    lookup_value_converter = "id"
    queryset = selectors.reports()
    filterset_fields = ["event"]

    def get_object(self) -> Report:
        # Through the service, so an unknown id is the reports' own ReportNotFound (404 not_found).
        report = services.get_report(self.kwargs[self.lookup_field])
        self.check_object_permissions(self.request, report)
        return report

    # (config/openapi.py describes the 200: application/json, or application/gzip with ?format=gzip.)
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "format", str, enum=["json", "gzip"], description="gzip: the document as a .json.gz file."
            )
        ],
        responses={200: OpenApiResponse(OpenApiTypes.BINARY, description="The report document (JSON).")},
    )
    @action(detail=True, methods=["get"], content_negotiation_class=DownloadNegotiation)
    def download(self, request: Request, pk: str | None = None) -> HttpResponseBase:
        report = self.get_object()
        if report.status != Status.DONE or not report.document:
            raise ReportNotReady()
        return document_response(report, gzip=request.query_params.get("format") == "gzip")
