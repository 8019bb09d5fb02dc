"""The report document, written as a stream of JSON text (standard library only).

A report of 100,000 participants must not sit in memory at once: the document is produced piece by
piece from an iterator of participants, and its writer takes one piece at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from typing import Any

EVENT_FIELDS = ("id", "title", "description", "date", "time", "location", "capacity")
PARTICIPANT_FIELDS = ("id", "full_name", "email", "enrolled_at")
WAITLIST_FIELDS = ("id", "full_name", "email", "position", "joined_at")
# One encoder for the whole document (json.dumps with options builds a new one per call).
_encode = json.JSONEncoder(default=str).encode


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
    head = {"event": {name: event[name] for name in EVENT_FIELDS}, "generated_at": generated_at}
    yield _encode(head)[:-1] + ', "participants": ['
    for participant in participants:
        row = {name: participant[name] for name in PARTICIPANT_FIELDS}
        yield ("" if counter.value == 0 else ", ") + _encode(row)
        counter.value += 1
    yield '], "waitlist": ['
    for index, entry in enumerate(waitlist):
        yield ("" if index == 0 else ", ") + _encode({name: entry[name] for name in WAITLIST_FIELDS})
    yield f'], "participant_count": {counter.value}}}'
