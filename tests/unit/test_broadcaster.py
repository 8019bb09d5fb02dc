"""The broadcaster thread (config.realtime): events go out one by one, in order; states of one
group (an event's seats) at most once per interval, the newest of what came meanwhile."""

import threading
import time

import pytest

from config import realtime


@pytest.fixture
def sent(monkeypatch):
    """What the broadcaster sends, with when, instead of sending it to a channel layer; the event
    is set once a message marked `last` is sent."""
    record: list[tuple[str, dict, float]] = []
    done = threading.Event()

    async def recording_send(group, message):
        record.append((group, message, time.monotonic()))
        if message.get("last"):
            done.set()

    monkeypatch.setattr(realtime, "_send", recording_send)
    monkeypatch.setattr(realtime, "_paused_until", 0.0)
    return record, done


def test_states_coming_steadily_go_out_once_per_interval_the_newest(sent):
    """As in a rush: a state every few milliseconds (each enrollment's seats)."""
    record, done = sent
    broadcaster = realtime._Broadcaster()
    started = time.monotonic()
    for count in range(1, 61):
        broadcaster.submit("seats-1", {"enrolled": count, "last": count == 60}, latest_only=True)
        time.sleep(0.005)
    submitting = time.monotonic() - started
    assert done.wait(5)
    time.sleep(realtime.STATE_INTERVAL_SECONDS * 2)  # nothing else may follow
    states = [message["enrolled"] for group, message, _ in record if group == "seats-1"]
    # Never two sends of the group within an interval, the newest last.
    assert states == sorted(states) and states[-1] == 60
    assert len(states) <= 2 + int(submitting / realtime.STATE_INTERVAL_SECONDS), (states, submitting)
    gaps = [b[2] - a[2] for a, b in zip(record, record[1:], strict=False)]
    assert all(gap >= realtime.STATE_INTERVAL_SECONDS * 0.9 for gap in gaps), gaps


def test_the_first_state_of_a_group_does_not_wait_for_another_groups_interval(sent, monkeypatch):
    monkeypatch.setattr(realtime, "STATE_INTERVAL_SECONDS", 30.0)
    record, done = sent
    broadcaster = realtime._Broadcaster()
    broadcaster.submit("seats-1", {"enrolled": 1}, latest_only=True)
    broadcaster.submit("seats-2", {"enrolled": 7, "last": True}, latest_only=True)
    assert done.wait(5)  # long before seats-1's interval is over
    assert [(group, message["enrolled"]) for group, message, _ in record] == [("seats-1", 1), ("seats-2", 7)]


def test_events_are_never_merged(sent, monkeypatch):
    monkeypatch.setattr(realtime, "STATE_INTERVAL_SECONDS", 30.0)
    record, done = sent
    broadcaster = realtime._Broadcaster()
    for number in range(1, 51):
        broadcaster.submit("user-1", {"n": number, "last": number == 50})
    assert done.wait(5)
    assert [message["n"] for _, message, _ in record] == list(range(1, 51))
