"""What the deployed HTTP server (gunicorn) refuses before the application sees it still gets the
contract's error shape: gunicorn answered with its own HTML page."""

import json

import pytest

from tests.helpers import raw_exchange, wait_until, wsgi_server

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
    answered, headers, body = raw_exchange(base, request_bytes)
    assert answered == status
    assert headers["content-type"] == "application/problem+json"
    assert int(headers["content-length"]) == len(body)
    problem = json.loads(body)
    assert problem["status"] == status and problem["code"] == code
    assert problem["detail"].startswith(detail) and len(problem["detail"]) <= 200
    assert problem["request_id"] == headers["x-request-id"] and len(problem["request_id"]) == 32
    assert b"<html" not in body.lower()

    # The log line of the refusal carries the id the client was given, and the status.
    def logged() -> list[dict]:
        return [json.loads(line) for line in log.read_text().splitlines() if problem["request_id"] in line]

    [line] = wait_until(logged, timeout=5)
    assert (line["msg"], line["status"]) == ("request refused by the server", status)


def test_the_worker_goes_on_serving_after_a_refusal(server):
    base, _ = server
    raw_exchange(base, b"NOT A REQUEST LINE AT ALL\r\n\r\n")
    status, headers, body = raw_exchange(base, b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert status == 200 and json.loads(body)["status"] == "ok"
