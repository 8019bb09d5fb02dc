"""Keeps credentials out of log lines that other libraries write.

uvicorn logs every WebSocket handshake with its full path and query string, `--no-access-log` or
not (`"WebSocket /ws/notifications/?token=eyJ…" [accepted]`), and WebSockets authenticate with
`?token=`: without this, every socket's access token would be in the log.
"""

from __future__ import annotations

import logging
import re

# A query parameter whose value is a credential, and a JWT anywhere (three base64url parts).
_SECRET_PARAMETER = re.compile(r"([?&](?:token|access|refresh|password|secret)=)[^&\s\"']*", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def redact(text: str) -> str:
    return _JWT.sub("[redacted]", _SECRET_PARAMETER.sub(r"\1[redacted]", text))


class RedactSecrets(logging.Filter):
    """Rewrites a record's message with credentials replaced by `[redacted]`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


# The loggers of the servers that write request lines of their own.
SERVER_LOGGERS = ("uvicorn.error", "uvicorn.access", "gunicorn.access", "gunicorn.error", "websockets.server")


def install() -> None:
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
