"""What each kind of notification says. Plain functions of their context: no database, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from notifications.domain import Kind


def render(kind: Kind, context: Mapping[str, Any]) -> tuple[str, str]:
    """Subject and plain-text body of a notification of this kind."""
    name = context.get("full_name") or "there"
    event = context.get("event") or {}
    when = f"{event.get('date', '')} at {event.get('time', '')}".strip()
    where = event.get("location", "")
    title = event.get("title", "")
    if kind == Kind.ENROLLMENT_CONFIRMED:
        return (
            f"You are enrolled: {title}",
            f'Hello {name},\n\nyour seat at "{title}" is confirmed.\n\nWhen: {when}\nWhere: {where}\n\n'
            "If you cannot come, cancel your enrollment so that a colleague can take the seat.\n",
        )
    if kind == Kind.ENROLLMENT_CANCELLED:
        return (
            f"Enrollment cancelled: {title}",
            f'Hello {name},\n\nyour enrollment in "{title}" ({when}, {where}) has been cancelled.\n',
        )
    if kind == Kind.EVENT_CANCELLED:
        return (
            f"Event cancelled: {title}",
            f'Hello {name},\n\n"{title}" ({when}, {where}) has been cancelled by the organisers.\n',
        )
    if kind == Kind.REPORT_READY:
        count = context.get("participant_count", 0)
        download = f"GET /api/v1/reports/{context.get('report_id', '')}/download/"
        attached = (
            "The report is attached as JSON."
            if context.get("attached")
            else f"Download it from the API ({download}) or from the Reports page of the admin."
        )
        return (
            f"Participant report ready: {title}",
            f'Hello {name},\n\nthe participant report of "{title}" ({when}) is ready: '
            f"{count} participant{'s' if count != 1 else ''}{context.get('details', '')}.\n{attached}\n",
        )
    if kind == Kind.WAITLISTED:
        position = context.get("position")
        at = f", position {position}" if position is not None else ""
        return (
            f"You are on the waiting list: {title}",
            f'Hello {name},\n\nyou are on the waiting list of "{title}" ({when}, {where}){at}.\n'
            "If a seat frees up before the event starts, you will be enrolled and told at once.\n",
        )
    if kind == Kind.WAITLIST_PROMOTED:
        return (
            f"A seat freed up: you are enrolled in {title}",
            f'Hello {name},\n\na seat freed up: you are now enrolled in "{title}".\n\nWhen: {when}\n'
            f"Where: {where}\n\n"
            "If you cannot come, cancel your enrollment so that a colleague can take the seat.\n",
        )
    if kind == Kind.EVENT_UPDATED:
        return (
            f"Event changed: {title}",
            f'Hello {name},\n\n"{title}" has changed. It now takes place:\n\nWhen: {when}\n'
            f"Where: {where}\n\nYour seat is kept. The attached calendar file updates your calendar.\n",
        )
    if kind == Kind.EVENT_REMINDER:
        return (
            f"Reminder: {title} on {event.get('date', '')}",
            f'Hello {name},\n\na reminder that you are enrolled in "{title}".\n\nWhen: {when}\n'
            f"Where: {where}\n\n"
            "If you cannot come, cancel your enrollment so that a colleague can take the seat.\n",
        )
    raise ValueError(f"no email for notification kind {kind!r}")
