"""Roles of the platform and the accounts' errors (standard library and config.errors only)."""

from __future__ import annotations

from enum import StrEnum

from config.errors import InvalidValue, NotFound


class ParticipantNotFound(NotFound):
    message = "No participant with this id."


class EmailTaken(InvalidValue):
    def __init__(self) -> None:
        super().__init__("email", "An account with this email already exists.")


class Role(StrEnum):
    ADMIN = "admin"  # Django staff: manages events, participants and reports; signs in to /admin/
    PARTICIPANT = "participant"  # enrolls in events


def role_of(*, is_staff: bool) -> Role:
    return Role.ADMIN if is_staff else Role.PARTICIPANT


def normalize_email(email: str) -> str:
    """Emails are sign-in names: compared without case and surrounding spaces."""
    return email.strip().lower()
