"""Requesting and building participant reports."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from config.outbox import services as outbox
from events import selectors as event_selectors
from events.models import Event
from events.services import EventNotFound
from notifications import services as notifications
from notifications.domain import Kind
from notifications.tasks import DATABASE_AWAY
from participants import selectors as participant_selectors
from reports import database, metrics, selectors
from reports.domain import (
    WAITLIST_OPENING,
    Counter,
    ReportNotFound,
    Status,
    document_chunks,
    document_head,
    document_tail,
    human_size,
)
from reports.models import Report
from reports.output import DocumentOutput

log = logging.getLogger(__name__)

BUILD_TASK = "reports.build_report"
# Builds of one report that may be interrupted before the next start gives up on it: a rolling
# deploy or two, not a build that hangs the same way each time it runs.
INTERRUPTED_BUILDS_ALLOWED = 3
# Participants fetched from the database per round trip while a report streams out (Python builder).
CHUNK_SIZE = 2000
# "database": PostgreSQL writes the JSON rows (reports.database); "python": the ORM and the json
# module (reports.domain), the builder of every other database (SQLite, the embedded default).
DATABASE, PYTHON = "database", "python"


def get_report(report_id: int | str) -> Report:
    """The report with this id, or ReportNotFound (404 `not_found`). The id comes from the URL as
    text: one that is not a number names no report either."""
    try:
        return selectors.reports().get(pk=int(report_id))
    except (Report.DoesNotExist, ValueError, TypeError):
        raise ReportNotFound() from None


def request_report(*, event_id: int, requested_by_id: int | None, recipients: list[str]) -> Report:
    """Records the request and its build task; the reports worker does the rest."""
    with transaction.atomic():
        # Held (FOR KEY SHARE) until commit: an event deleted meanwhile is waited for, and found gone.
        if not notifications.existing_events({event_id}):
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
        # The start is counted in its own commit, so that a build that never ends (its worker lost,
        # or killed past the tasks' time limit, then delivered again) is given up on, not repeated
        # for ever at the head of the reports queue.
        report = Report.objects.select_for_update().filter(pk=report_id).first()
        if report is None or report.status in (Status.DONE, Status.FAILED):
            return report.status if report else None
        report.status, report.started_at = Status.RUNNING, timezone.now()
        report.attempts += 1
        report.save(update_fields=["status", "started_at", "attempts"])
    if report.attempts > 1 + INTERRUPTED_BUILDS_ALLOWED:
        interrupted = report.attempts - 1
        error = f"Gave up: the build was interrupted {interrupted} times (a worker lost, or timed out)."
        _fail(report_id, error)
        return Status.FAILED
    try:
        with metrics.BUILD_DURATION.time():
            return _build(report_id)
    except DATABASE_AWAY:
        raise  # not the report's fault: it stays running, and the task builds it again later
    except Exception as exc:
        log.exception("report %s failed", report_id)
        _fail(report_id, f"{type(exc).__name__}: {exc}")
        return Status.FAILED


def _fail(report_id: int, error: str) -> None:
    """Marks a running report failed, with the error (for admins), and tells its addressees."""
    with transaction.atomic():
        report = _locked(report_id)
        if report is not None and report.status == Status.RUNNING:
            report.status, report.completed_at, report.error = Status.FAILED, timezone.now(), error[:2000]
            report.save(update_fields=["status", "error", "completed_at"])
            _tell(report, Kind.REPORT_FAILED, event_id=report.event_id)


def _locked(report_id: int) -> Report | None:
    """The report, locked until the transaction ends, with its event kept from being deleted
    meanwhile (the notifications written next refer to it); None when either is gone. The event is
    held first because its deletion takes it first (events.services.delete_event, then its reports
    by cascade): the other order could deadlock with a deletion."""
    event_id = Report.objects.filter(pk=report_id).values_list("event_id", flat=True).first()
    if event_id is None or not notifications.existing_events({event_id}):
        return None
    return (
        Report.objects.select_for_update(of=("self",))
        .select_related("event", "requested_by")
        .filter(pk=report_id)
        .first()
    )


def _build(report_id: int) -> str | None:
    # Deleted meanwhile (alone or with its event: reports.receivers told its addressees): nothing
    # is left to build or store.
    report = Report.objects.select_related("event").filter(pk=report_id).first()
    if report is None:
        return None
    stored: list[str] = []
    kept = False
    try:
        with DocumentOutput() as output:
            generated_at = timezone.now().isoformat()
            participants, waiting = write_document(report.event, output, generated_at=generated_at)
            # Stored before the report and its event are locked: a slow storage (a network volume)
            # would otherwise hold the event's deletion, and everything waiting behind it, meanwhile.
            for document, name, content in (
                (report.document, report.filename, output.plain),
                (report.document_gzip, report.gzip_filename, output.gzip),
            ):
                document.save(name, File(content), save=False)
                stored.append(document.name)
        with transaction.atomic():
            locked = _locked(report_id)
            if locked is None:
                return None
            if locked.status != Status.RUNNING:
                return locked.status  # finished meanwhile by another delivery of this task
            locked.document.name, locked.document_gzip.name = report.document.name, report.document_gzip.name
            locked.status, locked.participant_count = Status.DONE, participants
            locked.document_bytes, locked.gzip_bytes = output.plain_bytes, output.gzip_bytes
            locked.completed_at = timezone.now()
            locked.save(
                update_fields=[
                    "document",
                    "document_gzip",
                    "status",
                    "participant_count",
                    "document_bytes",
                    "gzip_bytes",
                    "completed_at",
                ]
            )
            _queue_emails(locked, waiting=waiting)
            # Set before the commit, not after it: a failing on-commit callback must not delete the
            # files of a report that is done (a commit that fails leaves them behind instead).
            kept = True
    finally:
        if not kept:  # the report went, another delivery finished it, or storing failed
            for name in stored:
                report.document.storage.delete(name)
    return Status.DONE


def default_builder() -> str:
    return DATABASE if database.is_available() else PYTHON


def write_document(
    event: Event, output: DocumentOutput, *, generated_at: str, builder: str | None = None
) -> tuple[int, int]:
    """Writes the event's whole report document into `output` and finishes it; returns the number
    of participants and of waiting-list entries. Both builders write the same document: the head
    and the tail are shared (reports.domain), the rows differ only in how they are made."""
    builder = builder or default_builder()
    fields = _event_fields(event)
    if builder == DATABASE:
        output.write_text(document_head(event=fields, generated_at=generated_at))
        participants, waiting = database.write_lists(
            event.pk, output, between=lambda: output.write_text(WAITLIST_OPENING)
        )
        output.write_text(document_tail(participant_count=participants))
    elif builder == PYTHON:
        counter, waiting_counter = Counter(), Counter()
        for chunk in document_chunks(
            event=fields,
            participants=_participant_rows(event.pk),
            generated_at=generated_at,
            counter=counter,
            waitlist=_counted(_waitlist_rows(event.pk), waiting_counter),
        ):
            output.write_text(chunk)
        participants, waiting = counter.value, waiting_counter.value
    else:
        raise ValueError(f"unknown report builder {builder!r}")
    output.finish()
    return participants, waiting


def _event_fields(event: Event) -> dict[str, Any]:
    return {
        "id": event.pk,
        "title": event.title,
        "description": event.description,
        "date": event.date.isoformat(),
        "time": event.time.isoformat(),
        "location": event.location,
        "capacity": event.capacity,
    }


def _counted(rows: Iterable[dict[str, Any]], counter: Counter) -> Iterator[dict[str, Any]]:
    for row in rows:
        counter.value += 1
        yield row


def _participant_rows(event_id: int) -> Iterator[dict[str, Any]]:
    rows = (
        event_selectors.event_enrollments(event_id=event_id)
        .values_list(
            "participant_id", "participant__full_name", "participant__email", "created_at", "checked_in_at"
        )
        .iterator(chunk_size=CHUNK_SIZE)
    )
    for participant_id, full_name, email, enrolled_at, checked_in_at in rows:
        yield {
            "id": participant_id,
            "full_name": full_name,
            "email": email,
            "enrolled_at": enrolled_at.isoformat(),
            "checked_in_at": checked_in_at.isoformat() if checked_in_at else None,
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


def email_details(report: Report, *, waiting: int) -> str:
    """What the email adds after "N participants": the waiting list, the document's sizes and the
    gzip download, e.g. ", 12 on the waiting list; 139.2 MB of JSON, 15.0 MB compressed
    (.json.gz: GET /api/v1/reports/7/download/?format=gzip)"."""
    waiting_text = f", {waiting} on the waiting list" if waiting else ""
    return (
        f"{waiting_text}; {human_size(report.document_bytes or 0)} of JSON, "
        f"{human_size(report.gzip_bytes or 0)} compressed "
        f"(.json.gz: GET /api/v1/reports/{report.pk}/download/?format=gzip)"
    )


def _queue_emails(report: Report, *, waiting: int = 0) -> None:
    """The document to each recipient; a plain "ready" note to the requester if not among them.
    A document larger than REPORT_ATTACHMENT_MAX_BYTES is linked, not attached; every email says
    how many participants it lists and how big it is."""
    attach = (report.document_bytes or report.document.size) <= settings.REPORT_ATTACHMENT_MAX_BYTES
    context = {
        "event": notifications.event_context(report.event),
        "participant_count": report.participant_count,
        "report_id": report.pk,
        "details": email_details(report, waiting=waiting),
    }
    for email, account, recipient in _addressees(report):
        notifications.queue_email(
            kind=Kind.REPORT_READY,
            to_email=email,
            user_id=account.pk if account else None,
            event_id=report.event_id,
            context={
                **context,
                "full_name": account.full_name if account else "",
                "attached": recipient and attach,
            },
            attachment=report.document.name if recipient and attach else "",
            attachment_name=report.filename if recipient and attach else "",
        )


def tell_withdrawn(report: Report, *, event_deleted: bool) -> None:
    """A report deleted before it was built, by itself or with its event: whoever was to hear of it
    is told it will not come, in the deleting transaction. Its status is read again under its lock
    (a build finishing meanwhile has told them already); the notifications refer to the event
    unless it is going in the same transaction."""
    # Deleted alone, the report's notifications refer to its event, held first as everywhere else
    # (see _locked); deleted with it, they refer to none, and the deletion holds it already.
    event_id = None if event_deleted else next(iter(notifications.existing_events({report.event_id})), None)
    status = Report.objects.select_for_update().filter(pk=report.pk).values_list("status", flat=True).first()
    if status in (None, Status.DONE, Status.FAILED):
        return  # its addressees were told already: it is ready, or it failed
    _tell(report, Kind.REPORT_WITHDRAWN, event_id=event_id, event_deleted=event_deleted)


def _tell(report: Report, kind: Kind, *, event_id: int | None, **context: Any) -> None:
    """Each addressee hears that the report will not come (`kind`), in the caller's transaction."""
    event = notifications.event_context(report.event)
    for email, account, _ in _addressees(report):
        notifications.queue_email(
            kind=kind,
            to_email=email,
            user_id=account.pk if account else None,
            event_id=event_id,
            context={**context, "event": event, "full_name": account.full_name if account else ""},
        )


def _addressees(report: Report) -> Iterator[tuple[str, Any, bool]]:
    """(email, account or None, recipient?): each recipient, then the requester when not one."""
    accounts = {
        user.email: user
        for user in participant_selectors.accounts()
        .filter(email__in=report.recipients)
        .only("email", "full_name")
    }
    for email in report.recipients:
        yield email, accounts.get(email), True
    requester = report.requested_by
    if requester is not None and requester.email not in report.recipients:
        yield requester.email, requester, False
