from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from events.domain import MIN_CAPACITY, Seats


class Event(models.Model):
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    date = models.DateField()
    time = models.TimeField(help_text="Start time, wall clock in the platform's time zone.")
    location = models.CharField(max_length=200)
    capacity = models.PositiveIntegerField()
    # Seats taken, kept by events.services in the same transaction as each enrollment row; the
    # conditional update on this column is what makes overbooking impossible (see services.enroll).
    enrolled_count = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["date", "time", "id"]
        indexes = [models.Index(fields=["date", "time"])]
        constraints = [
            # The backstop: whatever code path runs, the database refuses an overbooked event.
            models.CheckConstraint(
                condition=Q(enrolled_count__lte=F("capacity")), name="event_not_overbooked"
            ),
            models.CheckConstraint(condition=Q(capacity__gte=MIN_CAPACITY), name="event_capacity_min"),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.date:%Y-%m-%d})"

    @property
    def seats(self) -> Seats:
        return Seats(capacity=self.capacity, enrolled=self.enrolled_count)

    @property
    def seats_left(self) -> int:
        return self.seats.left

    @property
    def starts_at(self) -> datetime:
        # Wall-clock date and time in the platform's zone (settings.TIME_ZONE), whatever zone is active.
        return timezone.make_aware(datetime.combine(self.date, self.time), timezone.get_default_timezone())


class Enrollment(models.Model):
    """A participant's seat at an event (the N:N relation, with its timestamp)."""

    # No index of its own: the unique (event, participant) constraint and the (event, created_at)
    # index both start with the event.
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="enrollments", db_index=False)
    participant = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="enrollments"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["event", "participant"], name="enrollment_once_per_event"),
        ]
        indexes = [models.Index(fields=["event", "created_at"])]

    def __str__(self) -> str:
        return f"{self.participant_id} @ {self.event_id}"
