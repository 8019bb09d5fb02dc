"""Use cases on accounts: sign-up, participant management by admins, the admin bootstrap."""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, connection, transaction

from participants.domain import EmailTaken, ParticipantNotFound, normalize_email
from participants.models import User

PROFILE_FIELDS = ("email", "full_name", "phone")
# Deleting an account again when its role changed, or something referring to it committed, meanwhile.
DELETION_ATTEMPTS = 3


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
    # Hashed before the account's row is locked: hashing takes tens of milliseconds on purpose, and
    # a seat being given to this account (its commit's key-share lock) would wait for it meanwhile,
    # holding its event's row.
    hashed = make_password(password) if password else None
    try:
        with transaction.atomic():
            user = User.objects.select_for_update().filter(pk=user_id).first()
            if user is None:
                raise ParticipantNotFound()
            for field, value in changes.items():
                setattr(user, field, normalize_email(value) if field == "email" else value)
            if password and hashed:
                user.set_hashed_password(hashed, password)
            user.save()
    except IntegrityError as exc:
        raise EmailTaken() from exc
    return user


def delete_participant(*, participant_id: int) -> None:
    """Deletes a participant's account. Their seats are freed and their waiting-list places given
    up by the events app, which listens for accounts being deleted (events.receivers), in this
    same transaction. The events app locks the account's row for that after the events' rows, as
    every writer of seats takes them, and checks under that lock that it is still a participant's
    (ParticipantNotFound); it is not locked here first (that deadlocked with a seat being given,
    and with the account being made an admin's)."""
    with transaction.atomic():
        user = User.objects.participants().filter(pk=participant_id).first()
        if user is None:
            raise ParticipantNotFound()
        user.delete()


def delete_account(*, user_id: int) -> None:
    """Deletes an account, as what it is when deleted: a participant's (their seats go on) or an
    admin's. Gone already: nothing to do. (The admin's deletions: the page read the account before,
    and its role may have changed since.)"""
    for _ in range(DELETION_ATTEMPTS):
        is_staff = User.objects.filter(pk=user_id).values_list("is_staff", flat=True).first()
        if is_staff is None:
            return
        if is_staff:
            delete_admin(user_id=user_id)
        else:
            with contextlib.suppress(ParticipantNotFound):  # made an admin's meanwhile: again
                delete_participant(participant_id=user_id)
    if User.objects.filter(pk=user_id).exists():
        raise RuntimeError(f"account {user_id} changed role at every attempt to delete it")


def delete_admin(*, user_id: int) -> None:
    """Deletes an admin's account (gone already: nothing to do). Its row is not locked first: a
    report's or an event's closing transaction may hold a row the deletion's cascade updates while
    it commits an e-mail to the admin, whose foreign key then waits for that lock (locked first,
    the two deadlocked). A row referring to the account that commits after the cascade read them
    fails the deletion's foreign-key check, made at once inside a savepoint: the deletion is made
    again, and finds it."""
    for attempt in range(1, DELETION_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                user = User.objects.filter(pk=user_id, is_staff=True).first()
                if user is None:
                    return
                user.delete()
                if connection.vendor == "postgresql":  # (SQLite's writers take turns: no race)
                    connection.check_constraints()  # the deferred keys, now, inside the savepoint
            return
        except IntegrityError:
            if attempt == DELETION_ATTEMPTS:
                raise


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
        # Only these columns: the row was read without a lock, and a change made meanwhile (a
        # revoked calendar URL, a new name) must stay.
        user.save(update_fields=None if created else ["is_staff", "is_superuser", "is_active", "password"])
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
