from __future__ import annotations

from django.db.models import QuerySet

from participants.models import User


def participants() -> QuerySet[User]:
    """Accounts with the participant role (admins are managed in the Django admin)."""
    return User.objects.participants()


def accounts() -> QuerySet[User]:
    """Every account, admins included."""
    return User.objects.all()
