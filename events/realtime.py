"""Live seat counts: the WebSocket group of an event and the message its watchers get."""

from __future__ import annotations

from typing import Any

from config import realtime
from events.domain import Seats
from events.models import Event


def seats_group(event_id: int) -> str:
    return f"event-seats-{event_id}"


def seats_message(*, event_id: int, capacity: int, enrolled: int) -> dict[str, Any]:
    return {
        "type": "event.seats",
        "event": event_id,
        "capacity": capacity,
        "enrolled": enrolled,
        "seats_left": Seats(capacity=capacity, enrolled=enrolled).left,
    }


def current_seats(event_id: int) -> dict[str, Any] | None:
    row = Event.objects.filter(pk=event_id).values("capacity", "enrolled_count").first()
    if row is None:
        return None
    return seats_message(event_id=event_id, capacity=row["capacity"], enrolled=row["enrolled_count"])


def broadcast_seats(event_id: int, seats: Seats | None = None) -> None:
    """Tells the event's watchers its committed seat count (called after commit; `seats`: the
    committed seats when the caller knows them, read from the database otherwise)."""
    if seats is not None:
        message: dict[str, Any] | None = seats_message(
            event_id=event_id, capacity=seats.capacity, enrolled=seats.enrolled
        )
    else:
        message = current_seats(event_id)
    if message is not None:
        # A state: each WebSocket process fans it out to its sockets, newest wins (config.fanout).
        realtime.broadcast_state(seats_group(event_id), message)
