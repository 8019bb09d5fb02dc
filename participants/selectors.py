from __future__ import annotations

from django.db.models import QuerySet

from participants.models import User


def participants() -> QuerySet[User]:
    """Accounts with the participant role (admins are managed in the Django admin)."""
    return User.objects.participants()


def accounts() -> QuerySet[User]:
    """Every account, admins included."""
    return User.objects.all()


def account_by_calendar_token(token: str) -> User | None:
    """The active account whose calendar feed this token opens, or None (unknown, rotated, or the
    account deactivated)."""
    if not token:
        return None
    return User.objects.filter(calendar_token=token, is_active=True).first()
