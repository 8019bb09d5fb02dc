"""Participant reports on the embedded default (the build runs in-process after commit)."""

import gzip
import json
import os
import threading
import time

import pytest
from django.conf import settings
from django.core import mail
from django.core.files.storage import FileSystemStorage
from django.db import connection
from django.test import Client

from events import services as event_services
from notifications.models import Notification
from reports import database, output, services
from reports.domain import ReportNotFound, human_size
from reports.models import Report
from reports.output import DocumentOutput
from tests.factories import AdminFactory, EventFactory, ReportFactory, UserFactory
from tests.helpers import Pause, assert_problem, needs_service, while_paused

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def event_with_two():
    event = EventFactory(title="Town hall", capacity=5)
    people = [UserFactory(full_name="Ann"), UserFactory(full_name="Bob")]
    for person in people:
        event_services.enroll(event_id=event.pk, participant_id=person.pk)
    mail.outbox.clear()
    return event, people


def test_request_build_download_and_email(admin_api, admin, event_with_two):
    event, people = event_with_two
    response = admin_api.post(f"/api/v1/events/{event.pk}/reports/", {})
    assert response.status_code == 202
    accepted = response.json()
    assert (accepted["status"], accepted["event"], accepted["recipients"]) == (
        "pending",
        event.pk,
        [admin.email],
    )

    report = admin_api.get(f"/api/v1/reports/{accepted['id']}/").json()
    assert report["status"] == "done"
    assert report["participant_count"] == 2
    assert report["completed_at"] and not report["error"]

    download = admin_api.get(f"/api/v1/reports/{accepted['id']}/download/")
    assert download.status_code == 200
    assert download["Content-Type"] == "application/json"
    assert "attachment" in download["Content-Disposition"]
    document = json.loads(b"".join(download.streaming_content))
    assert document["event"]["id"] == event.pk and document["event"]["title"] == "Town hall"
    assert document["participant_count"] == 2
    assert [(p["id"], p["full_name"], p["email"]) for p in document["participants"]] == [
        (p.pk, p.full_name, p.email) for p in people
    ]

    [email] = mail.outbox
    assert email.to == [admin.email]
    assert email.subject == "Participant report ready: Town hall"
    [(name, content, mimetype)] = email.attachments
    assert (name, mimetype) == (f"event-{event.pk}-report-{accepted['id']}.json", "application/json")
    assert json.loads(content) == document
    note = Notification.objects.get(kind="report_ready")
    assert (note.user_id, note.status) == (admin.pk, "sent")


def test_other_recipients_get_the_document_and_the_requester_a_note(admin_api, admin, event_with_two):
    event, _ = event_with_two
    staff = AdminFactory()
    response = admin_api.post(
        f"/api/v1/events/{event.pk}/reports/", {"recipients": [staff.email.upper(), "hr@example.com"]}
    )
    assert response.status_code == 202
    by_address = {m.to[0]: m for m in mail.outbox}
    assert set(by_address) == {staff.email, "hr@example.com", admin.email}
    assert by_address[staff.email].attachments and by_address["hr@example.com"].attachments
    assert not by_address[admin.email].attachments
    assert Notification.objects.get(to_email=staff.email).user_id == staff.pk
    assert Notification.objects.get(to_email="hr@example.com").user_id is None


@pytest.mark.parametrize(
    "payload",
    [
        {"recipients": ["not-an-email"]},
        {"recipients": []},
        {"recipients": "hr@example.com"},
        {"recipients": ["a@example.com"] * 51},
        {"recipients": [f"{'a' * 64}@{'b' * 63}.{'c' * 63}.{'d' * 63}.example"]},  # 266 characters
        {"format": "csv"},
    ],
)
def test_bad_requests_create_nothing(admin_api, payload):
    event = EventFactory()
    assert_problem(admin_api.post(f"/api/v1/events/{event.pk}/reports/", payload), 400, "validation_error")
    assert not Report.objects.exists()


def test_unknown_event_and_unknown_report(admin_api):
    assert_problem(admin_api.post("/api/v1/events/424242/reports/", {}), 404, "not_found")
    # A report looked up by id goes through services.get_report, which says what was not found.
    for url in ("/api/v1/reports/424242/", "/api/v1/reports/424242/download/"):
        assert assert_problem(admin_api.get(url), 404, "not_found")["detail"] == "No report with this id."
    assert_problem(admin_api.get("/api/v1/reports/x1/"), 404, "not_found")  # no id: no such route
    assert not Report.objects.exists()


def test_get_report_raises_report_not_found():
    report = ReportFactory()
    assert services.get_report(str(report.pk)) == report
    with pytest.raises(ReportNotFound):
        services.get_report(report.pk + 1)


def test_download_before_done_is_409(admin_api):
    report = ReportFactory(status="running")
    assert_problem(admin_api.get(f"/api/v1/reports/{report.pk}/download/"), 409, "report_not_ready")


def test_list_filter_and_roles(admin_api, participant_api):
    first, second = EventFactory(), EventFactory()
    for event in (first, second, first):  # requesting is tested above; this is about the list
        ReportFactory(event=event)
    listed = admin_api.get(f"/api/v1/reports/?event={first.pk}").json()
    assert listed["count"] == 2 and {r["event"] for r in listed["results"]} == {first.pk}
    assert admin_api.get("/api/v1/reports/").json()["count"] == 3
    assert_problem(admin_api.get("/api/v1/reports/?event=abc"), 400, "validation_error")
    assert_problem(participant_api.get("/api/v1/reports/"), 403, "permission_denied")
    assert_problem(participant_api.post(f"/api/v1/events/{first.pk}/reports/", {}), 403, "permission_denied")
    report_id = listed["results"][0]["id"]
    assert_problem(participant_api.get(f"/api/v1/reports/{report_id}/download/"), 403, "permission_denied")


def test_building_twice_sends_once(admin, event_with_two):
    event, _ = event_with_two
    report = services.request_report(event_id=event.pk, requested_by_id=admin.pk, recipients=[admin.email])
    assert services.build(report_id=report.pk) == "done"  # a redelivered task finds it done
    assert len(mail.outbox) == 1


def test_an_interrupted_build_is_built_again(admin, event_with_two, monkeypatch):
    event, _ = event_with_two
    report = ReportFactory(event=event, requested_by=admin, recipients=[admin.email], status="running")
    assert services.build(report_id=report.pk) == "done"  # the worker died; the task came back
    report.refresh_from_db()
    assert (report.status, report.participant_count, len(mail.outbox)) == ("done", 2, 1)


def test_a_failing_build_is_marked_failed(admin_api, event_with_two, monkeypatch):
    event, _ = event_with_two

    def broken(self, data):
        raise OSError("disk full")

    # Where both builders write (the Python one and the database one alike).
    monkeypatch.setattr(DocumentOutput, "write", broken)
    accepted = admin_api.post(f"/api/v1/events/{event.pk}/reports/", {}).json()
    report = admin_api.get(f"/api/v1/reports/{accepted['id']}/").json()
    assert report["status"] == "failed"
    assert "disk full" in report["error"]
    # Its recipient (the requester) is told it will not come; the error itself stays with admins.
    (email,) = mail.outbox
    assert email.subject == "Participant report failed: Town hall" and "disk full" not in email.body
    assert Notification.objects.get(kind="report_failed").event_id == event.pk


def test_a_build_that_meets_the_database_away_is_built_later(admin_api, event_with_two, monkeypatch):
    """It stayed pending (or running) for good: the failed task's message was acknowledged."""
    from django.db import OperationalError

    event, _ = event_with_two
    build, calls = services._build, []

    def away_once(report_id):
        calls.append(report_id)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return build(report_id)

    monkeypatch.setattr(services, "_build", away_once)
    accepted = admin_api.post(f"/api/v1/events/{event.pk}/reports/", {}).json()
    report = admin_api.get(f"/api/v1/reports/{accepted['id']}/").json()
    assert (report["status"], report["participant_count"], len(calls)) == ("done", 2, 2)
    assert len(mail.outbox) == 1


def test_empty_event_report(admin_api):
    event = EventFactory()
    accepted = admin_api.post(f"/api/v1/events/{event.pk}/reports/", {}).json()
    document = json.loads(
        b"".join(admin_api.get(f"/api/v1/reports/{accepted['id']}/download/").streaming_content)
    )
    assert (document["participants"], document["participant_count"]) == ([], 0)


def test_admin_action_and_download_link(admin, event_with_two):
    event, _ = event_with_two
    browser = Client()
    browser.force_login(admin)
    response = browser.post(
        "/admin/events/event/", {"action": "generate_report", "_selected_action": [event.pk]}
    )
    assert response.status_code == 302
    report = Report.objects.get()
    assert report.status == "done"
    listing = browser.get("/admin/reports/report/").content.decode()
    assert f"/admin/reports/report/{report.pk}/download/" in listing
    download = browser.get(f"/admin/reports/report/{report.pk}/download/")
    assert download.status_code == 200
    assert json.loads(b"".join(download.streaming_content))["participant_count"] == 2
    assert browser.get("/admin/notifications/notification/").status_code == 200


def test_a_report_too_big_to_attach_is_linked_instead(admin_api, admin, event_with_two, settings):
    event, _ = event_with_two
    settings.REPORT_ATTACHMENT_MAX_BYTES = 100
    accepted = admin_api.post(f"/api/v1/events/{event.pk}/reports/", {}).json()
    [email] = mail.outbox
    assert email.attachments == []
    assert f"GET /api/v1/reports/{accepted['id']}/download/" in email.body
    assert admin_api.get(f"/api/v1/reports/{accepted['id']}/").json()["status"] == "done"


def test_the_report_lists_the_waiting_list_after_the_participants(admin_api):
    event = EventFactory(title="Sold out", capacity=1)
    holder = UserFactory()
    event_services.enroll(event_id=event.pk, participant_id=holder.pk)
    waiting = UserFactory.create_batch(3)
    for person in waiting:
        event_services.join_waitlist(event_id=event.pk, participant_id=person.pk)
    event_services.leave_waitlist(event_id=event.pk, participant_id=waiting[0].pk)
    accepted = admin_api.post(f"/api/v1/events/{event.pk}/reports/", {}).json()
    download = admin_api.get(f"/api/v1/reports/{accepted['id']}/download/")
    document = json.loads(b"".join(download.streaming_content))
    assert [p["id"] for p in document["participants"]] == [holder.pk]
    assert [(w["id"], w["email"], w["position"]) for w in document["waitlist"]] == [
        (waiting[1].pk, waiting[1].email, 1),
        (waiting[2].pk, waiting[2].email, 2),
    ]
    assert all(w["joined_at"] and w["full_name"] for w in document["waitlist"])


def test_duplicate_recipients_get_one_email_each(admin_api, admin, event_with_two):
    event, _ = event_with_two
    response = admin_api.post(
        f"/api/v1/events/{event.pk}/reports/",
        {"recipients": ["hr@example.com", "HR@example.com ", "hr@example.com"]},
        format="json",
    )
    assert response.status_code == 202
    assert response.json()["recipients"] == ["hr@example.com"]
    assert [m.to for m in mail.outbox].count(["hr@example.com"]) == 1


def test_a_report_larger_than_one_streaming_chunk(admin_api, monkeypatch):
    """Whichever builder the database has: rows fetched 3 at a time (Python builder), blocks of a
    few rows (database builder), output blocks of 200 bytes."""
    monkeypatch.setattr(services, "CHUNK_SIZE", 3)
    monkeypatch.setattr(database, "BLOCK_BYTES", 200)
    monkeypatch.setattr(output, "BLOCK_BYTES", 200)
    event = EventFactory(capacity=8)
    people = UserFactory.create_batch(8)
    for person in people:
        event_services.enroll(event_id=event.pk, participant_id=person.pk)
    accepted = admin_api.post(f"/api/v1/events/{event.pk}/reports/", {}).json()
    plain = b"".join(admin_api.get(f"/api/v1/reports/{accepted['id']}/download/").streaming_content)
    document = json.loads(plain)
    assert len(plain) > 3 * 200
    assert document["participant_count"] == 8
    assert [p["id"] for p in document["participants"]] == [p.pk for p in people]
    compressed = admin_api.get(f"/api/v1/reports/{accepted['id']}/download/?format=gzip")
    assert gzip.decompress(b"".join(compressed.streaming_content)) == plain


def test_the_document_is_also_offered_gzip_compressed(admin_api, event_with_two):
    event, people = event_with_two
    report_id = admin_api.post(f"/api/v1/events/{event.pk}/reports/", {}).json()["id"]
    plain = admin_api.get(f"/api/v1/reports/{report_id}/download/")
    plain_bytes = b"".join(plain.streaming_content)
    compressed = admin_api.get(f"/api/v1/reports/{report_id}/download/?format=gzip")
    assert compressed.status_code == 200
    assert compressed["Content-Type"] == "application/gzip"
    assert "Content-Encoding" not in compressed  # a file to keep, not a transfer encoding
    assert compressed["Content-Disposition"] == (
        f'attachment; filename="event-{event.pk}-report-{report_id}.json.gz"'
    )
    compressed_bytes = b"".join(compressed.streaming_content)
    assert gzip.decompress(compressed_bytes) == plain_bytes
    assert json.loads(plain_bytes)["participant_count"] == 2
    # The plain download stays as the contract says, also for clients that accept gzip.
    for headers in ({}, {"HTTP_ACCEPT_ENCODING": "gzip"}):
        again = admin_api.get(f"/api/v1/reports/{report_id}/download/", **headers)
        assert (again["Content-Type"], "Content-Encoding" in again) == ("application/json", False)
        assert b"".join(again.streaming_content) == plain_bytes
    as_json = admin_api.get(f"/api/v1/reports/{report_id}/download/?format=json")
    assert b"".join(as_json.streaming_content) == plain_bytes
    described = admin_api.get(f"/api/v1/reports/{report_id}/").json()
    assert (described["document_bytes"], described["gzip_bytes"]) == (
        len(plain_bytes),
        len(compressed_bytes),
    )


def test_the_gzip_download_before_done_is_409(admin_api):
    report = ReportFactory(status="running")
    response = admin_api.get(f"/api/v1/reports/{report.pk}/download/?format=gzip")
    assert_problem(response, 409, "report_not_ready")


def test_a_report_stored_without_its_gzip_file_is_compressed_on_the_way(admin_api, event_with_two):
    """Reports built before the gzip file existed still have a .json.gz download."""
    event, _ = event_with_two
    report_id = admin_api.post(f"/api/v1/events/{event.pk}/reports/", {}).json()["id"]
    Report.objects.filter(pk=report_id).update(document_gzip="", gzip_bytes=None)
    plain = b"".join(admin_api.get(f"/api/v1/reports/{report_id}/download/").streaming_content)
    compressed = admin_api.get(f"/api/v1/reports/{report_id}/download/?format=gzip")
    assert compressed["Content-Type"] == "application/gzip"
    assert gzip.decompress(b"".join(compressed.streaming_content)) == plain


def test_the_email_says_how_many_and_how_big(admin_api, admin, settings):
    settings.REPORT_ATTACHMENT_MAX_BYTES = 100  # linked, not attached
    event = EventFactory(title="Sold out", capacity=1)
    event_services.enroll(event_id=event.pk, participant_id=UserFactory().pk)
    for person in UserFactory.create_batch(2):
        event_services.join_waitlist(event_id=event.pk, participant_id=person.pk)
    mail.outbox.clear()
    report_id = admin_api.post(f"/api/v1/events/{event.pk}/reports/", {}).json()["id"]
    report = Report.objects.get(pk=report_id)
    [email] = mail.outbox
    assert email.attachments == []
    assert "1 participant, 2 on the waiting list" in email.body
    assert f"{human_size(report.document_bytes)} of JSON" in email.body
    assert f"{human_size(report.gzip_bytes)} compressed" in email.body
    assert f"GET /api/v1/reports/{report_id}/download/?format=gzip" in email.body
    assert report.document_bytes == report.document.size and report.gzip_bytes == report.document_gzip.size


def test_the_admin_offers_both_downloads(admin, event_with_two):
    event, _ = event_with_two
    report = services.request_report(event_id=event.pk, requested_by_id=admin.pk, recipients=[admin.email])
    browser = Client()
    browser.force_login(admin)
    url = f"/admin/reports/report/{report.pk}/download/"
    assert f"{url}?format=gzip" in browser.get("/admin/reports/report/").content.decode()
    plain = b"".join(browser.get(url).streaming_content)
    compressed = browser.get(f"{url}?format=gzip")
    assert compressed["Content-Type"] == "application/gzip"
    assert gzip.decompress(b"".join(compressed.streaming_content)) == plain


@pytest.mark.parametrize("chosen", ["", "xml", "GZIP"])
def test_an_unknown_download_format_is_400(admin_api, event_with_two, chosen):
    event, _ = event_with_two
    accepted = admin_api.post(f"/api/v1/events/{event.pk}/reports/", {}).json()
    answer = admin_api.get(f"/api/v1/reports/{accepted['id']}/download/?format={chosen}")
    assert_problem(answer, 400, "validation_error")
    assert admin_api.get(f"/api/v1/reports/{accepted['id']}/download/?format=json").status_code == 200


def test_a_deleted_report_takes_its_documents_with_it(admin_api, admin, event_with_two):
    """Every participant's name and address stayed on disk after the row had gone."""
    event, _ = event_with_two
    paths = []
    for _ in range(2):
        accepted = admin_api.post(f"/api/v1/events/{event.pk}/reports/", {}).json()
        report = Report.objects.get(pk=accepted["id"])
        assert report.status == "done"
        paths.append([report.document.path, report.document_gzip.path])
    first, second = (
        Report.objects.get(pk=pk) for pk in Report.objects.order_by("id").values_list("pk", flat=True)
    )
    browser = Client()
    browser.force_login(admin)
    assert browser.post(f"/admin/reports/report/{first.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not any(os.path.exists(path) for path in paths[0])
    assert all(os.path.exists(path) for path in paths[1])
    event_services.delete_event(event_id=event.pk)  # its reports go with it, and their documents
    assert not Report.objects.exists()
    assert not any(os.path.exists(path) for path in paths[1])


# --- A report deleted before it was built -------------------------------------------------------


def withdrawn_emails():
    return {m.to[0]: m for m in mail.outbox if m.subject.startswith("Participant report withdrawn")}


def test_recipients_of_a_report_deleted_with_its_event_are_told_it_will_not_come(admin_api, admin):
    event = EventFactory(title="Town hall")
    report = ReportFactory(
        event=event, requested_by=admin, recipients=["staff@example.com", "hr@example.com"]
    )
    assert admin_api.delete(f"/api/v1/events/{event.pk}/").status_code == 204
    told = withdrawn_emails()
    assert set(told) == {"staff@example.com", "hr@example.com", admin.email}
    assert all("Town hall" in m.body and "the event was deleted" in m.body for m in told.values())
    notes = Notification.objects.filter(kind="report_withdrawn")
    assert sorted(notes.values_list("to_email", flat=True)) == sorted(told)
    assert not notes.filter(event__isnull=False).exists()
    assert services.build(report_id=report.pk) is None  # its task, delivered after: nothing to do


def test_recipients_of_a_report_request_deleted_in_the_admin_are_told(admin):
    report = ReportFactory(requested_by=admin, recipients=["staff@example.com"], status="running")
    browser = Client()
    browser.force_login(admin)
    assert browser.post(f"/admin/reports/report/{report.pk}/delete/", {"post": "yes"}).status_code == 302
    told = withdrawn_emails()
    assert set(told) == {"staff@example.com", admin.email}
    assert "the report request was deleted" in told["staff@example.com"].body
    notes = Notification.objects.filter(kind="report_withdrawn")
    assert set(notes.values_list("event_id", flat=True)) == {report.event_id}  # the event is still there


def test_a_built_report_deleted_with_its_event_tells_nobody_again(admin_api, admin, event_with_two):
    event, _ = event_with_two
    admin_api.post(f"/api/v1/events/{event.pk}/reports/", {"recipients": ["staff@example.com"]})
    assert Report.objects.get().status == "done"
    mail.outbox.clear()
    event_services.delete_event(event_id=event.pk)
    assert withdrawn_emails() == {}


def test_a_report_deleted_while_it_is_built_is_dropped_quietly(admin, event_with_two, monkeypatch, caplog):
    event, _ = event_with_two
    report = ReportFactory(event=event, requested_by=admin, recipients=[admin.email])
    written = services.write_document

    def deleted_meanwhile(*args, **kwargs):
        counts = written(*args, **kwargs)
        event_services.delete_event(event_id=event.pk)
        return counts

    monkeypatch.setattr(services, "write_document", deleted_meanwhile)
    assert services.build(report_id=report.pk) is None
    assert not Report.objects.exists()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert set(withdrawn_emails()) == {admin.email}  # told once, when it was deleted
    assert not [m for m in mail.outbox if m.subject.startswith("Participant report ready")]


def test_a_build_interrupted_again_and_again_is_given_up(admin, event_with_two):
    """A build that never ends (its worker lost, or killed past the tasks' time limit) was delivered
    again for ever, at the head of the reports queue: after INTERRUPTED_BUILDS_ALLOWED the next
    start marks it failed and tells its addressees; one interruption fewer still builds."""
    event, _ = event_with_two
    allowed = services.INTERRUPTED_BUILDS_ALLOWED
    given_up, built = (
        ReportFactory(event=event, requested_by=admin, recipients=[admin.email], status="running", attempts=n)
        for n in (1 + allowed, allowed)  # starts so far: the first build and its interruptions
    )
    assert services.build(report_id=given_up.pk) == "failed"
    given_up.refresh_from_db()
    assert given_up.error.startswith(f"Gave up: the build was interrupted {allowed + 1} times")
    assert (given_up.attempts, bool(given_up.document)) == (allowed + 2, False)
    assert [m.subject for m in mail.outbox] == ["Participant report failed: Town hall"]
    assert services.build(report_id=built.pk) == "done"
    built.refresh_from_db()
    assert (built.status, built.attempts) == ("done", allowed + 1)


def stored_reports() -> set[str]:
    folder = os.path.join(settings.MEDIA_ROOT, "reports")
    return set(os.listdir(folder)) if os.path.isdir(folder) else set()


@needs_service("DATABASE_URL")
def test_deleting_an_event_does_not_wait_for_its_report_being_stored(admin, event_with_two, monkeypatch):
    """The documents were stored while the report and its event were locked: a slow storage (a
    network volume) held the event's deletion meanwhile. A report that went meanwhile leaves no
    documents behind."""
    event, _ = event_with_two
    report = ReportFactory(event=event, requested_by=admin, recipients=[admin.email])
    before = stored_reports()
    pause, save = Pause(), FileSystemStorage.save

    def slow_save(storage, name, content, **kwargs):
        pause()
        return save(storage, name, content, **kwargs)

    monkeypatch.setattr(FileSystemStorage, "save", slow_save)
    outcome: list[str | None] = []

    def build() -> None:
        try:
            outcome.append(services.build(report_id=report.pk))
        finally:
            connection.close()

    builder = threading.Thread(target=build)
    builder.start()
    try:
        assert pause.reached.wait(10)
        started = time.monotonic()
        event_services.delete_event(event_id=event.pk)
        assert time.monotonic() - started < 5
    finally:
        pause.released.set()
        builder.join(20)
    assert outcome == [None]
    assert not Report.objects.exists()
    assert stored_reports() == before


def while_telling(first, second, monkeypatch) -> list[Exception]:
    """Runs first() in a thread until it has queued its report notifications (its transaction then
    held open), second() in another meanwhile, and lets both finish; returns what they raised. Each
    runs in its own top-level transaction, as the worker and a web process do, and the e-mails go
    out in-process after the commits."""
    pause, tell = Pause(), services._tell

    def tell_then_pause(*args, **kwargs):
        tell(*args, **kwargs)
        pause()

    monkeypatch.setattr(services, "_tell", tell_then_pause)
    return while_paused(first, second, pause, second_must_wait=True)


@needs_service("DATABASE_URL")
def test_a_build_failing_while_its_event_is_deleted_takes_turns_with_the_deletion(admin, monkeypatch):
    """The failure locked the report, then needed the event (its notifications refer to it); the
    deletion locked the event, then needed the report: PostgreSQL aborted one as a deadlock."""
    event = EventFactory(title="Town hall")
    report = ReportFactory(event=event, requested_by=admin, recipients=[admin.email])

    def broken(self, data):
        raise OSError("disk full")

    monkeypatch.setattr(DocumentOutput, "write", broken)
    errors = while_telling(
        lambda: services.build(report_id=report.pk),
        lambda: event_services.delete_event(event_id=event.pk),
        monkeypatch,
    )
    assert errors == []
    assert not Report.objects.exists()
    # Told once, and the e-mail went out.
    assert set(Notification.objects.values_list("kind", "status")) == {("report_failed", "sent")}


@needs_service("DATABASE_URL")
def test_a_report_deleted_alone_while_its_event_is_deleted_takes_turns_with_it(admin, monkeypatch):
    """Deleted alone, the report's notifications refer to its event: the same lock order."""
    event = EventFactory(title="Town hall")
    report = ReportFactory(event=event, requested_by=admin, recipients=[admin.email])
    errors = while_telling(
        lambda: Report.objects.get(pk=report.pk).delete(),
        lambda: event_services.delete_event(event_id=event.pk),
        monkeypatch,
    )
    assert errors == []
    assert not Report.objects.exists()
    # Told once, and the e-mail went out.
    assert list(Notification.objects.values_list("kind", "status")) == [("report_withdrawn", "sent")]
