"""What the HTTP servers refuse before the application sees it still gets the contract's error
shape: gunicorn (the deployed HTTP server) answered with its own HTML page, uvicorn (`make run`, and
`/ws/` in production) and websockets with plain text."""

import json
import re
import socket
import urllib.parse

import pytest

from tests.helpers import asgi_server, raw_exchange, wait_until, wsgi_server

pytestmark = pytest.mark.django_db(transaction=True)


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
    problem = assert_refused_with_problem(base, log, request_bytes, status, code, detail)
    assert len(problem["request_id"]) == 32  # the server's own: it read no header


def assert_refused_with_problem(base, log, request_bytes, status, code, detail, logged_as="refused by"):
    """The server's answer to the bytes is problem details with the status, code and the start of
    the detail, and the server's log line about it carries its request id."""
    answered, headers, body = raw_exchange(base, request_bytes)
    assert answered == status
    assert headers["content-type"] == "application/problem+json"
    assert int(headers["content-length"]) == len(body)
    problem = json.loads(body)
    assert problem["status"] == status and problem["code"] == code
    assert problem["detail"].startswith(detail) and len(problem["detail"]) <= 200
    assert problem["request_id"] and problem["request_id"] == headers["x-request-id"]
    assert b"<html" not in body.lower()

    # The log line of the refusal carries the id the client was given, and the status.
    def logged() -> list[dict]:
        return [json.loads(line) for line in log.read_text().splitlines() if problem["request_id"] in line]

    [line] = wait_until(logged, timeout=5)
    assert (line["msg"], line["status"]) == (f"request {logged_as} the server", status)
    return problem


def test_the_worker_goes_on_serving_after_a_refusal(server):
    base, _ = server
    raw_exchange(base, b"NOT A REQUEST LINE AT ALL\r\n\r\n")
    status, headers, body = raw_exchange(base, b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert status == 200 and json.loads(body)["status"] == "ok"


def test_the_benchmarks_reference_app_is_served_alike(tmp_path):
    """bench/'s figures are ratios to a bare Django app served by the same gunicorn configuration,
    whose hooks (the error writer, the log format) must not need the platform's Django apps: an
    import of them once kept its workers from booting."""
    with wsgi_server(tmp_path, app="bench.bare.wsgi:application") as base:
        status, _, body = raw_exchange(base, b"GET /bare HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert status == 200 and json.loads(body) == {"status": "ok"}
        status, headers, body = raw_exchange(base, b"NOT A REQUEST LINE AT ALL\r\n\r\n")
        assert (status, headers["content-type"]) == (400, "application/problem+json")
        assert json.loads(body)["request_id"] == headers["x-request-id"]


def test_gunicorns_own_log_lines_are_json(server):
    # gunicorn's plain lines began "[2026-12-07 10:00:00 +0000] [pid] [INFO]".
    assert_own_lines_are_json(server[1], "gunicorn.error", plain_line=r"^\[\d{4}-")


def assert_own_lines_are_json(log, logger, *, plain_line):
    """The logger's lines (a server's own: started, a request refused, a worker booted) are JSON
    lines like the platform's, which a log collector reads as one format; none is in its plain
    format."""

    def server_lines() -> list[dict]:
        lines = log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{") and f'"{logger}"' in line]

    wait_until(server_lines, timeout=5)
    assert not [line for line in log.read_text().splitlines() if re.match(plain_line, line)]


@pytest.fixture(scope="module", params=[(), ("--http", "h11")], ids=["httptools", "h11"])
def uvicorn_server(request, tmp_path_factory, django_db_blocker):
    """`make run`'s server, with either of uvicorn's HTTP parsers: httptools (installed, uvicorn's
    choice) and h11 (its choice where httptools is missing)."""
    folder = tmp_path_factory.mktemp("uvicorn")
    with (
        django_db_blocker.unblock(),
        asgi_server(folder, *request.param, CELERY_BROKER_URL="", DEBUG="true") as base,
    ):
        yield base, folder / "server.log"


WEBSOCKET_HANDSHAKE = (
    b"GET /ws/events/1/ HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
)


@pytest.mark.parametrize(
    ("request_bytes", "detail"),
    [
        (b"NOT A REQUEST LINE AT ALL\r\n\r\n", "Invalid HTTP request received."),
        (
            b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: x\r\n\r\n",
            "Invalid HTTP request received.",
        ),
        (b"GET / HTTP/1.1\r\nHost: localhost\r\nBad Header: 1\r\n\r\n", "Invalid HTTP request received."),
        (
            WEBSOCKET_HANDSHAKE + b"Sec-WebSocket-Version: 13\r\n\r\n",
            "Failed to open a WebSocket connection: missing Sec-WebSocket-Key header.",
        ),
        (
            WEBSOCKET_HANDSHAKE
            + b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 99\r\n\r\n",
            "Failed to open a WebSocket connection: invalid Sec-WebSocket-Version header: 99.",
        ),
    ],
    ids=[
        "malformed-request-line",
        "malformed-length",
        "malformed-header",
        "handshake-without-key",
        "handshake-version",
    ],
)
def test_a_request_uvicorn_refuses_gets_problem_details(uvicorn_server, request_bytes, detail):
    base, log = uvicorn_server
    problem = assert_refused_with_problem(base, log, request_bytes, 400, "bad_request", detail)
    assert problem["detail"] == detail


def test_a_refused_handshake_keeps_its_headers_and_the_request_id(uvicorn_server):
    """websockets' 426 (two Upgrade headers) sets a header on the answer it gets; the request's
    own id (nginx passes its id on) names the refusal, as the platform's answers do."""
    base, log = uvicorn_server
    request_bytes = (
        WEBSOCKET_HANDSHAKE
        + b"Upgrade: websocket\r\n"
        + b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        + b"X-Request-ID: nginx-id-1\r\n\r\n"
    )
    problem = assert_refused_with_problem(
        base,
        log,
        request_bytes,
        426,
        "upgrade_required",
        "Failed to open a WebSocket connection: invalid Upgrade",
    )
    assert problem["request_id"] == "nginx-id-1"
    assert "\n" not in problem["detail"]  # websockets' text goes on with advice for browsers
    _, headers, _ = raw_exchange(base, request_bytes)
    assert headers["upgrade"] == "websocket"


def test_uvicorn_goes_on_serving_after_a_refusal(uvicorn_server):
    base, _ = uvicorn_server
    raw_exchange(base, b"NOT A REQUEST LINE AT ALL\r\n\r\n")
    status, _, body = raw_exchange(
        base, b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    assert status == 200 and json.loads(body)["status"] == "ok"


def test_uvicorns_own_log_lines_are_json(uvicorn_server):
    base, log = uvicorn_server
    # uvicorn's plain lines began "INFO:     ".
    assert_own_lines_are_json(log, "uvicorn.error", plain_line=r"^(INFO|WARNING|ERROR): ")
    # Django's own records too, under DEBUG (make run's), where Django's console handler wrote a
    # plain copy of each.
    raw_exchange(base, b"GET /health/live HTTP/1.1\r\nHost: elsewhere.example\r\nConnection: close\r\n\r\n")
    assert_own_lines_are_json(log, "django.security.DisallowedHost", plain_line=r"^Invalid HTTP_HOST header")


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_an_application_failing_before_it_answers_gets_a_problem_500(tmp_path, http):
    """uvicorn's own 500, with the request's id when it sent one (see tests/e2e/failing_asgi.py)."""
    with asgi_server(tmp_path, "--http", http, app="tests.e2e.failing_asgi:application") as base:
        problem = assert_refused_with_problem(
            base,
            tmp_path / "server.log",
            b"GET /api/v1/events/ HTTP/1.1\r\nHost: localhost\r\nX-Request-ID: client-id-1\r\n\r\n",
            500,
            "server_error",
            "A server error occurred.",
            logged_as="failed in",
        )
    assert problem["request_id"] == "client-id-1"


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_a_request_over_uvicorns_concurrency_limit_gets_a_problem_503(tmp_path, django_db_blocker, http):
    """With `--limit-concurrency 2`, one idle connection held open leaves room for no other request
    (uvicorn counts the request's own connection; it takes connections in in the order they came):
    the request is refused 503 with Retry-After, under its own id, and served once the idle
    connection is gone."""
    health = b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    with (
        django_db_blocker.unblock(),
        asgi_server(tmp_path, "--http", http, "--limit-concurrency", "2") as base,
    ):
        address = urllib.parse.urlsplit(base)
        with socket.create_connection((address.hostname, address.port), timeout=10):
            problem = assert_refused_with_problem(
                base,
                tmp_path / "server.log",
                health + b"X-Request-ID: over-limit-1\r\n\r\n",
                503,
                "service_unavailable",
                "The server is at its limit of concurrent requests",
            )
            assert problem["request_id"] == "over-limit-1"
            _, headers, _ = raw_exchange(base, health + b"\r\n")
            assert headers["retry-after"] == "5"
        wait_until(lambda: raw_exchange(base, health + b"\r\n")[0] == 200, timeout=5)
