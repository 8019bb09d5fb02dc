"""iCalendar files (notifications.calendar) and the ticket part of emails (notifications.emails),
parsed back: with `icalendar` for the files, and pixel by pixel for the QR code's PNG."""

from __future__ import annotations

import datetime as dt
import struct
import zlib
from zoneinfo import ZoneInfo

import pytest
import segno
from icalendar import Calendar

from notifications import calendar
from notifications.domain import Kind
from notifications.emails import display_checkin_code, html_body, qr_png, render

SNAPSHOT = {
    "title": "Town hall",
    "date": "2031-03-12",
    "time": "10:00",
    "duration_minutes": 90,
    "location": "Atrium; level 2",
    "sequence": 0,
}
STAMP = dt.datetime(2031, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def parse(text: str) -> Calendar:
    assert text.endswith("\r\n") and "\r\n" in text  # RFC 5545's line breaks
    return Calendar.from_ical(text)


def only_event(cal: Calendar):
    (entry,) = cal.walk("VEVENT")
    return entry


def test_a_request_says_what_when_where_and_who(settings):
    settings.TIME_ZONE = "UTC"
    cal = parse(
        calendar.render(calendar.REQUEST, [(5, SNAPSHOT)], attendee=("ann@example.com", "Ann Lee"), now=STAMP)
    )
    assert cal["METHOD"] == "REQUEST" and cal["VERSION"] == "2.0" and cal["PRODID"] == calendar.PRODID
    entry = only_event(cal)
    assert entry["UID"] == "event-5@example.com"
    assert entry.decoded("DTSTART") == dt.datetime(2031, 3, 12, 10, 0, tzinfo=ZoneInfo("UTC"))
    assert entry.decoded("DTEND") - entry.decoded("DTSTART") == dt.timedelta(minutes=90)
    assert entry.decoded("DTSTAMP") == STAMP
    assert (entry["SUMMARY"], entry["LOCATION"]) == ("Town hall", "Atrium; level 2")
    assert (entry["SEQUENCE"], entry["STATUS"]) == (0, "CONFIRMED")
    assert entry["ORGANIZER"] == "mailto:events@example.com"
    assert entry["ATTENDEE"] == "mailto:ann@example.com"
    assert entry["ATTENDEE"].params["CN"] == "Ann Lee"
    assert entry["ATTENDEE"].params["RSVP"] == "FALSE"  # the seat is decided: nothing to answer


def test_cancel_names_the_same_event_and_says_cancelled():
    request = only_event(parse(calendar.render(calendar.REQUEST, [(5, SNAPSHOT)], attendee=("a@x.org", ""))))
    cancel_cal = parse(calendar.render(calendar.CANCEL, [(5, SNAPSHOT)], attendee=("a@x.org", "")))
    cancel = only_event(cancel_cal)
    assert cancel_cal["METHOD"] == "CANCEL"
    assert cancel["UID"] == request["UID"]
    assert cancel["STATUS"] == "CANCELLED"
    assert cancel["SEQUENCE"] == request["SEQUENCE"]


def test_uid_is_stable_and_sequence_follows_the_event():
    first = only_event(parse(calendar.render(calendar.REQUEST, [(7, SNAPSHOT)], now=STAMP)))
    moved = {**SNAPSHOT, "date": "2031-03-19", "sequence": 1}
    later = only_event(
        parse(calendar.render(calendar.REQUEST, [(7, moved)], now=STAMP + dt.timedelta(hours=1)))
    )
    assert first["UID"] == later["UID"] == "event-7@example.com"
    assert later["SEQUENCE"] > first["SEQUENCE"]


def test_uid_domain_comes_from_the_sender_address(settings):
    settings.DEFAULT_FROM_EMAIL = "Events team <Events@Corp.Example>"
    entry = only_event(parse(calendar.render(calendar.PUBLISH, [(3, SNAPSHOT)])))
    assert entry["UID"] == "event-3@corp.example"
    assert entry["ORGANIZER"] == "mailto:Events@Corp.Example"


def test_times_are_wall_clock_in_the_platform_zone_with_its_vtimezone(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    summer = {**SNAPSHOT, "date": "2031-07-01"}
    cal = parse(calendar.render(calendar.PUBLISH, [(1, SNAPSHOT), (2, summer)]))
    winter_entry, summer_entry = cal.walk("VEVENT")
    for entry in (winter_entry, summer_entry):
        assert entry["DTSTART"].params["TZID"] == "Europe/Berlin"
        assert entry["DTEND"].params["TZID"] == "Europe/Berlin"
    (zone,) = cal.walk("VTIMEZONE")
    assert zone["TZID"] == "Europe/Berlin"
    assert cal.subcomponents.index(zone) < cal.subcomponents.index(winter_entry)  # defined before use
    # 10:00 in Berlin is 09:00 UTC in winter (CET) and 08:00 UTC in summer (CEST).
    assert winter_entry.decoded("DTSTART").astimezone(dt.UTC).hour == 9
    assert summer_entry.decoded("DTSTART").astimezone(dt.UTC).hour == 8
    # The VTIMEZONE alone gives a calendar app the offsets: both changes of 2031 are in it.
    text = zone.to_ical().decode()
    assert "TZOFFSETTO:+0200" in text and "TZOFFSETTO:+0100" in text and "20310330T030000" in text


def test_vtimezone_covers_events_far_ahead(settings):
    settings.TIME_ZONE = "America/New_York"
    cal = parse(calendar.render(calendar.PUBLISH, [(1, {**SNAPSHOT, "date": "2045-11-20"})]))
    (zone,) = cal.walk("VTIMEZONE")
    assert "2045" in zone.to_ical().decode()  # the library's default span ends in 2038
    assert only_event(cal)["DTSTART"].params["TZID"] == "America/New_York"


def test_utc_platform_writes_utc_times_without_a_vtimezone(settings):
    settings.TIME_ZONE = "UTC"
    cal = parse(calendar.render(calendar.PUBLISH, [(1, SNAPSHOT)]))
    assert cal.walk("VTIMEZONE") == []
    assert "DTSTART:20310312T100000Z" in cal.to_ical().decode()


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_an_empty_calendar_still_holds_the_one_component_rfc_5545_asks_for(settings, zone):
    settings.TIME_ZONE = zone
    cal = parse(calendar.render(calendar.PUBLISH, [], name="My events"))
    assert [component.name for component in cal.subcomponents] == ["VTIMEZONE"]
    assert cal.subcomponents[0]["TZID"] == zone
    assert cal["X-WR-CALNAME"] == "My events"


def test_snapshots_from_before_durations_and_sequences_get_the_defaults():
    old = {k: v for k, v in SNAPSHOT.items() if k not in ("duration_minutes", "sequence")}
    entry = only_event(parse(calendar.render(calendar.REQUEST, [(1, old)])))
    assert entry.decoded("DTEND") - entry.decoded("DTSTART") == dt.timedelta(minutes=60)
    assert entry["SEQUENCE"] == 0


def test_a_feed_has_one_entry_per_event_and_a_name():
    cal = parse(calendar.render(calendar.PUBLISH, [(1, SNAPSHOT), (2, SNAPSHOT)], name="My events"))
    assert [e["UID"] for e in cal.walk("VEVENT")] == ["event-1@example.com", "event-2@example.com"]
    assert cal["X-WR-CALNAME"] == "My events" and cal["METHOD"] == "PUBLISH"
    empty = parse(calendar.render(calendar.PUBLISH, [], name="My events"))
    assert empty.walk("VEVENT") == []


def test_methods_of_kinds_and_content_type():
    assert {k for k, m in calendar.METHOD_OF_KIND.items() if m == calendar.CANCEL} == {
        Kind.ENROLLMENT_CANCELLED,
        Kind.EVENT_CANCELLED,
    }
    assert calendar.content_type("REQUEST") == "text/calendar; method=REQUEST; charset=utf-8"
    assert calendar.method_of(calendar.render(calendar.CANCEL, [(1, SNAPSHOT)])) == "CANCEL"


# --- The ticket in the email ----------------------------------------------------------------------

CODE = "RMWRZYLHCR6LDDMQ"


def test_the_body_shows_the_code_and_what_the_attachment_does():
    context = {"full_name": "Ann", "event": SNAPSHOT, "checkin_code": display_checkin_code(CODE)}
    _, body = render(Kind.ENROLLMENT_CONFIRMED, {**context, "calendar": "REQUEST"})
    assert "Your check-in code: RMWR-ZYLH-CR6L-DDMQ" in body
    assert "adds the event to your calendar" in body
    _, body = render(Kind.ENROLLMENT_CANCELLED, {"full_name": "Ann", "event": SNAPSHOT, "calendar": "CANCEL"})
    assert "removes the event from your calendar" in body and "check-in" not in body


def test_html_twin_escapes_user_text_and_shows_the_qr_code():
    text = html_body(
        'Hello <b>Ann</b> & co,\n\n"Party"', checkin_code="ABCD-EFGH", image_cid="qr-1@example.com"
    )
    assert "&lt;b&gt;Ann&lt;/b&gt; &amp; co" in text and "<b>" not in text
    assert '<img src="cid:qr-1@example.com"' in text and "ABCD-EFGH" in text


def _png_pixels(png: bytes) -> list[list[int]]:
    """A greyscale PNG's pixels (0 black, 1 white for 1-bit images), with the five row filters."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        chunks[kind] = chunks.get(kind, b"") + png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, color) == (1, 0)  # 1-bit greyscale, as segno writes a two-colour code
    stride = (width + 7) // 8
    raw = zlib.decompress(chunks[b"IDAT"])
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left, up = line[i - 1] if i else 0, previous[i]
            upper_left = previous[i - 1] if i else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - upper_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - upper_left)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else upper_left
                line[i] = (line[i] + predictor) & 0xFF
        rows.append([(line[x // 8] >> (7 - x % 8)) & 1 for x in range(width)])
        previous = line
    return rows


def test_the_qr_png_holds_exactly_the_code():
    png = qr_png(CODE)
    pixels = _png_pixels(png)
    symbol = segno.make(CODE, error="m", micro=False)
    size = len(symbol.matrix)
    scale = len(pixels) // (size + 8)  # a 4-module quiet zone each side
    assert scale * (size + 8) == len(pixels)
    modules = [
        [1 - pixels[(4 + r) * scale + scale // 2][(4 + c) * scale + scale // 2] for c in range(size)]
        for r in range(size)
    ]
    assert modules == [list(row) for row in symbol.matrix]
    assert symbol.mode == "alphanumeric"  # the code itself, nothing around it


@pytest.mark.parametrize("code", ["ABCDEFGHIJKLMNOP", "2345672345672345"])
def test_display_form_is_groups_of_four(code):
    assert display_checkin_code(code).replace("-", "") == code
    assert [len(g) for g in display_checkin_code(code).split("-")] == [4, 4, 4, 4]
