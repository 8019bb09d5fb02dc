from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseBase
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from reports.domain import Status
from reports.files import document_response
from reports.models import Report


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    """Reports are requested from the event list (action "Generate participant report")."""

    list_display = [
        "id",
        "event",
        "status",
        "participant_count",
        "created_at",
        "completed_at",
        "download_link",
    ]
    list_filter = ["status"]
    list_select_related = ["event"]
    readonly_fields = [
        "event",
        "requested_by",
        "recipients",
        "status",
        "participant_count",
        "document_bytes",
        "gzip_bytes",
        "error",
        "created_at",
        "started_at",
        "completed_at",
        "download_link",
    ]
    exclude = ["document", "document_gzip"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Document")
    def download_link(self, report: Report) -> str:
        if report.status != Status.DONE:
            return "—"
        url = reverse("admin:reports_report_download", args=[report.pk])
        return format_html('<a href="{}">download</a> (<a href="{}?format=gzip">.json.gz</a>)', url, url)

    def get_urls(self) -> list[URLPattern]:
        download = path(
            "<int:report_id>/download/",
            self.admin_site.admin_view(self.download_view),
            name="reports_report_download",
        )
        return [download, *super().get_urls()]

    def download_view(self, request: HttpRequest, report_id: int) -> HttpResponseBase:
        if not self.has_view_permission(request):
            raise PermissionDenied
        report = get_object_or_404(Report, pk=report_id)
        if report.status != Status.DONE or not report.document:
            raise Http404("This report is not ready.")
        return document_response(report, gzip=request.GET.get("format") == "gzip")
