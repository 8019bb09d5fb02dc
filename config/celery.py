"""The Celery app. Settings come from Django's (CELERY_*); tasks from each app's tasks.py.

Queues: `notifications` (emails) and `reports` (report builds), each consumed by its own worker
process. With no CELERY_BROKER_URL, tasks run in-process (see config.outbox).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Task metrics and the workers' metrics endpoint hang on Celery's signals.
import config.metrics  # noqa: E402, F401
