"""The two roles as DRF permissions; every API view names the one it needs."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from participants.domain import Role


def signed_in_user_id(request: Request) -> int:
    """The id of the request's account (routes that call this require a signed-in user)."""
    user_id = request.user.pk if request.user is not None else None
    if user_id is None:
        raise NotAuthenticated()
    return int(user_id)


class IsAdmin(BasePermission):
    message = "Only admins can do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.role == Role.ADMIN)


class IsParticipant(BasePermission):
    message = "Only participants can do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.role == Role.PARTICIPANT)


class IsAdminOrReadOnly(BasePermission):
    """Any signed-in user reads; only admins write."""

    message = "Only admins can change this."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return request.method in ("GET", "HEAD", "OPTIONS") or user.role == Role.ADMIN
