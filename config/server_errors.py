"""What the HTTP servers answer themselves, in the API's one error shape.

A request a server cannot take to the application (a request line or headers over its limits, a
malformed request line or header, a failed WebSocket handshake) was answered with the server's own
page: gunicorn's HTML, uvicorn's and websockets' plain text. The contract allows neither and wants
problem details with a request id on every answer. Each server still chooses the status and logs
the refusal; only what it writes is replaced, at the one place each writes such answers:

- gunicorn (`install_gunicorn`, run in every worker by config/gunicorn.conf.py's
  post_worker_init): util.write_error, for its sync and gthread workers alike;
- uvicorn (`install_uvicorn`, run by config.asgi, which uvicorn imports after its protocol classes
  and before it serves): its HTTP protocols' 400 for an unreadable request, 500 for an
  application that fails before it answers and 503 over `--limit-concurrency`, and websockets'
  handshake refusals (`reject`).
"""

from __future__ import annotations

import email.utils
import http
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from config.logging import request_id_from_header
from config.problems import PROBLEM_CONTENT_TYPE, UNAVAILABLE_RETRY_AFTER_SECONDS, problem_body
from config.redaction import redact

log = logging.getLogger("http.request")

# A server's message may quote what it refused (a whole request line, say): enough of it to tell why.
DETAIL_MAX_CHARS = 200


@dataclass(frozen=True)
class Refusal:
    """An answer a server makes itself: its status, request id, problem details, and the log line
    that names them (written once the answer is)."""

    status: int
    request_id: str
    detail: str
    body: bytes

    @classmethod
    def of(cls, status: int, message: str, *, request_id: str | None = None) -> Refusal:
        """A new id unless the request's own is known. The server's message is the detail (its
        first line, credentials redacted: gunicorn quotes a refused request line whole), but for a
        500, whose detail is the platform's own."""
        request_id = request_id or uuid.uuid4().hex
        first_line = message.strip().partition("\n")[0]
        detail = None if status == 500 else redact(first_line)[:DETAIL_MAX_CHARS] or None
        problem = problem_body(status, None, detail, request_id=request_id)
        return cls(status, request_id, problem["detail"], json.dumps(problem).encode())

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
            (b"content-length", str(len(self.body)).encode()),
            (b"connection", b"close"),
            (b"x-request-id", self.request_id.encode()),
        ]

    def response(self, reason: str, server_headers: list[tuple[bytes, bytes]] | None = None) -> bytes:
        """The whole HTTP/1.1 answer, for a server that writes its bytes itself (`reason`: the
        status's phrase; `server_headers`: those the server puts on every answer)."""
        head = [f"HTTP/1.1 {self.status} {reason}\r\n".encode("latin-1")]
        for name, value in [*(server_headers or []), *self.headers()]:
            head.append(name + b": " + value + b"\r\n")
        return b"".join([*head, b"\r\n", self.body])

    def log(self) -> None:
        log.info(
            "request failed in the server" if self.status == 500 else "request refused by the server",
            extra={"request_id": self.request_id, "fields": {"status": self.status, "detail": self.detail}},
        )


def install_gunicorn() -> None:
    """gunicorn writes every answer of its own through util.write_error (workers/base.py)."""
    from gunicorn import util

    util.write_error = write_gunicorn_problem


def write_gunicorn_problem(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's util.write_error replaced: the same status and message, as problem details."""
    from gunicorn import util

    refusal = Refusal.of(status_int, mesg)
    refusal.log()
    # reason is one of gunicorn's fixed phrases; what the client sent is only in the JSON body.
    util.write_nonblock(sock, refusal.response(reason))


def install_uvicorn() -> None:
    """uvicorn's own answers, for each of its HTTP parsers that is installed (httptools, uvicorn's
    choice; h11, its choice where httptools is missing) and for its WebSocket handshakes
    (websockets' sans-I/O protocol, its choice where websockets is installed)."""
    try:
        from uvicorn.protocols.http import httptools_impl
    except ImportError:  # httptools is not installed: uvicorn cannot choose it
        pass
    else:
        httptools_impl.HttpToolsProtocol.send_400_response = _httptools_400  # type: ignore[method-assign]
        httptools_impl.RequestResponseCycle.send_500_response = _send_500  # type: ignore[method-assign]
        httptools_impl.service_unavailable = _service_unavailable  # type: ignore[assignment]
    from uvicorn.protocols.http import h11_impl

    h11_impl.H11Protocol.send_400_response = _h11_400  # type: ignore[method-assign]
    h11_impl.RequestResponseCycle.send_500_response = _send_500  # type: ignore[method-assign]
    h11_impl.service_unavailable = _service_unavailable  # type: ignore[assignment]
    try:
        from websockets.server import ServerProtocol
    except ImportError:  # no websockets: uvicorn serves no WebSocket with it
        return
    if getattr(ServerProtocol.accept, "_platform_request_id", False):
        return  # installed already (the original accept is wrapped once)
    ServerProtocol.accept = _remembering_request_id(ServerProtocol.accept)  # type: ignore[method-assign]
    ServerProtocol.reject = _reject_handshake  # type: ignore[method-assign]


def _httptools_400(self: Any, msg: str) -> None:
    """HttpToolsProtocol.send_400_response: the request could not be parsed."""
    refusal = Refusal.of(400, msg)
    self.transport.write(refusal.response("Bad Request", self.server_state.default_headers))
    refusal.log()
    self.transport.close()


def _h11_400(self: Any, msg: str) -> None:
    """H11Protocol.send_400_response: the same answer through h11's state machine."""
    import h11

    refusal = Refusal.of(400, msg)
    headers = [*self.server_state.default_headers, *refusal.headers()]
    events = [
        h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
        h11.Data(data=refusal.body),
        h11.EndOfMessage(),
    ]
    try:
        output = b"".join(self.conn.send(event) for event in events)
    except h11.LocalProtocolError:  # an answer had begun (the body turned out unreadable): cut it
        self.transport.close()
        return
    self.transport.write(output)
    refusal.log()
    self.transport.close()


async def _send_500(self: Any) -> None:
    """RequestResponseCycle.send_500_response: the application failed before it answered (uvicorn
    has logged why). The request's own id when it sent a sane one, as the platform would answer."""
    await _send_asgi(self.send, Refusal.of(500, "", request_id=_scope_request_id(self.scope)))


async def _service_unavailable(scope: Any, receive: Any, send: Any) -> None:
    """The ASGI application uvicorn answers with instead of the platform's while it holds as many
    connections or tasks as `--limit-concurrency` allows: 503, as the contract's "cannot take it
    now", with when to come back."""
    refusal = Refusal.of(
        503,
        "The server is at its limit of concurrent requests: try again in a few seconds.",
        request_id=_scope_request_id(scope),
    )
    await _send_asgi(send, refusal, (b"retry-after", str(UNAVAILABLE_RETRY_AFTER_SECONDS).encode()))


async def _send_asgi(send: Any, refusal: Refusal, *extra_headers: tuple[bytes, bytes]) -> None:
    """Sends the answer through ASGI's `send`, then logs it."""
    headers = [*refusal.headers(), *extra_headers]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": refusal.body, "more_body": False})
    refusal.log()


def _scope_request_id(scope: Any) -> str:
    """The request's own id when it sent a sane X-Request-ID (nginx passes its id on), else a new one."""
    sent = next((value for name, value in scope["headers"] if name == b"x-request-id"), b"")
    return request_id_from_header(sent.decode("latin-1"))


def _remembering_request_id(accept: Any) -> Any:
    """websockets' ServerProtocol.accept, keeping the id a refusal of this handshake answers with:
    the request's own when it sent a sane one (nginx passes its id on), as the platform's answers."""

    def remembering(self: Any, request: Any) -> Any:
        self.platform_request_id = request_id_from_header(request.headers.get("X-Request-ID", ""))
        return accept(self, request)

    remembering._platform_request_id = True  # type: ignore[attr-defined]
    return remembering


def _reject_handshake(self: Any, status: Any, text: str) -> Any:
    """websockets' ServerProtocol.reject: a handshake refused (a missing key, an unknown version, a
    second Upgrade header's 426, a consumer that closes before accepting, a failing application)."""
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    status = http.HTTPStatus(status)
    refusal = Refusal.of(status.value, text, request_id=getattr(self, "platform_request_id", None))
    headers = Headers([("Date", email.utils.formatdate(usegmt=True))])
    for name, value in refusal.headers():
        headers[name.decode()] = value.decode()
    refusal.log()  # the caller sends it
    return Response(status.value, status.phrase, headers, refusal.body)
