"""Use cases on accounts: sign-up, participant management by admins, the admin bootstrap."""

from __future__ import annotations

import secrets
from typing import Any

from django.db import IntegrityError, transaction

from participants.domain import EmailTaken, ParticipantNotFound, normalize_email
from participants.models import User

PROFILE_FIELDS = ("email", "full_name", "phone")


def register_participant(*, email: str, password: str, full_name: str, phone: str = "") -> User:
    """Creates a participant account. The password must already have passed Django's validators."""
    user = User(email=email, full_name=full_name, phone=phone)
    # Hashing takes tens of milliseconds on purpose: done before the transaction, so that writers
    # never wait for it (SQLite has one writer at a time).
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
            return user
    except IntegrityError as exc:  # the unique email constraint, under a concurrent sign-up
        raise EmailTaken() from exc


def update_account(*, user_id: int, password: str | None = None, **changes: Any) -> User:
    unknown = set(changes) - set(PROFILE_FIELDS)
    if unknown:
        raise TypeError(f"update_account() got unknown fields: {sorted(unknown)}")
    try:
        with transaction.atomic():
            user = User.objects.select_for_update().filter(pk=user_id).first()
            if user is None:
                raise ParticipantNotFound()
            for field, value in changes.items():
                setattr(user, field, normalize_email(value) if field == "email" else value)
            if password:
                user.set_password(password)
            user.save()
            return user
    except IntegrityError as exc:
        raise EmailTaken() from exc


def delete_participant(*, participant_id: int) -> None:
    """Deletes a participant's account. Their seats are freed and their waiting-list places given
    up by the events app, which listens for accounts being deleted (events.receivers), in this
    same transaction. The account's row is locked by the events app after the events' rows, as
    every writer of seats takes them (locked here first, it deadlocked with a seat being given)."""
    with transaction.atomic():
        user = User.objects.participants().filter(pk=participant_id).first()
        if user is None:
            raise ParticipantNotFound()
        user.delete()


def ensure_admin(*, email: str, password: str, full_name: str = "Administrator") -> tuple[User, bool]:
    """Creates the admin account, or brings an existing one back to admin with this password. A
    participant's account made an admin's gives back its seats (events.receivers), which locks the
    account's row after the events' rows: it is not locked here first."""
    with transaction.atomic():
        user = User.objects.filter(email=normalize_email(email)).first()
        created = user is None
        if user is None:
            user = User(email=email, full_name=full_name)
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
    return user, created


# --- The calendar feed's token --------------------------------------------------------------------
# The secret in the URL of an account's calendar feed (calendar apps send no bearer header). It
# opens that feed and nothing else: no authentication class reads it.


def _new_calendar_token() -> str:
    # 256 random bits, URL-safe (43 characters: fits the column, needs no quoting in a URL).
    return secrets.token_urlsafe(32)


def calendar_token(*, user_id: int) -> str:
    """The account's feed token, made on the first request. Two first requests at once get the same
    one: the conditional update lets one of them set it, and both read what was set."""
    accounts = User.objects.filter(pk=user_id)
    token = accounts.values_list("calendar_token", flat=True).first()
    if token:
        return token
    accounts.filter(calendar_token__isnull=True).update(calendar_token=_new_calendar_token())
    token = accounts.values_list("calendar_token", flat=True).first()
    if not token:
        raise ParticipantNotFound()
    return token


def rotate_calendar_token(*, user_id: int) -> str:
    """Replaces the account's feed token: the old URL stops working with this commit."""
    token = _new_calendar_token()
    if not User.objects.filter(pk=user_id).update(calendar_token=token):
        raise ParticipantNotFound()
    return token


def revoke_calendar_tokens(*, user_ids: list[int]) -> int:
    """Ends these accounts' feed URLs (an admin's action, e.g. for a URL that leaked). Their next
    request for the URL makes a new one. Returns how many had one."""
    return User.objects.filter(pk__in=user_ids, calendar_token__isnull=False).update(calendar_token=None)
