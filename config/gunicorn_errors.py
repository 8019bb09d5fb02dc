"""gunicorn's sync worker, answering what gunicorn itself refuses in the API's one error shape.

A request gunicorn cannot take to the application (a request line or headers over its limits, a
malformed request line, header or chunk) was answered with gunicorn's own HTML page, where the
contract allows no HTML page and wants problem details with a request id on every answer.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from gunicorn import util
from gunicorn.workers import sync

PROBLEM_CONTENT_TYPE = "application/problem+json"
# gunicorn's message quotes what it refused (a whole request line, say): enough of it to tell why.
DETAIL_MAX_CHARS = 200


class SyncWorker(sync.SyncWorker):
    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        # gunicorn chooses the status, logs and counts the refusal, then writes its page through
        # util.write_error: for the length of this call (a sync worker serves one connection at a
        # time), that writes problem details instead.
        write_page = util.write_error
        util.write_error = write_problem
        try:
            super().handle_error(req, client, addr, exc)
        finally:
            util.write_error = write_page


def write_problem(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """util.write_error's replacement: the same status and message, as problem details."""
    from config.problems import default_code, default_detail

    request_id = uuid.uuid4().hex
    detail = mesg.strip()[:DETAIL_MAX_CHARS] if mesg.strip() else default_detail(status_int)
    body = json.dumps(
        {
            "type": "about:blank",
            "title": reason,
            "status": status_int,
            "code": default_code(status_int),
            "detail": detail,
            "request_id": request_id,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Request-ID: {request_id}\r\n"
        "\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)
