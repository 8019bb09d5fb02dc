from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.utils import display_for_value
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from rest_framework.exceptions import Throttled
from rest_framework.throttling import BaseThrottle

from config.admin_rows import PagedRowsInline
from events.models import Enrollment, WaitlistEntry, WaitlistEntryQuerySet
from notifications.models import Notification
from participants import services
from participants.api import throttling
from participants.domain import normalize_email
from participants.models import User
from participants.proxies import Administrator, Participant


class LockoutAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's sign-in, with the API's failure lockout: after LOGIN_FAILURE_LIMIT wrong
    passwords for one account from one address within LOGIN_FAILURE_WINDOW_SECONDS, that address
    cannot try that account again until the window ends. Keyed by account and address, so nobody
    can lock an admin out from another address; the per-address limit of the proxy and the window
    bound guessing."""

    def clean(self) -> dict[str, Any]:
        email = normalize_email(self.cleaned_data.get("username") or "")
        # (get_ident reads only META, which a Django request has: it honours NUM_PROXIES.)
        address = BaseThrottle().get_ident(self.request) if self.request is not None else ""  # type: ignore[arg-type]
        try:
            throttling.claim_attempt(email, address)  # counted now; a success clears the count
        except Throttled as locked:
            minutes = max(1, round((getattr(locked, "wait", None) or 60) / 60))
            raise forms.ValidationError(
                f"Too many failed sign-ins for this account. Try again in {minutes} minute(s).",
                code="locked",
            ) from locked
        cleaned = super().clean()
        throttling.clear_failures(email, address)
        return cleaned


admin.site.login_form = LockoutAdminAuthenticationForm


def event_link(event: Any) -> str:
    return format_html('<a href="{}">{}</a>', reverse("admin:events_event_change", args=[event.pk]), event)


class ReadOnlyInline(PagedRowsInline):
    """A list on the participant's page, a page at a time: nothing is added, changed or removed
    from here (seats and places change on the event's page, through the services)."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ParticipantEnrollmentInline(ReadOnlyInline):
    model = Enrollment
    page_parameter = "enrollments"
    fields = readonly_fields = ("event_link", "starts", "enrolled_at")
    verbose_name = "enrollment"
    verbose_name_plural = "Enrollments"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Enrollment]:
        return (
            super().get_queryset(request).select_related("event").order_by("event__date", "event__time", "id")
        )

    @admin.display(description="Event")
    def event_link(self, obj: Enrollment) -> str:
        return event_link(obj.event)

    @admin.display(description="Starts")
    def starts(self, obj: Enrollment) -> str:
        return f"{obj.event.date:%Y-%m-%d} {obj.event.time:%H:%M}"

    @admin.display(description="Enrolled at")
    def enrolled_at(self, obj: Enrollment) -> str:
        return display_for_value(obj.created_at, "")  # in the admin's zone and format


class ParticipantWaitlistInline(ReadOnlyInline):
    model = WaitlistEntry
    page_parameter = "waiting"
    fields = readonly_fields = ("event_link", "position", "joined_at")
    verbose_name = "place on a waiting list"
    verbose_name_plural = "Waiting lists"

    def get_queryset(self, request: HttpRequest) -> QuerySet[WaitlistEntry]:
        return (
            cast(WaitlistEntryQuerySet, super().get_queryset(request))
            .with_positions()
            .select_related("event")
            .order_by("event__date", "event__time", "id")
        )

    @admin.display(description="Event")
    def event_link(self, obj: WaitlistEntry) -> str:
        return event_link(obj.event)

    @admin.display(description="Position")
    def position(self, obj: WaitlistEntry) -> int:
        return int(getattr(obj, "place", 0))


class ParticipantNotificationInline(ReadOnlyInline):
    model = Notification
    fk_name = "user"
    page_parameter = "notifications"
    fields = readonly_fields = ("created_at", "kind", "subject", "status", "sent_at")
    verbose_name = "notification"
    verbose_name_plural = "Notifications (newest first)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Notification]:
        return super().get_queryset(request).order_by("-created_at", "-id")


class AccountAdmin(DjangoUserAdmin):
    """What both kinds of account share: sign-in by email, and deletion through the service."""

    ordering = ["email"]
    search_fields = ["email", "full_name", "phone"]
    readonly_fields = ["created_at", "last_login", "calendar_feed"]
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "full_name", "phone", "password1", "password2")}),
    )
    actions = ["revoke_calendar_feeds"]

    @admin.display(description="Calendar feed")
    def calendar_feed(self, obj: Any) -> str:
        # Whether a feed URL is live, never the secret itself: it would open the feed to any reader.
        return "active (its URL is known only to the account)" if obj.calendar_token else "none"

    @admin.action(description="Revoke the calendar feed URLs of the selected accounts")
    def revoke_calendar_feeds(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        revoked = services.revoke_calendar_tokens(user_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(
            request,
            f"{revoked} calendar feed URL{'s' if revoked != 1 else ''} revoked: calendar apps "
            "subscribed to them get nothing more. A new URL is made when the person asks for it.",
            messages.SUCCESS,
        )

    # Through the service, as the account is when deleted: a participant's seats are given back.
    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        services.delete_account(user_id=obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for user_id in queryset.values_list("pk", flat=True):
            services.delete_account(user_id=user_id)


@admin.register(Participant)
class ParticipantAdmin(AccountAdmin):
    """The people who enroll. Their page lists their enrollments, waiting-list places and
    notifications."""

    list_display = ["email", "full_name", "phone", "enrollments", "is_active", "created_at"]
    list_filter = ["is_active"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name", "phone")}),
        ("Status", {"fields": ("is_active", "is_staff")}),
        ("Dates", {"fields": ("last_login", "created_at")}),
        ("Calendar", {"fields": ("calendar_feed",)}),
    )
    inlines = [ParticipantEnrollmentInline, ParticipantWaitlistInline, ParticipantNotificationInline]

    def get_inline_instances(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        return super().get_inline_instances(request, obj) if obj is not None else []  # nothing yet

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .filter(is_staff=False)
            .annotate(enrollment_count=Count("enrollments"))
        )

    @admin.display(description="Enrollments", ordering="enrollment_count")
    def enrollments(self, obj: Any) -> int:
        return int(obj.enrollment_count)


@admin.register(Administrator)
class AdministratorAdmin(AccountAdmin):
    """The accounts that run the platform from this admin (staff)."""

    list_display = ["email", "full_name", "is_superuser", "is_active", "last_login"]
    list_filter = ["is_superuser", "is_active"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name", "phone")}),
        ("Role", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "created_at")}),
    )

    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "full_name", "phone", "password1", "password2", "is_superuser"),
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).filter(is_staff=True)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            obj.is_staff = True  # added here, so an administrator
        super().save_model(request, obj, form, change)


@admin.register(User)
class UserAdmin(AccountAdmin):
    """Every account, not listed on the index (Participants and Administrators are). It serves the
    participant pickers of the event page (autocomplete: participants only), and sends its own
    pages (links from other admin pages) to the participant's or administrator's page."""

    list_display = ["email", "full_name", "is_staff", "is_active"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return False

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Any], search_term: str) -> Any:
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if request.path == reverse("admin:autocomplete") and request.GET.get("app_label") == "events":
            # Admins hold no seats and wait for none; deactivated accounts take none.
            queryset = queryset.filter(is_staff=False, is_active=True)
        return queryset, may_have_duplicates

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        return HttpResponseRedirect(reverse("admin:participants_participant_changelist"))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied  # before telling what kind of account the id is, or that it is one
        user = self.get_object(request, object_id)
        if user is None:
            return super().change_view(request, object_id, form_url, extra_context)  # its "not found"
        kind = "administrator" if user.is_staff else "participant"
        return HttpResponseRedirect(reverse(f"admin:participants_{kind}_change", args=[user.pk]))
