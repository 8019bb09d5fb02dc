from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.utils import timezone

from config.validators import multi_line, single_line
from events.domain import (
    EARLIEST_EVENT_DATE,
    LATEST_EVENT_DATE,
    MAX_DURATION_MINUTES,
    MIN_CAPACITY,
    Admission,
    RequestStatus,
    Seats,
    new_checkin_code,
)

# An event's description is shown on every list page: long enough for an agenda, no longer.
DESCRIPTION_MAX_LENGTH = 5000


class Event(models.Model):
    title = models.CharField(max_length=200, validators=[single_line])
    description = models.TextField(blank=True, max_length=DESCRIPTION_MAX_LENGTH, validators=[multi_line])
    date = models.DateField(
        validators=[MinValueValidator(EARLIEST_EVENT_DATE), MaxValueValidator(LATEST_EVENT_DATE)]
    )
    time = models.TimeField(help_text="Start time, wall clock in the platform's time zone.")
    duration_minutes = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_DURATION_MINUTES)],
        help_text="How long the event lasts: its end in calendar files.",
    )
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
    # iCalendar's SEQUENCE: raised whenever the event moves (date, time, duration or location), so
    # that calendar apps replace the copy they hold (RFC 5546 §2.1.4).
    calendar_sequence = models.PositiveIntegerField(default=0, editable=False)
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

    @property
    def ends_at(self) -> datetime:
        # In real time (across a change of the clock the wall clock moves by an hour more or less).
        start = self.starts_at
        return (start.astimezone(UTC) + timedelta(minutes=self.duration_minutes)).astimezone(start.tzinfo)


class Enrollment(models.Model):
    """A participant's seat at an event (the N:N relation, with its timestamp)."""

    # No index of its own: the unique (event, participant) constraint and the (event, created_at)
    # index both start with the event.
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="enrollments", db_index=False)
    participant = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="enrollments"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # The participant's ticket at the door: shown in the confirmation email (text and QR code) and
    # presented to POST /events/{id}/check-ins/. Random, so it is unguessable; unique by constraint.
    # Looked up whole only: migration 0007 drops the LIKE index PostgreSQL adds beside the unique one.
    checkin_code = models.CharField(max_length=32, unique=True, default=new_checkin_code, editable=False)
    checked_in_at = models.DateTimeField(null=True, blank=True)
    # When the reminder before the event was sent (events.reminders): at most one per enrollment;
    # moving the event later clears it, so the reminder comes again before the new start.
    reminded_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["event", "participant"], name="enrollment_once_per_event"),
        ]
        indexes = [models.Index(fields=["event", "created_at"])]

    def __str__(self) -> str:
        return f"{self.participant_id} @ {self.event_id}"


class WaitlistEntryQuerySet(models.QuerySet["WaitlistEntry"]):
    def with_positions(self) -> WaitlistEntryQuerySet:
        """Each entry with `place`, its position on its event's list: the entries of that event up
        to it, counted among all of them (not numbered within the rows fetched: a page of a list
        shows 101, 102, …)."""
        ahead = (
            WaitlistEntry.objects.filter(event_id=OuterRef("event_id"), id__lte=OuterRef("id"))
            .order_by()
            .values("event_id")
            .annotate(n=Count("id"))
            .values("n")
        )
        return self.annotate(place=Subquery(ahead))


class WaitlistEntry(models.Model):
    """A participant waiting for a seat. The order of the list is the order of the ids (arrival);
    positions (1..n) are counted, not stored, so leaving never renumbers anything."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="waitlist", db_index=False)
    participant = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="waitlist_entries"
    )
    joined_at = models.DateTimeField(default=timezone.now)

    objects = WaitlistEntryQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "waiting list"
        constraints = [
            models.UniqueConstraint(fields=["event", "participant"], name="waitlist_once_per_event"),
        ]
        indexes = [models.Index(fields=["event", "id"])]

    def __str__(self) -> str:
        # Ids, as the other rows of an event: the admin lists every place of an event it deletes,
        # and loading each one's participant and event made that page one query per place, twice.
        return f"{self.participant_id} waiting for {self.event_id}"


class RevokedCheckinCode(models.Model):
    """The check-in code of an enrollment that was cancelled or removed: presenting it at the door
    answers `not_enrolled` rather than an unknown code. The enrollment row itself is gone."""

    code = models.CharField(max_length=32, primary_key=True)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="revoked_checkin_codes")
    # Not a foreign key: the account may be deleted too, and the answer stays the same.
    participant_id = models.BigIntegerField()
    revoked_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"revoked code of {self.participant_id} @ {self.event_id}"


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
