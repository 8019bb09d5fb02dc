from django.db import models
from django.db.models import Q


class OutboxMessage(models.Model):
    """A task to publish: its name and keyword arguments (ids, never objects)."""

    task = models.CharField(max_length=200)
    kwargs = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Failed publish attempts.")
    last_error = models.TextField(blank=True)
    claimed_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="In-process only: a process runs the task until then (a publish skips it meanwhile).",
    )

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["id"], condition=Q(published_at__isnull=True), name="outbox_pending_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.task}({self.kwargs}) {'published' if self.published_at else 'pending'}"
