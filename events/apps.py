from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"
    verbose_name = "Events and enrollment"

    def ready(self) -> None:
        # Register the admission task in every process: the embedded default runs it in-process,
        # and the outbox must know it is a batched task wherever it publishes.
        from . import receivers, tasks  # noqa: F401
