from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from notifications import services
from notifications.domain import Status
from notifications.models import Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """The log of every email (read-only; rows go with their account). Failed ones can be sent again."""

    list_display = ["created_at", "kind", "to_email", "status", "attempts", "sent_at", "event"]
    list_filter = ["status", "kind"]
    search_fields = ["to_email", "subject"]
    date_hierarchy = "created_at"
    actions = ["send_again"]
    list_select_related = ["event"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Send the selected failed notifications again", permissions=["view"])
    def send_again(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        failed = list(queryset.filter(status=Status.FAILED).values_list("pk", flat=True))
        for notification_id in failed:
            services.resend(notification_id=notification_id)
        self.message_user(request, f"{len(failed)} notification(s) queued again.", messages.SUCCESS)
