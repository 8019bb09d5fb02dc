from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from config.validators import multi_line, single_line
from events.domain import MIN_CAPACITY, Admission, RequestStatus, Seats

# An event's description is shown on every list page: long enough for an agenda, no longer.
DESCRIPTION_MAX_LENGTH = 5000


class Event(models.Model):
    title = models.CharField(max_length=200, validators=[single_line])
    description = models.TextField(blank=True, max_length=DESCRIPTION_MAX_LENGTH, validators=[multi_line])
    date = models.DateField()
    time = models.TimeField(help_text="Start time, wall clock in the platform's time zone.")
    location = models.CharField(max_length=200, validators=[single_line])
    capacity = models.PositiveIntegerField()
    # Seats taken, kept by events.services in the same transaction as each enrollment row; the
    # conditional update on this column is what makes overbooking impossible (see services.enroll).
    enrolled_count = models.PositiveIntegerField(default=0, editable=False)
    # People on the waiting list, kept like enrolled_count. The waiting list is never longer than
    # zero while a seat is free before the event starts: a freed seat goes to its head at once.
    waitlist_count = models.PositiveIntegerField(default=0, editable=False)
    admission = models.CharField(
        max_length=10,
        choices=[(a, a) for a in Admission.CHOICES],
        default=Admission.DIRECT,
        help_text="direct: enrollment answers at once. queue: requests are queued and decided in "
        "arrival order (for a rush).",
    )
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


class WaitlistEntry(models.Model):
    """A participant waiting for a seat. The order of the list is the order of the ids (arrival);
    positions (1..n) are counted, not stored, so leaving never renumbers anything."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="waitlist", db_index=False)
    participant = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="waitlist_entries"
    )
    joined_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "waiting list"
        constraints = [
            models.UniqueConstraint(fields=["event", "participant"], name="waitlist_once_per_event"),
        ]
        indexes = [models.Index(fields=["event", "id"])]

    def __str__(self) -> str:
        return f"{self.participant} waiting for {self.event}"


class AdmissionRequest(models.Model):
    """A participant's request to enroll in a queued event: durable from the moment it is answered
    202, decided in id order by the admission consumer (events.admission)."""

    event = models.ForeignKey(
        Event, on_delete=models.CASCADE, related_name="admission_requests", db_index=False
    )
    participant = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="admission_requests"
    )
    status = models.CharField(
        max_length=10, choices=[(s, s) for s in RequestStatus.CHOICES], default=RequestStatus.PENDING
    )
    queued_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["event", "participant"], name="admission_request_once_per_event"),
        ]
        indexes = [
            # The consumer's question: the pending requests of an event, in queue order.
            models.Index(
                fields=["event", "id"],
                condition=Q(status=RequestStatus.PENDING),
                name="admission_pending_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.participant_id} → {self.event_id} ({self.status})"
