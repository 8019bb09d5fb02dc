"""Kinds and states of notifications (standard library only)."""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    ENROLLMENT_CONFIRMED = "enrollment_confirmed"
    ENROLLMENT_CANCELLED = "enrollment_cancelled"
    EVENT_CANCELLED = "event_cancelled"
    REPORT_READY = "report_ready"
    REPORT_FAILED = "report_failed"  # its build failed: it will not come
    REPORT_WITHDRAWN = "report_withdrawn"  # deleted before it was built, alone or with its event
    WAITLISTED = "waitlisted"  # on an event's waiting list, at a position
    WAITLIST_PROMOTED = "waitlist_promoted"  # a seat freed up: enrolled from the waiting list
    EVENT_UPDATED = "event_updated"  # the event moved (date, time, duration or location)
    EVENT_REMINDER = "event_reminder"  # REMINDER_HOURS before the event starts


class Status(StrEnum):
    QUEUED = "queued"  # recorded, waiting for (another) attempt
    SENT = "sent"
    FAILED = "failed"  # given up after the last attempt; visible to admins


def retry_delay(retries_so_far: int, *, base_seconds: float, cap_seconds: float = 600.0) -> float:
    """Exponential backoff: base, 2·base, 4·base, … never above the cap."""
    return float(min(base_seconds * (2**retries_so_far), cap_seconds))
