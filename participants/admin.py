from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from rest_framework.exceptions import Throttled
from rest_framework.throttling import BaseThrottle

from participants import services
from participants.api import throttling
from participants.domain import normalize_email
from participants.models import User


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
            throttling.check_not_locked(email, address)
        except Throttled as locked:
            minutes = max(1, round((getattr(locked, "wait", None) or 60) / 60))
            raise forms.ValidationError(
                f"Too many failed sign-ins for this account. Try again in {minutes} minute(s).",
                code="locked",
            ) from locked
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            throttling.record_failure(email, address)
            raise
        throttling.clear_failures(email, address)
        return cleaned


admin.site.login_form = LockoutAdminAuthenticationForm


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "phone", "is_staff", "is_active", "created_at"]
    list_filter = ["is_staff", "is_active"]
    search_fields = ["email", "full_name", "phone"]
    readonly_fields = ["created_at", "last_login"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name", "phone")}),
        ("Role", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "created_at")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "full_name", "phone", "password1", "password2")}),
    )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self._delete(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for user in queryset:
            self._delete(user)

    @staticmethod
    def _delete(user: User) -> None:
        # A participant leaves through the service so that their seats are given back.
        if user.is_staff:
            user.delete()
        else:
            services.delete_participant(participant_id=user.pk)
