"""What each kind of notification says, and how its email is put together. Plain functions of their
context: no database, no I/O."""

from __future__ import annotations

import html
import io
import secrets
from collections.abc import Mapping, Sequence
from email.mime.base import MIMEBase
from email.mime.image import MIMEImage
from typing import Any

import segno
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import SafeMIMEMultipart, SafeMIMEText

from notifications.domain import Kind

# The kinds whose email is the participant's ticket: the check-in code as text and as a QR code.
CHECKIN_KINDS = frozenset({Kind.ENROLLMENT_CONFIRMED, Kind.WAITLIST_PROMOTED, Kind.EVENT_REMINDER})
CALENDAR_FILENAME = "event.ics"


def display_checkin_code(code: str) -> str:
    """In groups of four, as the door reads it: ABCD-EFGH-IJKL-MNOP. (events.domain has the same
    rule; notifications sit below events, so they keep their own line of it.)"""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def render(kind: Kind, context: Mapping[str, Any]) -> tuple[str, str]:
    """Subject and plain-text body of a notification of this kind.

    Optional context: `checkin_code` (display form, ABCD-EFGH-…) adds the ticket's lines;
    `calendar` (the attached file's METHOD, REQUEST or CANCEL) says what the attachment does.
    """
    subject, body = _render(kind, context)
    code = context.get("checkin_code")
    if code:
        body += (
            f"\nYour check-in code: {code}\nShow it at the door, as text or as the QR code in this email.\n"
        )
    method = context.get("calendar")
    if method and kind != Kind.EVENT_UPDATED:  # the update's text says it already
        does = "removes the event from" if method == "CANCEL" else "adds the event to"
        body += f"\nThe attached calendar file ({CALENDAR_FILENAME}) {does} your calendar.\n"
    return subject, body


def _render(kind: Kind, context: Mapping[str, Any]) -> tuple[str, str]:
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
    if kind == Kind.REPORT_FAILED:
        return (
            f"Participant report failed: {title}",
            f'Hello {name},\n\nthe participant report of "{title}" ({when}) could not be built. '
            "The administrators see why on the Reports page of the admin; a new request builds it "
            "again.\n",
        )
    if kind == Kind.REPORT_WITHDRAWN:
        why = "the event was deleted" if context.get("event_deleted") else "the report request was deleted"
        return (
            f"Participant report withdrawn: {title}",
            f'Hello {name},\n\nthe participant report of "{title}" ({when}) will not come: {why} '
            "before the report was built.\n",
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


# --- The email itself ------------------------------------------------------------------------------


def qr_png(code: str) -> bytes:
    """The check-in code as a QR code, PNG (segno writes PNG itself: no imaging library). It encodes
    the code as stored (16 letters and digits: QR's compact alphanumeric mode); a door scanner's
    reading is what POST /events/{id}/check-ins/ takes."""
    buffer = io.BytesIO()
    segno.make(code, error="m", micro=False).save(buffer, kind="png", scale=6, border=4)
    return buffer.getvalue()


def html_body(body: str, *, checkin_code: str, image_cid: str) -> str:
    """The HTML twin of a plain-text body, with the QR code image (referenced by Content-ID) under
    the check-in code. The text is escaped: names and titles come from users."""
    paragraphs = "".join(
        f"<p>{html.escape(part).replace(chr(10), '<br>')}</p>" for part in body.strip().split("\n\n")
    )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
        f"{paragraphs}"
        f'<p><img src="cid:{image_cid}" alt="QR code of check-in code {html.escape(checkin_code)}" '
        'width="198" height="198"></p>'
        f'<p style="font-family:monospace;font-size:1.4em">{html.escape(checkin_code)}</p>'
        "</body></html>"
    )


def calendar_part(ics: str, method: str) -> MIMEBase:
    """The .ics attachment, `text/calendar; method=…; charset=utf-8` (RFC 6047: the method is on
    the MIME type too, which is what Outlook and Gmail look at)."""
    part = SafeMIMEText(ics, "calendar", "utf-8")  # Django's choice of transfer encoding: readable
    part.set_param("method", method)
    part.add_header("Content-Disposition", "attachment", filename=CALENDAR_FILENAME)
    return part


class EmailWithInlineImages(EmailMultiAlternatives):
    """An email whose HTML alternative shows images carried in the email (`<img src="cid:…">`):

        multipart/mixed
          multipart/alternative
            text/plain
            multipart/related
              text/html
              image/png (Content-ID)
          attachments (the .ics)

    Django 5.2 has no API for multipart/related inside the alternative, so this builds that one
    part (`_create_alternatives`, the step of Django's message() that makes the alternative part).
    """

    def __init__(self, *args: Any, inline_images: Sequence[tuple[str, bytes]] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.inline_images = list(inline_images)  # (Content-ID without <>, PNG bytes)

    def message(self) -> Any:
        """Django's message, with every multipart's boundary chosen here. Left unset, Python's
        email generator makes one per part and compiles a regular expression of it to check the
        part's text: a third of the time a confirmation takes to serialize (0.97 → 0.65 ms,
        2026-12-06), paid by a worker that sends them by the hundred. A random 128-bit boundary
        occurs in the text only by a chance of that order."""
        msg = super().message()
        for part in msg.walk():
            if part.is_multipart() and part.get_boundary() is None:
                part.set_boundary(f"==============={secrets.token_hex(16)}==")
        return msg

    def _create_alternatives(self, msg: Any) -> Any:
        if not self.inline_images:
            return super()._create_alternatives(msg)  # type: ignore[misc]  # (private: not in the stubs)
        encoding = self.encoding or settings.DEFAULT_CHARSET
        alternative = SafeMIMEMultipart(_subtype="alternative", encoding=encoding)
        alternative.attach(msg)  # the plain text first: the last part is the richest
        for content, mimetype in self.alternatives:
            related = SafeMIMEMultipart(_subtype="related", encoding=encoding)
            related.attach(self._create_mime_attachment(content, mimetype))  # type: ignore[attr-defined]
            for cid, png in self.inline_images:
                image = MIMEImage(png, "png")
                image.add_header("Content-ID", f"<{cid}>")
                image.add_header("Content-Disposition", "inline", filename="checkin-code.png")
                related.attach(image)
            alternative.attach(related)
        return alternative
