from django.conf import settings
from django.db import models

from reports.domain import Status


class Report(models.Model):
    """A participant report of one event, built by the reports worker and stored as a JSON file."""

    event = models.ForeignKey("events.Event", on_delete=models.CASCADE, related_name="reports")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    recipients = models.JSONField(default=list, help_text="Email addresses the report is sent to.")
    status = models.CharField(
        max_length=10, choices=[(s.value, s.value) for s in Status], default=Status.PENDING.value
    )
    participant_count = models.PositiveIntegerField(null=True, blank=True)
    document = models.FileField(upload_to="reports/", blank=True)
    # The same document gzip-compressed (GET …/download/?format=gzip), written in the same pass.
    document_gzip = models.FileField(upload_to="reports/", blank=True)
    document_bytes = models.PositiveBigIntegerField(null=True, blank=True, help_text="Size of the JSON.")
    gzip_bytes = models.PositiveBigIntegerField(null=True, blank=True, help_text="Size of the .json.gz.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Builds started: more than one means one was interrupted (a worker lost)."
    )
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Report {self.pk} of event {self.event_id} ({self.status})"

    @property
    def filename(self) -> str:
        return f"event-{self.event_id}-report-{self.pk}.json"

    @property
    def gzip_filename(self) -> str:
        return f"{self.filename}.gz"
