from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"
    verbose_name = "Events and enrollment"

    def ready(self) -> None:
        # Register the admission task in every process: the embedded default runs it in-process,
        # and the outbox must know it is a batched task wherever it publishes.
        from config.outbox import services as outbox

        from . import receivers, tasks, wakeups  # noqa: F401

        # Requests whose wake-up was lost (a crash, a broker outage) are woken by the relay.
        outbox.register_sweeper("admission events woken again", wakeups.wake_stale)
