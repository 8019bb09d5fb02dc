"""Requesting and building participant reports."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from config.errors import Conflict, NotFound
from config.outbox import services as outbox
from events import selectors as event_selectors
from events.services import EventNotFound
from notifications import services as notifications
from notifications.domain import Kind
from participants import selectors as participant_selectors
from reports import metrics
from reports.domain import Counter, Status, document_chunks
from reports.models import Report

log = logging.getLogger(__name__)

BUILD_TASK = "reports.build_report"
# Participants fetched from the database per round trip while a report streams out.
CHUNK_SIZE = 2000


class ReportNotFound(NotFound):
    message = "No report with this id."


class ReportNotReady(Conflict):
    code = "report_not_ready"
    message = "This report is not ready yet; try again when its status is done."


def request_report(*, event_id: int, requested_by_id: int | None, recipients: list[str]) -> Report:
    """Records the request and its build task; the reports worker does the rest."""
    with transaction.atomic():
        if not event_selectors.events().filter(pk=event_id).exists():
            raise EventNotFound()
        report = Report.objects.create(
            event_id=event_id, requested_by_id=requested_by_id, recipients=list(dict.fromkeys(recipients))
        )
        outbox.enqueue(BUILD_TASK, report_id=report.pk)
    return report


def build(*, report_id: int) -> str | None:
    """Builds, stores and sends the report. Idempotent: a finished report is left alone.

    A build interrupted midway (a worker lost) leaves the report `running`; the redelivered task
    builds it again from the start. Emails are queued in the same transaction that marks the report
    done, so however often the task runs, they are queued once.
    """
    with transaction.atomic():
        report = Report.objects.select_for_update().filter(pk=report_id).first()
        if report is None or report.status in (Status.DONE, Status.FAILED):
            return report.status if report else None
        report.status, report.started_at = Status.RUNNING, timezone.now()
        report.save(update_fields=["status", "started_at"])
    try:
        with metrics.BUILD_DURATION.time():
            return _build(report_id)
    except Exception as exc:
        log.exception("report %s failed", report_id)
        Report.objects.filter(pk=report_id, status=Status.RUNNING).update(
            status=Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], completed_at=timezone.now()
        )
        return Status.FAILED


def _build(report_id: int) -> str:
    report = Report.objects.select_related("event").get(pk=report_id)
    event = report.event
    counter = Counter()
    chunks = document_chunks(
        event={
            "id": event.pk,
            "title": event.title,
            "description": event.description,
            "date": event.date.isoformat(),
            "time": event.time.isoformat(),
            "location": event.location,
            "capacity": event.capacity,
        },
        participants=_participant_rows(event.pk),
        generated_at=timezone.now().isoformat(),
        counter=counter,
        waitlist=_waitlist_rows(event.pk),
    )
    with tempfile.TemporaryFile("w+b") as spool:
        for chunk in chunks:
            spool.write(chunk.encode())
        spool.seek(0)
        with transaction.atomic():
            report = Report.objects.select_for_update().select_related("event").get(pk=report_id)
            if report.status != Status.RUNNING:
                return report.status  # finished meanwhile by another delivery of this task
            report.document.save(report.filename, File(spool), save=False)
            report.status, report.participant_count = Status.DONE, counter.value
            report.completed_at = timezone.now()
            report.save(update_fields=["document", "status", "participant_count", "completed_at"])
            _queue_emails(report)
    return Status.DONE


def _participant_rows(event_id: int) -> Iterator[dict[str, Any]]:
    rows = (
        event_selectors.event_enrollments(event_id=event_id)
        .values_list("participant_id", "participant__full_name", "participant__email", "created_at")
        .iterator(chunk_size=CHUNK_SIZE)
    )
    for participant_id, full_name, email, enrolled_at in rows:
        yield {
            "id": participant_id,
            "full_name": full_name,
            "email": email,
            "enrolled_at": enrolled_at.isoformat(),
        }


def _waitlist_rows(event_id: int) -> Iterator[dict[str, Any]]:
    # (django-stubs cannot see the selector's `position` annotation.)
    rows = (
        event_selectors.waitlist(event_id=event_id)
        .values_list(  # type: ignore[misc]
            "participant_id", "participant__full_name", "participant__email", "position", "joined_at"
        )
        .iterator(chunk_size=CHUNK_SIZE)
    )
    for participant_id, full_name, email, position, joined_at in rows:
        yield {
            "id": participant_id,
            "full_name": full_name,
            "email": email,
            "position": position,
            "joined_at": joined_at.isoformat(),
        }


def _queue_emails(report: Report) -> None:
    """The document to each recipient; a plain "ready" note to the requester if not among them."""
    event = notifications.event_context(report.event)
    attach = report.document.size <= settings.REPORT_ATTACHMENT_MAX_BYTES
    accounts = {
        user.email: user
        for user in participant_selectors.accounts()
        .filter(email__in=report.recipients)
        .only("email", "full_name")
    }
    for email in report.recipients:
        user = accounts.get(email)
        notifications.queue_email(
            kind=Kind.REPORT_READY,
            to_email=email,
            user_id=user.pk if user else None,
            event_id=report.event_id,
            context={
                "full_name": user.full_name if user else "",
                "event": event,
                "participant_count": report.participant_count,
                "attached": attach,
                "report_id": report.pk,
            },
            attachment=report.document.name if attach else "",
            attachment_name=report.filename if attach else "",
        )
    requester = report.requested_by
    if requester is not None and requester.email not in report.recipients:
        notifications.queue_email(
            kind=Kind.REPORT_READY,
            to_email=requester.email,
            user_id=requester.pk,
            event_id=report.event_id,
            context={
                "full_name": requester.full_name,
                "event": event,
                "participant_count": report.participant_count,
            },
        )
