"""What the HTTP servers answer themselves, in the API's one error shape.

A request a server cannot take to the application (a request line or headers over its limits, a
malformed request line or header, a failed WebSocket handshake) was answered with the server's own
page: gunicorn's HTML, uvicorn's and websockets' plain text. The contract allows neither and wants
problem details with a request id on every answer. Each server still chooses the status and logs
the refusal; only what it writes is replaced, at the one place each writes such answers:

- gunicorn (`install_gunicorn`, run in every worker by config/gunicorn.conf.py's
  post_worker_init): util.write_error, for its sync and gthread workers alike;
- uvicorn (`install_uvicorn`, run by config.asgi, which uvicorn imports after its protocol classes
  and before it serves): its HTTP protocols' 400 for an unreadable request and 500 for an
  application that fails before it answers, and websockets' handshake refusals (`reject`).
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from config.middleware import request_id_for
from config.problems import PROBLEM_CONTENT_TYPE, problem_body

log = logging.getLogger("http.request")

# A server's message may quote what it refused (a whole request line, say): enough of it to tell why.
DETAIL_MAX_CHARS = 200


def refusal(status: int, message: str, *, request_id: str | None = None) -> tuple[str, bytes]:
    """The request id and the problem's bytes for an answer the server makes itself, logged with
    both (a new id unless the request's own is known)."""
    request_id = request_id or uuid.uuid4().hex
    detail = message.strip()[:DETAIL_MAX_CHARS] or None  # None: the status's own
    problem = problem_body(status, None, detail, request_id=request_id)
    log.info(
        "request refused by the server" if status < 500 else "request failed in the server",
        extra={"request_id": request_id, "fields": {"status": status, "detail": problem["detail"]}},
    )
    return request_id, json.dumps(problem).encode()


def install_gunicorn() -> None:
    """gunicorn writes every answer of its own through util.write_error (workers/base.py)."""
    from gunicorn import util

    util.write_error = write_gunicorn_problem


def write_gunicorn_problem(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's util.write_error replaced: the same status and message, as problem details."""
    from gunicorn import util

    request_id, body = refusal(status_int, mesg)
    # reason is one of gunicorn's fixed phrases; what the client sent is only in the JSON body.
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Request-ID: {request_id}\r\n"
        "\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def install_uvicorn() -> None:
    """uvicorn's own answers, for both of its HTTP parsers (httptools, and h11 where httptools is
    not installed) and for its WebSocket handshakes (websockets' sans-I/O protocol, uvicorn's
    choice when websockets is installed)."""
    from uvicorn.protocols.http import h11_impl, httptools_impl
    from websockets.server import ServerProtocol

    httptools_impl.HttpToolsProtocol.send_400_response = _httptools_400  # type: ignore[method-assign]
    h11_impl.H11Protocol.send_400_response = _h11_400  # type: ignore[method-assign]
    httptools_impl.RequestResponseCycle.send_500_response = _send_500  # type: ignore[method-assign]
    h11_impl.RequestResponseCycle.send_500_response = _send_500  # type: ignore[method-assign]
    ServerProtocol.reject = _reject_handshake  # type: ignore[method-assign]


def _problem_headers(request_id: str, body: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"x-request-id", request_id.encode()),
    ]


def _httptools_400(self: Any, msg: str) -> None:
    """HttpToolsProtocol.send_400_response: the request could not be parsed."""
    request_id, body = refusal(400, msg)
    lines = [b"HTTP/1.1 400 Bad Request\r\n"]
    for name, value in [*self.server_state.default_headers, *_problem_headers(request_id, body)]:
        lines.append(name + b": " + value + b"\r\n")
    self.transport.write(b"".join([*lines, b"\r\n", body]))
    self.transport.close()


def _h11_400(self: Any, msg: str) -> None:
    """H11Protocol.send_400_response: the same answer through h11's state machine."""
    import h11

    request_id, body = refusal(400, msg)
    headers = _problem_headers(request_id, body)
    for event in (h11.Response(status_code=400, headers=headers), h11.Data(data=body), h11.EndOfMessage()):
        self.transport.write(self.conn.send(event))
    self.transport.close()


async def _send_500(self: Any) -> None:
    """RequestResponseCycle.send_500_response: the application failed before it answered (uvicorn
    has logged why). The request's own id when it sent a sane one, as the platform would answer."""
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in self.scope["headers"]}
    request_id, body = refusal(
        500, "", request_id=request_id_for({"HTTP_X_REQUEST_ID": headers.get("x-request-id", "")})
    )
    await self.send(
        {"type": "http.response.start", "status": 500, "headers": _problem_headers(request_id, body)}
    )
    await self.send({"type": "http.response.body", "body": body, "more_body": False})


def _reject_handshake(self: Any, status: Any, text: str) -> Any:
    """websockets' ServerProtocol.reject: a handshake refused (a missing key, an unknown version,
    a consumer that closes before accepting, a failing application)."""
    import email.utils
    import http

    from websockets.datastructures import Headers
    from websockets.http11 import Response

    status = http.HTTPStatus(status)
    request_id, body = refusal(status.value, text)
    headers = Headers(
        [("Date", email.utils.formatdate(usegmt=True))]
        + [(name.decode(), value.decode()) for name, value in _problem_headers(request_id, body)]
    )
    return Response(status.value, status.phrase, headers, body)
