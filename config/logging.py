"""Structured logging: every record is one JSON line carrying the current request id.

Every request writes one of these lines (config.middleware), so their cost is per request: the
formatter serialises with orjson when it is installed (compact JSON; the standard json module
otherwise) and formats the timestamp once per second, not once per line.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - the standard library gives the same lines, slower
    orjson = None  # type: ignore[assignment]

# Set by config.middleware.RequestIdMiddleware for the duration of a request.
current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id.get()
        return True


def _json_dumps_stdlib(line: Mapping[str, Any]) -> str:
    return json.dumps(line, default=str)


def _json_dumps_orjson(line: Mapping[str, Any]) -> str:
    try:
        # Non-string keys are allowed like json's (str() of the key); anything it cannot encode
        # natively goes through str(), like json.dumps(default=str).
        return orjson.dumps(line, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # e.g. an integer beyond 64 bits: the standard library copes
        return _json_dumps_stdlib(line)


dumps: Callable[[Mapping[str, Any]], str] = _json_dumps_orjson if orjson is not None else _json_dumps_stdlib


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON; structured fields come in through `extra={"fields": {...}}`."""

    TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The timestamp has a resolution of one second: formatted once per second and per process
        # (one tuple, replaced whole, so that threads never pair a second with another's text).
        self._ts: tuple[int, str] = (-1, "")

    def _timestamp(self, created: float) -> str:
        second = int(created)
        cached_second, text = self._ts
        if second != cached_second:
            text = time.strftime(self.TIME_FORMAT, self.converter(second))
            self._ts = (second, text)
        return text

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "")
        if request_id:
            line["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return dumps(line)
