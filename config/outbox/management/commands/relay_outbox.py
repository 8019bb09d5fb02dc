import os
import signal
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from prometheus_client import start_http_server

from config.outbox import services


class Command(BaseCommand):
    help = "Publishes pending outbox messages to the broker; loops until stopped unless --once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Publish what is pending, then exit.")
        parser.add_argument("--interval", type=float, default=settings.OUTBOX_RELAY_INTERVAL_SECONDS)

    def handle(self, *args: Any, once: bool = False, interval: float = 1.0, **options: Any) -> None:
        stopping = False

        def stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if os.environ.get("METRICS_PORT") and not once:
            start_http_server(int(os.environ["METRICS_PORT"]))
        published_total = 0
        swept_total: dict[str, int] = dict.fromkeys(services.SWEEPERS, 0)

        def report(label: str | None, exc: Exception) -> None:  # broker or database away: say so
            where = f"outbox relay, {label}" if label else "outbox relay"
            self.stderr.write(f"{where}: {type(exc).__name__}: {exc}")

        while not stopping:
            published, swept = services.relay_round(report, stopping=lambda: stopping)
            published_total += published
            for label, count in swept.items():
                swept_total[label] += count
            if once:
                self.stdout.write(_report(published_total, swept_total))
                return
            if not stopping:
                time.sleep(interval)


def _report(published: int, swept: dict[str, int]) -> str:
    """What a --once run did, in words."""
    parts = [
        "no pending outbox messages"
        if not published
        else f"published {published} pending outbox message{'s' if published != 1 else ''}"
    ]
    parts += [f"{label}: {count}" for label, count in swept.items() if count]
    return "Outbox relay: " + "; ".join(parts) + "."
