from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from notifications import services
from notifications.domain import Status
from notifications.emails import display_checkin_code
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

    def has_resend_permission(self, request: HttpRequest) -> bool:
        """Sending an email again changes the log (its rows are read-only here otherwise): the
        model's change permission, which a superuser has, not merely the view one."""
        return bool(request.user.has_perm("notifications.change_notification"))

    # A participant's check-in code is their ticket: nobody else sees it, in the admin neither
    # (the body and the calendar attachment carry it too, so the body is shown without it).
    fields = readonly_fields = (
        "kind",
        "user",
        "to_email",
        "event",
        "subject",
        "body_without_code",
        "attachment_name",
        "status",
        "attempts",
        "error",
        "created_at",
        "sent_at",
    )

    @admin.display(description="Body")
    def body_without_code(self, notification: Notification) -> str:
        body = notification.body
        code = notification.checkin_code
        if code:
            for shown in (display_checkin_code(code), code):
                body = body.replace(shown, "[check-in code]")
        return body

    @admin.action(description="Send the selected failed notifications again", permissions=["resend"])
    def send_again(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        failed = list(queryset.filter(status=Status.FAILED).values_list("pk", flat=True))
        # (One queued again meanwhile, by another admin, is not queued twice, nor counted here.)
        queued = sum(services.resend(notification_id=notification_id) for notification_id in failed)
        self.message_user(request, f"{queued} notification(s) queued again.", messages.SUCCESS)
