"""What the reports app does when its rows go."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.db.models.signals import post_delete, pre_delete
from django.dispatch import receiver

from events.models import Event
from reports import services
from reports.models import Report


@receiver(pre_delete, sender=Report, dispatch_uid="reports-tell-withdrawn")
def tell_withdrawn(sender: Any, instance: Report, origin: Any = None, **kwargs: Any) -> None:
    """A report deleted before it was built, in the admin or with its event (a cascade, whose
    `origin` is the event or a queryset of events), is one its recipients wait for in vain: they
    are told it will not come."""
    deleted_from = origin.model if isinstance(origin, QuerySet) else type(origin)
    services.tell_withdrawn(instance, event_deleted=issubclass(deleted_from, Event))


@receiver(post_delete, sender=Report, dispatch_uid="reports-delete-documents")
def delete_documents(sender: Any, instance: Report, **kwargs: Any) -> None:
    """A deleted report's documents (every participant's name and address) go with it, once the
    deletion commits (a deletion rolled back keeps them): deleted in the admin, or with its event."""
    documents = [document for document in (instance.document, instance.document_gzip) if document]

    def delete() -> None:
        for document in documents:
            document.storage.delete(document.name)

    if documents:
        transaction.on_commit(delete)
