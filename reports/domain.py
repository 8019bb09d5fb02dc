"""The reports' rules and errors, and the report document written as a stream of JSON text
(standard library and config.errors only).

A report of 100,000 participants must not sit in memory at once: the document is produced piece by
piece from an iterator of participants, and its writer takes one piece at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from typing import Any

from config.errors import Conflict, NotFound

EVENT_FIELDS = ("id", "title", "description", "date", "time", "location", "capacity")
# checked_in_at: when they checked in at the door (ISO 8601), null while they have not.
PARTICIPANT_FIELDS = ("id", "full_name", "email", "enrolled_at", "checked_in_at")
WAITLIST_FIELDS = ("id", "full_name", "email", "position", "joined_at")
# One encoder for the whole document (json.dumps with options builds a new one per call).
_encode = json.JSONEncoder(default=str).encode


# --- Errors (the reports' one home for them; config.exceptions answers each as problem+json) -------


class ReportNotFound(NotFound):
    message = "No report with this id."


class ReportNotReady(Conflict):
    code = "report_not_ready"
    message = "This report is not ready yet; try again when its status is done."


class Status(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Counter:
    """Counts the participants that went through the stream."""

    def __init__(self) -> None:
        self.value = 0


def document_chunks(
    *,
    event: Mapping[str, Any],
    participants: Iterable[Mapping[str, Any]],
    generated_at: str,
    counter: Counter | None = None,
    waitlist: Iterable[Mapping[str, Any]] = (),
) -> Iterator[str]:
    """The report as JSON text, in pieces: the participants, then the waiting list in order.
    `participant_count` comes last, once they are counted."""
    counter = counter or Counter()
    yield document_head(event=event, generated_at=generated_at)
    for participant in participants:
        row = {name: participant[name] for name in PARTICIPANT_FIELDS}
        yield ("" if counter.value == 0 else ", ") + _encode(row)
        counter.value += 1
    yield WAITLIST_OPENING
    for index, entry in enumerate(waitlist):
        yield ("" if index == 0 else ", ") + _encode({name: entry[name] for name in WAITLIST_FIELDS})
    yield document_tail(participant_count=counter.value)


# The document around its two lists, shared by every builder (the Python one above and the
# database one of reports.database), so that they cannot differ in anything but the rows.
WAITLIST_OPENING = '], "waitlist": ['


def document_head(*, event: Mapping[str, Any], generated_at: str) -> str:
    """The document up to the opening of the participants' list."""
    head = {"event": {name: event[name] for name in EVENT_FIELDS}, "generated_at": generated_at}
    return _encode(head)[:-1] + ', "participants": ['


def document_tail(*, participant_count: int) -> str:
    """The document from the end of the waiting list on."""
    return f'], "participant_count": {participant_count}}}'


def human_size(size: int) -> str:
    """A byte count for people: "812 bytes", "14.6 MB" (decimal units, as file managers show)."""
    if size < 1000:
        return f"{size} byte{'s' if size != 1 else ''}"
    scaled = float(size)
    for unit in ("kB", "MB"):
        scaled /= 1000
        if scaled < 999.95:  # (what would round to "1000.0" is shown in the next unit)
            return f"{scaled:.1f} {unit}"
    return f"{scaled / 1000:.1f} GB"
