"""The two report builders write the same document.

The database builder (PostgreSQL writes the JSON rows, reports.database) must give, after parsing,
exactly what the Python builder (the ORM and the json module, reports.domain) gives for the same
rows: the names and emails with every kind of character, the timestamps as Python's isoformat()
writes them (with and without microseconds), the order and the waiting list's positions.
The Python builder is the only one on SQLite (the embedded pass); the comparison needs PostgreSQL
(the services pass).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import threading
from typing import Any

import pytest
from django.db import connection, connections

from events.models import Enrollment, Event, WaitlistEntry
from participants.models import User
from reports import database, output, services
from reports.output import DocumentOutput
from tests.factories import EventFactory
from tests.helpers import needs_service

pytestmark = pytest.mark.django_db(transaction=True)

GENERATED_AT = "2026-11-29T06:10:15.123456+00:00"
UTC = dt.UTC
NAMES = [
    'Quote " and backslash \\ and slash /',
    "Ünïcödé Zoë, 日本語, emoji 🎉",
    "Tab\tnew line\ncarriage\rcontrol \x01\x1f end",
    "Line separator \u2028 and paragraph \u2029",
    "O'Brien; DROP TABLE x; --",
    "",
]
# Enrollment times: with microseconds, without (isoformat() drops ".000000"), trailing zeros
# (".120000"), given in another zone, and two equal times (the id breaks the tie).
TIMES = [
    dt.datetime(2026, 11, 29, 6, 10, 15, 123456, tzinfo=UTC),
    dt.datetime(2026, 11, 29, 6, 10, 16, tzinfo=UTC),
    dt.datetime(2026, 11, 29, 6, 10, 17, 120000, tzinfo=UTC),
    dt.datetime(2026, 11, 29, 12, 40, 18, 1, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    dt.datetime(2026, 11, 29, 7, 0, 0, 500, tzinfo=UTC),
    dt.datetime(2026, 11, 29, 7, 0, 0, 500, tzinfo=UTC),
]


def _people(prefix: str, count: int) -> list[User]:
    # Straight to the table: the builders must cope with whatever the rows hold.
    return [
        User.objects.create(email=f"{prefix}{n}+tag@exämple.com", full_name=NAMES[n % len(NAMES)])
        for n in range(count)
    ]


@pytest.fixture
def fixed_event() -> Event:
    """Six participants enrolled (out of creation order), four waiting, one of whom left."""
    event = EventFactory(
        title='Town hall "2026" ünïcode', description="Line one\nline two \\ end", capacity=6
    )
    people = _people("p", 6)
    for person, enrolled_at in zip(reversed(people), TIMES, strict=True):
        Enrollment.objects.create(event=event, participant=person, created_at=enrolled_at)
    # Three of them checked in (times with and without microseconds, one given in another zone);
    # the others' checked_in_at stays null.
    for person, checked_in_at in zip(people[:3], TIMES[1:4], strict=True):
        Enrollment.objects.filter(event=event, participant=person).update(checked_in_at=checked_in_at)
    waiting = _people("w", 4)
    for n, person in enumerate(waiting):
        WaitlistEntry.objects.create(event=event, participant=person, joined_at=TIMES[n])
    WaitlistEntry.objects.filter(participant=waiting[1]).delete()
    Event.objects.filter(pk=event.pk).update(enrolled_count=6, waitlist_count=3)
    event.refresh_from_db()
    return event


def build(event: Event, builder: str) -> tuple[bytes, bytes, int, int, DocumentOutput]:
    with DocumentOutput() as out:
        participants, waiting = services.write_document(
            event, out, generated_at=GENERATED_AT, builder=builder
        )
        return out.plain.read(), out.gzip.read(), participants, waiting, out


def expected_document(event: Event) -> dict[str, Any]:
    """Written out from the ORM by hand: what the document must say, whichever builder."""
    enrollments = Enrollment.objects.filter(event=event).select_related("participant")
    entries = WaitlistEntry.objects.filter(event=event).select_related("participant").order_by("id")
    return {
        "event": {
            "id": event.pk,
            "title": event.title,
            "description": event.description,
            "date": event.date.isoformat(),
            "time": event.time.isoformat(),
            "location": event.location,
            "capacity": event.capacity,
        },
        "generated_at": GENERATED_AT,
        "participants": [
            {
                "id": e.participant.pk,
                "full_name": e.participant.full_name,
                "email": e.participant.email,
                "enrolled_at": e.created_at.astimezone(UTC).isoformat(),
                "checked_in_at": e.checked_in_at.astimezone(UTC).isoformat() if e.checked_in_at else None,
            }
            for e in enrollments.order_by("created_at", "id")
        ],
        "waitlist": [
            {
                "id": w.participant.pk,
                "full_name": w.participant.full_name,
                "email": w.participant.email,
                "position": position,
                "joined_at": w.joined_at.astimezone(UTC).isoformat(),
            }
            for position, w in enumerate(entries, start=1)
        ],
        "participant_count": enrollments.count(),
    }


def test_the_python_builder_writes_the_expected_document(fixed_event):
    plain, compressed, participants, waiting, _ = build(fixed_event, services.PYTHON)
    document = json.loads(plain)
    assert document == expected_document(fixed_event)
    assert list(document) == ["event", "generated_at", "participants", "waitlist", "participant_count"]
    assert (participants, waiting) == (6, 3)
    assert gzip.decompress(compressed) == plain
    enrolled = [p["enrolled_at"] for p in document["participants"]]
    # The formats the old builder wrote: six digits, none when zero, the offset as +00:00.
    assert enrolled == [
        "2026-11-29T06:10:15.123456+00:00",
        "2026-11-29T06:10:16+00:00",
        "2026-11-29T06:10:17.120000+00:00",
        "2026-11-29T07:00:00.000500+00:00",
        "2026-11-29T07:00:00.000500+00:00",
        "2026-11-29T07:10:18.000001+00:00",
    ]


def test_the_default_builder_follows_the_database():
    expected = services.DATABASE if connection.vendor == "postgresql" else services.PYTHON
    assert services.default_builder() == expected


@needs_service("DATABASE_URL")
def test_both_builders_write_the_same_document(fixed_event):
    by_python, _, *python_counts, _ = build(fixed_event, services.PYTHON)
    by_database, compressed, *database_counts, _ = build(fixed_event, services.DATABASE)
    assert json.loads(by_database) == json.loads(by_python) == expected_document(fixed_event)
    assert database_counts == python_counts == [6, 3]
    assert gzip.decompress(compressed) == by_database
    # Same separators and member order; only non-ASCII text differs (raw UTF-8 instead of \\u escapes).
    ascii_only = json.dumps(json.loads(by_database), ensure_ascii=True).encode()
    assert ascii_only == json.dumps(json.loads(by_python), ensure_ascii=True).encode()


@needs_service("DATABASE_URL")
def test_the_database_builder_in_blocks_of_a_few_rows(fixed_event, monkeypatch):
    """Rows gathered into many blocks (a few bytes each): the first block's separator is dropped
    once, the line ends of every block are counted and removed."""
    _, _, *whole, _ = build(fixed_event, services.DATABASE)
    for block_bytes in (1, 150, 400):
        monkeypatch.setattr(database, "BLOCK_BYTES", block_bytes)
        monkeypatch.setattr(output, "BLOCK_BYTES", block_bytes)
        plain, compressed, *counts, _ = build(fixed_event, services.DATABASE)
        assert json.loads(plain) == expected_document(fixed_event), block_bytes
        assert counts == whole == [6, 3]
        assert gzip.decompress(compressed) == plain


@pytest.mark.parametrize("builder", [services.PYTHON, services.DATABASE])
def test_an_empty_event(builder):
    if builder == services.DATABASE and not database.is_available():
        pytest.skip("the database builder needs PostgreSQL")
    event = EventFactory()
    plain, compressed, participants, waiting, _ = build(event, builder)
    document = json.loads(plain)
    assert (document["participants"], document["waitlist"], document["participant_count"]) == ([], [], 0)
    assert (participants, waiting) == (0, 0)
    assert gzip.decompress(compressed) == plain


@needs_service("DATABASE_URL")
def test_the_database_builder_reads_one_snapshot(fixed_event, monkeypatch):
    """A promotion committed between the two lists is not seen by the second: the participants and
    the waiting list come from one REPEATABLE READ snapshot."""
    promoted = WaitlistEntry.objects.filter(event=fixed_event).order_by("id").first()
    assert promoted is not None
    copy_rows = database.copy_rows

    def promote() -> None:  # in another connection: its own transaction, committed at once
        WaitlistEntry.objects.filter(pk=promoted.pk).delete()
        Enrollment.objects.create(event=fixed_event, participant_id=promoted.participant_id)
        connections.close_all()

    def promote_after_the_participants(sql: str, event_id: int, out: DocumentOutput) -> int:
        rows = copy_rows(sql, event_id, out)
        if sql == database.participants_sql():
            thread = threading.Thread(target=promote)
            thread.start()
            thread.join()
        return rows

    monkeypatch.setattr(database, "copy_rows", promote_after_the_participants)
    plain, _, participants, waiting, _ = build(fixed_event, services.DATABASE)
    document = json.loads(plain)
    assert Enrollment.objects.filter(event=fixed_event, participant_id=promoted.participant_id).exists()
    assert (participants, waiting) == (6, 3)
    assert promoted.participant_id in [w["id"] for w in document["waitlist"]]
    assert promoted.participant_id not in [p["id"] for p in document["participants"]]
