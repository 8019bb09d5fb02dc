"""Test doubles of infrastructure, importable by dotted path from settings and worker processes."""

from __future__ import annotations

import os
import time
from typing import Any

from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.filebased import EmailBackend as FileEmailBackend


class FailingEmailBackend(BaseEmailBackend):
    """An SMTP server that always refuses."""

    def send_messages(self, email_messages: Any) -> int:
        raise ConnectionRefusedError("SMTP server refused the connection")


class SlowFileEmailBackend(FileEmailBackend):
    """Writes files like the file backend, after SLOW_EMAIL_SECONDS: time to kill the worker mid-send.
    With SLOW_EMAIL_ONCE_FILE, only the first send of all processes is slow (it creates that file)."""

    def send_messages(self, email_messages: Any) -> int:
        once = os.environ.get("SLOW_EMAIL_ONCE_FILE")
        if once is None or _created(once):
            time.sleep(float(os.environ.get("SLOW_EMAIL_SECONDS", "0")))
        return super().send_messages(email_messages)


def _created(path: str) -> bool:
    try:
        with open(path, "x"):
            return True
    except FileExistsError:
        return False
