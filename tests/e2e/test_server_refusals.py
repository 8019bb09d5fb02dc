"""What the deployed HTTP server (gunicorn) refuses before the application sees it still gets the
contract's error shape: gunicorn answered with its own HTML page."""

import json
import socket
import urllib.parse

import pytest

from tests.helpers import wait_until, wsgi_server

pytestmark = pytest.mark.django_db(transaction=True)


def raw_exchange(base: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Sends the bytes as they are (no client library would send these) and reads the answer to
    the end (the server closes the connection)."""
    address = urllib.parse.urlsplit(base)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = (line.partition(":") for line in header_lines)
    headers = {name.lower(): value.strip() for name, _, value in fields}
    return int(status_line.split()[1]), headers, body


@pytest.fixture(scope="module", params=[(), ("--threads", "2")], ids=["sync", "gthread"])
def server(request, tmp_path_factory, django_db_blocker):
    """The deployed server, with its sync workers, and with threads (which gunicorn then runs as
    its gthread worker): the answers are gunicorn's whatever the worker class."""
    folder = tmp_path_factory.mktemp("gunicorn")
    with django_db_blocker.unblock(), wsgi_server(folder, *request.param) as base:
        yield base, folder / "server.log"


@pytest.mark.parametrize(
    ("request_bytes", "status", "code", "detail"),
    [
        (
            b"GET /api/v1/events/?q=" + b"x" * 9000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
            414,
            "uri_too_long",
            "Request Line is too large",
        ),
        (
            b"GET /api/v1/events/ HTTP/1.1\r\nHost: localhost\r\n"
            + b"".join(b"X-Header-%d: 1\r\n" % n for n in range(150))
            + b"\r\n",
            431,
            "headers_too_large",
            "Error parsing headers",
        ),
        (b"NOT A REQUEST LINE AT ALL\r\n\r\n", 400, "bad_request", "Invalid"),
        (b"GET / HTTP/9.9\r\nHost: localhost\r\n\r\n", 400, "bad_request", "Invalid HTTP Version"),
    ],
    ids=["request-line-too-long", "too-many-headers", "malformed-request-line", "unknown-version"],
)
def test_a_request_the_server_refuses_gets_problem_details(server, request_bytes, status, code, detail):
    base, log = server
    answered, headers, body = raw_exchange(base, request_bytes)
    assert answered == status
    assert headers["content-type"] == "application/problem+json"
    assert int(headers["content-length"]) == len(body)
    problem = json.loads(body)
    assert problem["status"] == status and problem["code"] == code
    assert problem["detail"].startswith(detail) and len(problem["detail"]) <= 200
    assert problem["request_id"] == headers["x-request-id"] and len(problem["request_id"]) == 32
    assert b"<html" not in body.lower()
    # The log line of the refusal carries the id the client was given.
    wait_until(lambda: problem["request_id"] in log.read_text(), timeout=5)


def test_the_worker_goes_on_serving_after_a_refusal(server):
    base, _ = server
    raw_exchange(base, b"NOT A REQUEST LINE AT ALL\r\n\r\n")
    status, headers, body = raw_exchange(base, b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert status == 200 and json.loads(body)["status"] == "ok"
