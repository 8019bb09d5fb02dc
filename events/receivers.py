"""What the events app does when something it depends on changes elsewhere."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import pre_delete, pre_save

from events import services
from participants import selectors as participant_selectors
from participants.domain import ParticipantNotFound
from participants.proxies import ACCOUNT_SENDERS


def withdraw_deleted_account(sender: Any, instance: Any, **kwargs: Any) -> None:
    """An account about to be deleted gives back its seats (to the heads of the waiting lists)
    and its waiting-list places, in the deleting transaction, however it is deleted: the API, the
    admin, or a cascade. An admin's account holds nothing (made an admin's, it gave everything
    back): it is not locked, which would deadlock with a report's e-mail to it being committed.
    A participant's account made an admin's since the deleter read it is not deleted as a
    participant's: checked under the withdrawal's lock on the account (ParticipantNotFound)."""
    if instance.is_staff and not services.takes_part(instance.pk):
        return
    services.withdraw_from_all_events(participant_id=instance.pk)
    made_an_admin = participant_selectors.accounts().filter(pk=instance.pk, is_staff=True)
    if not instance.is_staff and made_an_admin.exists():
        raise ParticipantNotFound()


def withdraw_retired_participant(
    sender: Any, instance: Any, raw: bool = False, update_fields: Any = None, **kwargs: Any
) -> None:
    """A participant's account that is deactivated, or made an administrator's, gives back its
    seats, its waiting-list places and its pending requests as a deleted one does, in the saving
    transaction: it can no longer take part (it cannot sign in, or it manages events now), and its
    seats go to the heads of the waiting lists instead of staying empty. Taking the account back
    does not give them back. (A queryset's update() sends no signal: the platform changes these
    flags only through saves, the admin's forms and ensure_admin.)"""
    if raw or instance.pk is None or (instance.is_active and not instance.is_staff):
        return
    if update_fields is not None and not {"is_active", "is_staff"} & set(update_fields):
        return
    stored = (
        sender._meta.concrete_model._base_manager.filter(pk=instance.pk)
        .values_list("is_active", "is_staff")
        .first()
    )
    if stored == (True, False):  # it was an active participant's until this save
        services.withdraw_from_all_events(participant_id=instance.pk)


# Accounts are deleted and saved through their proxies too (the admin's), each its own sender.
for sender in ACCOUNT_SENDERS:
    pre_delete.connect(withdraw_deleted_account, sender=sender, dispatch_uid="events-withdraw-deleted")
    pre_save.connect(withdraw_retired_participant, sender=sender, dispatch_uid="events-withdraw-retired")
