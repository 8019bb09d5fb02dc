"""iCalendar (RFC 5545) files of events: the attachment of participants' emails, one event's file and
a participant's feed. Pure functions of the event snapshot that notifications keep
(`services.event_context`: title, date, time, duration_minutes, location, sequence) and the event's
id, so that the worker and the API write the same entry for the same event.

- UID: `event-{id}@{domain}`, `domain` being the domain of DEFAULT_FROM_EMAIL (the platform's own
  mail domain, which already identifies it to the people it writes to). The same for every email,
  file and feed of the event, so calendar apps update or remove the entry they hold. It changes
  only if DEFAULT_FROM_EMAIL's domain does.
- Times: DTSTART/DTEND are wall-clock times in settings.TIME_ZONE with its VTIMEZONE (with
  TIME_ZONE=UTC they are written in UTC, `…Z`, which needs none).
- SEQUENCE: the event's calendar_sequence, raised whenever it moves. A cancellation carries the
  current one too: a later re-enrollment's REQUEST then has the same SEQUENCE and a newer DTSTAMP,
  which RFC 5546 orders after the CANCEL (equal SEQUENCE: the newer DTSTAMP wins); a CANCEL one
  higher would make calendar apps ignore that REQUEST as outdated.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping
from email.utils import parseaddr
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone
from icalendar import Calendar, Event, Timezone, vCalAddress, vText

from notifications.domain import Kind

PRODID = "-//Event platform//Events//EN"
REQUEST, CANCEL, PUBLISH = "REQUEST", "CANCEL", "PUBLISH"

# What each kind's email attaches: the seat is (still) there, or it is gone.
METHOD_OF_KIND = {
    Kind.ENROLLMENT_CONFIRMED: REQUEST,
    Kind.WAITLIST_PROMOTED: REQUEST,
    Kind.EVENT_UPDATED: REQUEST,
    Kind.EVENT_REMINDER: REQUEST,
    Kind.ENROLLMENT_CANCELLED: CANCEL,
    Kind.EVENT_CANCELLED: CANCEL,
}

# Snapshots written before events had a duration and a sequence (outbox messages still in flight
# when this was deployed) get the defaults the events were given then.
DEFAULT_DURATION_MINUTES = 60


def uid_domain() -> str:
    """The domain of DEFAULT_FROM_EMAIL ("Events <events@example.com>" or a bare address)."""
    address = parseaddr(settings.DEFAULT_FROM_EMAIL)[1] or settings.DEFAULT_FROM_EMAIL
    return address.rpartition("@")[2].strip().lower() or "localhost"


def event_uid(event_id: int) -> str:
    return f"event-{event_id}@{uid_domain()}"


def content_type(method: str) -> str:
    """The MIME type of a file with this METHOD (RFC 6047 §2.4: the method is a parameter too)."""
    return f"text/calendar; method={method}; charset=utf-8"


def method_of(ics: str) -> str:
    """The METHOD of a file this module wrote (REQUEST when none is found)."""
    for line in ics.splitlines():
        if line.startswith("METHOD:"):
            return line.removeprefix("METHOD:").strip()
    return REQUEST


def render(
    method: str,
    events: Iterable[tuple[int, Mapping[str, Any]]],
    *,
    attendee: tuple[str, str] | None = None,
    now: dt.datetime | None = None,
    name: str = "",
) -> str:
    """A VCALENDAR with one VEVENT per `(event id, snapshot)`, as text (CRLF lines).

    `method`: REQUEST (an email that adds or updates the entry), CANCEL (one that removes it) or
    PUBLISH (a file or feed to import or subscribe to). `attendee`: (email, name) of the recipient,
    for emails (RFC 5546 wants the attendee in REQUEST and CANCEL; a feed names nobody). `now`: the
    DTSTAMP, when this version of the entry was made. `name`: the calendar's name in apps (feeds).
    """
    zone = timezone.get_default_timezone()
    stamp = (now or timezone.now()).astimezone(dt.UTC)
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", method)
    if name:
        calendar.add("x-wr-calname", name)
    starts = []
    for event_id, snapshot in events:
        entry, start = _vevent(method, event_id, snapshot, zone=zone, stamp=stamp, attendee=attendee)
        calendar.add_component(entry)
        starts.append(start)
    # The zones the entries name (none for UTC, written `…Z`), first, as RFC 5545 orders them.
    for tzid in sorted(calendar.get_missing_tzids(), reverse=True):
        calendar.subcomponents.insert(0, _vtimezone(tzid, min(starts).year, max(starts).year))
    if not starts:
        # RFC 5545 wants one component at least: an empty calendar (a feed with nothing in it
        # yet) holds the zone its entries will be read in, which calendar apps take as it is.
        calendar.add_component(_vtimezone(zone.key, stamp.year, stamp.year))
    return calendar.to_ical().decode("utf-8")


def _vevent(
    method: str,
    event_id: int,
    snapshot: Mapping[str, Any],
    *,
    zone: Any,
    stamp: dt.datetime,
    attendee: tuple[str, str] | None,
) -> tuple[Event, dt.datetime]:
    start = dt.datetime.combine(dt.date.fromisoformat(snapshot["date"]), _time(snapshot["time"]))
    start = start.replace(tzinfo=zone)  # wall clock in TIME_ZONE, as the platform reads it
    duration = int(snapshot.get("duration_minutes") or DEFAULT_DURATION_MINUTES)
    entry = Event()
    entry.add("uid", event_uid(event_id))
    entry.add("dtstamp", stamp)
    entry.add("dtstart", start)
    entry.add("dtend", _end(start, duration, zone))
    entry.add("summary", snapshot.get("title", ""))
    if snapshot.get("location"):
        entry.add("location", snapshot["location"])
    entry.add("sequence", int(snapshot.get("sequence") or 0))
    entry.add("status", "CANCELLED" if method == CANCEL else "CONFIRMED")
    organizer = vCalAddress(
        f"mailto:{parseaddr(settings.DEFAULT_FROM_EMAIL)[1] or settings.DEFAULT_FROM_EMAIL}"
    )
    organizer.params["cn"] = vText("Event platform")
    entry.add("organizer", organizer)
    if attendee is not None:
        email, full_name = attendee
        person = vCalAddress(f"mailto:{email}")
        if full_name:
            person.params["cn"] = vText(full_name)
        person.params["role"] = vText("REQ-PARTICIPANT")
        # The seat is decided already: no RSVP, nothing for calendar apps to answer the organizer.
        person.params["partstat"] = vText("ACCEPTED")
        person.params["rsvp"] = vText("FALSE")
        entry.add("attendee", person)
    return entry, start


def _end(start: dt.datetime, minutes: int, zone: Any) -> dt.datetime:
    """The end, `minutes` of real time after the start: across a change of the clock (summer
    time) the wall clock moves by an hour more or less. A wall-clock end in the hour that comes
    twice when the clock goes back cannot say which of the two it is: that one is given in UTC."""
    end = (start.astimezone(dt.UTC) + dt.timedelta(minutes=minutes)).astimezone(zone)
    if end.replace(fold=1 - end.fold).utcoffset() != end.utcoffset():
        return end.astimezone(dt.UTC)
    return end


def _time(text: str) -> dt.time:
    return dt.time.fromisoformat(text)


def _vtimezone(tzid: str, first_year: int, last_year: int) -> Timezone:
    """The VTIMEZONE of `tzid` for the years the events fall in, with a year either side. Bounded:
    the library's default span (1970-2038) would list every change of 70 years in each email, and
    miss events after 2037."""
    zone = Timezone.from_ical(_vtimezone_text(tzid, first_year, last_year))  # a copy of its own
    assert isinstance(zone, Timezone)
    return zone


@functools.lru_cache(maxsize=64)
def _vtimezone_text(tzid: str, first_year: int, last_year: int) -> bytes:
    # Cached as text: computing a zone's transitions takes milliseconds, and every email needs one.
    return Timezone.from_tzinfo(
        ZoneInfo(tzid),
        tzid,
        first_date=dt.date(first_year - 1, 1, 1),
        last_date=dt.date(last_year + 2, 1, 1),
    ).to_ical()
