"""What the reports app does when its rows go."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from reports.models import Report


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
