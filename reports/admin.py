from __future__ import annotations

import contextlib
from typing import Any, cast

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponseBase
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

# Imported for its side effect too: the event admin is registered before the action is added to it,
# whatever order the admin modules are discovered in.
import events.admin  # noqa: F401
from events.domain import EventNotFound
from events.models import Event
from participants.models import User
from reports import services
from reports.domain import Status
from reports.files import document_response
from reports.models import Report


@admin.action(description="Generate participant report (emailed to you)", permissions=["report"])
def generate_report(
    modeladmin: admin.ModelAdmin[Event], request: HttpRequest, queryset: QuerySet[Event]
) -> None:
    """An action of the event list, owned here: reports builds on events, so events/admin.py does
    not import reports and the reports app adds the action to the event admin below."""
    admin_user = cast(User, request.user)  # the admin site only lets staff accounts in
    requested = 0
    for event_id in queryset.values_list("pk", flat=True):
        with contextlib.suppress(EventNotFound):  # deleted meanwhile: no report to build
            services.request_report(
                event_id=event_id, requested_by_id=admin_user.pk, recipients=[admin_user.email]
            )
            requested += 1
    modeladmin.message_user(
        request,
        format_html(
            '{} report(s) requested; see <a href="{}">Reports</a>.',
            requested,
            reverse("admin:reports_report_changelist"),
        ),
        messages.SUCCESS,
    )


def add_event_actions(site: admin.AdminSite = admin.site) -> None:
    """Adds the reports' actions to the event admin the site serves: to that instance, so the
    EventAdmin class stays as events/admin.py defines it. Run once, when the admin modules load."""
    event_admin = site.get_model_admin(Event)
    if generate_report not in (event_admin.actions or ()):
        event_admin.actions = [*(event_admin.actions or ()), generate_report]
        # The action's permission (admin.action's permissions=["report"]): a report lists the
        # event's participants and is e-mailed to the requester, so whoever may request reports.
        event_admin.has_report_permission = _may_request_reports  # type: ignore[attr-defined]


def _may_request_reports(request: HttpRequest) -> bool:
    return bool(request.user.has_perm("reports.add_report"))


add_event_actions()


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
        "attempts",
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
