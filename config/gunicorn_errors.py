"""What gunicorn answers itself, in the API's one error shape.

A request gunicorn cannot take to the application (a request line or headers over its limits, a
malformed request line or header) was answered with gunicorn's own HTML page, where the contract
allows no HTML page and wants problem details with a request id on every answer. `install()`, run
in every worker (config/gunicorn.conf.py's post_worker_init), has gunicorn write problem details
instead, with its sync and gthread workers alike: gunicorn still chooses the status and logs the
refusal.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from gunicorn import util

from config.problems import PROBLEM_CONTENT_TYPE, problem_body

log = logging.getLogger("http.request")

# gunicorn's message quotes what it refused (a whole request line, say): enough of it to tell why.
DETAIL_MAX_CHARS = 200


def install() -> None:
    """gunicorn writes every answer of its own through util.write_error (workers/base.py)."""
    util.write_error = write_problem


def write_problem(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """util.write_error's replacement: the same status and message, as problem details, with a
    request id that the log line of the refusal carries too."""
    request_id = uuid.uuid4().hex
    detail = mesg.strip()[:DETAIL_MAX_CHARS] or None  # None: the status's own
    problem = problem_body(status_int, None, detail, request_id=request_id)
    body = json.dumps(problem).encode()
    # reason is one of gunicorn's fixed phrases; what the client sent is only in the JSON body.
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Request-ID: {request_id}\r\n"
        "\r\n"
    )
    log.info(
        "request refused by the server",
        extra={"request_id": request_id, "fields": {"status": status_int, "detail": problem["detail"]}},
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)
