"""Structured logging: every record is one JSON line carrying the current request id.

Every request writes one of these lines (config.middleware), so their cost is per request: the
formatter serialises with orjson when it is installed (compact JSON; the standard json module
otherwise) and formats the timestamp once per second, not once per line, and the request's line is
written straight to the handler's stream while logging is configured as LOGGING sets it
(`log_info_line`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, cast

try:
    import orjson
except ImportError:  # pragma: no cover - the standard library gives the same lines, slower
    orjson = None  # type: ignore[assignment]

# Set by config.middleware.RequestIdMiddleware for the duration of a request.
current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

REQUEST_ID_META = "HTTP_X_REQUEST_ID"
# A client's id is echoed only when it is short and harmless in logs and headers.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_for(meta: Mapping[str, Any]) -> str:
    """The request's id: the client's X-Request-ID (from WSGI's `meta`) when sane, else a new one.
    Here rather than in config.middleware, so that the servers' own answers (config.server_errors)
    can name requests alike without loading Django's apps."""
    return request_id_from_header(meta.get(REQUEST_ID_META, ""))


def request_id_from_header(sent: str) -> str:
    """The id a request whose X-Request-ID header is `sent` ("" without one) is known by."""
    return sent if sent and _SAFE_REQUEST_ID.match(sent) else uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id.get()
        return True


class ClientMistakeFilter(logging.Filter):
    """A record about what a client sent, not about the platform (a Host not in ALLOWED_HOSTS):
    one WARNING line, without the traceback Django logs it with at ERROR. Anyone can send such
    requests, and a traceback each made the error log theirs to fill."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
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
        return self.render(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            getattr(record, "request_id", ""),
            getattr(record, "fields", None),
            self.formatException(record.exc_info) if record.exc_info else None,
        )

    def render(
        self,
        created: float,
        level: str,
        logger: str,
        message: str,
        request_id: str,
        fields: Mapping[str, Any] | None,
        exc: str | None = None,
    ) -> str:
        """The line of a record with these attributes (`fields`: its structured fields)."""
        line: dict[str, object] = {
            "ts": self._timestamp(created),
            "level": level,
            "logger": logger,
            "msg": message,
        }
        if request_id:
            line["request_id"] = request_id
        if fields:
            line.update(fields)
        if exc:
            line["exc"] = exc
        return dumps(line)


def log_info_line(logger: logging.Logger, message: str, request_id: str, fields: Mapping[str, Any]) -> None:
    """Logs `message` at INFO with the request's id and structured `fields`, as
    `logger.info(message, extra={"request_id": ..., "fields": ...})` would.

    For the request log's line, which every request writes. Through the logging module (a record,
    the caller's frame looked up, the handlers' chain, the filter, the formatter) it cost about a
    tenth of a cached read's CPU in-process (25-30 of about 230 us); while the line would end at the one
    handler LOGGING configures (`_direct_handler`), it is written straight to that handler's stream
    as its `emit` would write it, for a few us. Any other configuration (a test's capturing handler,
    a deployment's handler or filter) gets the record through logging, as before, and so does a line
    the stream refused, which logging then reports its usual way.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _direct_handler(logger) if request_id else None  # (RequestIdFilter fills in a missing one)
    if handler is not None:
        formatter = cast(JsonFormatter, handler.formatter)
        if _written(handler, formatter.render(time.time(), "INFO", logger.name, message, request_id, fields)):
            return
    logger.info(message, extra={"request_id": request_id, "fields": fields})


def _written(handler: logging.StreamHandler[Any], line: str) -> bool:
    """Writes `line` to the handler's stream as its `emit` writes a record's; False when the stream
    refused it (the caller then hands the record to logging, which reports the failure)."""
    try:
        with cast(threading.RLock, handler.lock):  # (made by every Handler's __init__)
            handler.stream.write(line + handler.terminator)
            handler.flush()
    except Exception:  # noqa: BLE001
        return False
    return True


def _direct_handler(logger: logging.Logger) -> logging.StreamHandler[Any] | None:
    """The handler an INFO record of `logger` ends at, when writing its line to the handler's stream
    is all that logging would do with it: `logger` enabled, neither it nor its parents with a
    filter or handler of their own but the root's one plain StreamHandler, at INFO or lower, with
    JsonFormatter and no filter but RequestIdFilter (which only fills in a missing request id).
    Else None. Checked for every line: logging's configuration may change at any time."""
    if logger.disabled:
        return None
    node: logging.Logger | None = logger
    while node is not None and node.parent is not None:
        if node.handlers or node.filters or not node.propagate:
            return None
        node = node.parent
    if node is None or node.filters or len(node.handlers) != 1:
        return None
    handler = node.handlers[0]
    if (
        type(handler) is not logging.StreamHandler
        or type(handler.formatter) is not JsonFormatter
        or handler.level > logging.INFO
        or any(type(f) is not RequestIdFilter for f in handler.filters)
    ):
        return None
    return handler


def write_through_root(*names: str) -> None:
    """The named loggers, which a server gave handlers of its own (uvicorn's plain text, configured
    before it loads the application), write through the root logger's handler instead: every line
    of the process in the one JSON format, which a log collector can read. A logger the server
    left without handlers stays as it is (uvicorn's access log, off under --no-access-log)."""
    for name in names:
        logger = logging.getLogger(name)
        if logger.handlers:
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
