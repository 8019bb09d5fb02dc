from django.conf import settings
from django.db import models

from notifications.domain import Kind, Status


class Notification(models.Model):
    """One email: what it says, to whom, and whether it went out. Every email sent is one of these.

    Participants' notifications are created by the notifications worker (see services.notify);
    until then the outbox message that asked for them is their durable record.
    """

    # Set by the worker that creates the row from an outbox message (the message's key and the
    # participant): a redelivered message finds its rows instead of creating them again.
    key = models.CharField(max_length=100, unique=True, null=True, blank=True, editable=False)
    kind = models.CharField(max_length=40, choices=[(k.value, k.value) for k in Kind])
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
        help_text="The account it belongs to, when the address is one of ours.",
    )
    to_email = models.EmailField()
    event = models.ForeignKey(
        "events.Event", null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    subject = models.CharField(max_length=255)
    body = models.TextField()
    # A stored file (default storage name) sent along, e.g. a report document.
    attachment = models.CharField(max_length=255, blank=True)
    attachment_name = models.CharField(max_length=255, blank=True)
    # The iCalendar file the email attaches (notifications.calendar: METHOD REQUEST or CANCEL), and
    # the enrollment's check-in code it shows as text and QR code. Rendered once, when the row is
    # made, so that a retry or a resend sends the same email.
    calendar = models.TextField(blank=True)
    checkin_code = models.CharField(max_length=32, blank=True)
    status = models.CharField(
        max_length=10, choices=[(s.value, s.value) for s in Status], default=Status.QUEUED.value
    )
    attempts = models.PositiveIntegerField(default=0, help_text="Delivery attempts started.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"]), models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"{self.kind} to {self.to_email} ({self.status})"
