from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        # Register the tasks with the Celery app in every process, not only in workers: the
        # embedded default runs them in-process.
        from . import tasks  # noqa: F401
