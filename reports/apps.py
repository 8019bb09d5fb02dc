from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "Reports"

    def ready(self) -> None:
        # Register the tasks with the Celery app in every process, not only in workers: the
        # embedded default runs them in-process.
        from . import receivers, tasks  # noqa: F401
