"""Celery beat for the embedded default: with no broker there is no beat process, so `make run`
runs the beat schedule (settings.CELERY_BEAT_SCHEDULE) in a thread of the web process instead.
With a broker, the `beat` process of the Procfile (compose, Kubernetes) sends the same schedule.
There is no relay process either, so the thread also runs the outbox relay's round."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection

from config.celery import app as celery_app
from config.outbox import services as outbox
from config.process_threads import ProcessThread

log = logging.getLogger(__name__)


class InProcessBeat(ProcessThread):
    thread_name = "in-process-beat"
    _instance = None

    def __init__(self) -> None:
        self.stopped = threading.Event()
        super().__init__()

    def stop(self) -> None:
        """Ends the thread after its current job (the next instance() starts a new one)."""
        self.stopped.set()
        with ProcessThread._lock:
            if InProcessBeat._instance is self:
                InProcessBeat._instance = None

    def _run(self) -> None:
        jobs = _jobs(self.stopped.is_set)
        due = {name: time.monotonic() + interval for name, (interval, _) in jobs.items()}
        while True:
            name = min(due, key=due.__getitem__)
            if self.stopped.wait(max(0.0, due[name] - time.monotonic())):
                connection.close()  # this thread's own, which nothing else would close
                return
            interval, job = jobs[name]
            due[name] = time.monotonic() + interval
            try:
                close_old_connections()
                job()
            except Exception:  # the next tick tries again; the thread must outlive any error
                log.exception("in-process beat: %s failed", name)


def _jobs(stopping: Callable[[], bool]) -> dict[str, tuple[float, Callable[[], Any]]]:
    """Each job's interval in seconds and the job: the beat schedule's tasks, and the outbox
    relay's round (until `stopping()`), which runs again what an in-process publish could not (a
    task that could not be run, or the claim of a process that died) and the relay's sweepers."""
    schedule: dict[str, dict[str, Any]] = settings.CELERY_BEAT_SCHEDULE
    jobs: dict[str, tuple[float, Callable[[], Any]]] = {
        name: (float(entry["schedule"]), functools.partial(_apply, entry["task"]))
        for name, entry in schedule.items()
    }
    jobs["outbox-relay"] = (
        settings.OUTBOX_RELAY_INTERVAL_SECONDS,
        functools.partial(outbox.relay_round, _relay_error, stopping=stopping),
    )
    return jobs


def _apply(task: str) -> None:
    celery_app.tasks[task].apply()


def _relay_error(label: str | None, exc: Exception) -> None:
    log.warning(
        "in-process beat: the outbox relay%s: %s: %s", f", {label}" if label else "", type(exc).__name__, exc
    )
