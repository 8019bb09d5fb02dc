"""What the events app does when something it depends on changes elsewhere."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from events import services


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="events-withdraw-deleted-account")
def withdraw_deleted_account(sender: Any, instance: Any, **kwargs: Any) -> None:
    """An account about to be deleted gives back its seats (to the heads of the waiting lists)
    and its waiting-list places, in the deleting transaction, however it is deleted: the API, the
    admin, or a cascade."""
    services.withdraw_from_all_events(participant_id=instance.pk)
