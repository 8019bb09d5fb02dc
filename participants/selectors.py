from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import QuerySet

from participants.models import User


def participants() -> QuerySet[User]:
    """Accounts with the participant role (admins are managed in the Django admin)."""
    return User.objects.participants()


def active_participants() -> QuerySet[User]:
    """The participants who can be enrolled or put on a waiting list: a deactivated account gave
    its seats and places back (events.receivers), and takes no new ones."""
    return User.objects.participants().filter(is_active=True)


def accounts() -> QuerySet[User]:
    """Every account, admins included."""
    return User.objects.all()


def active_participant_sql() -> str:
    """SQL, true when the account of the id given as parameter is an active participant's: for a
    statement that trusts a signed token for the id and checks the account in the same round trip
    (the direct seat, the queued request, the refusal). Its parameters: active_participant_params."""
    users = connection.ops.quote_name(User._meta.db_table)
    # Only the model's own table is formatted in; the values are parameters.
    return f"EXISTS (SELECT 1 FROM {users} WHERE id = %s AND is_active = %s AND is_staff = %s)"  # noqa: S608


def active_participant_params(participant_id: int) -> list[Any]:
    """active_participant_sql's parameters for this account."""
    return [participant_id, True, False]


def account_by_calendar_token(token: str) -> User | None:
    """The active account whose calendar feed this token opens, or None (unknown, rotated, or the
    account deactivated)."""
    if not token:
        return None
    return User.objects.filter(calendar_token=token, is_active=True).first()
