"""Celery beat for the embedded default: with no broker there is no beat process, so `make run`
runs the beat schedule (settings.CELERY_BEAT_SCHEDULE) in a thread of the web process instead.
With a broker, the `beat` process of the Procfile (compose, Kubernetes) sends the same schedule."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.db import close_old_connections

from config.celery import app as celery_app
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
        schedule: dict[str, dict[str, Any]] = settings.CELERY_BEAT_SCHEDULE
        due = {name: time.monotonic() + float(entry["schedule"]) for name, entry in schedule.items()}
        while True:
            name = min(due, key=due.__getitem__)
            if self.stopped.wait(max(0.0, due[name] - time.monotonic())):
                return
            due[name] = time.monotonic() + float(schedule[name]["schedule"])
            try:
                close_old_connections()
                celery_app.tasks[schedule[name]["task"]].apply()
            except Exception:  # the next tick tries again; the thread must outlive any error
                log.exception("in-process beat: %s failed", name)
