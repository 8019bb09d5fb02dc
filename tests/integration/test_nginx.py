"""The reverse proxies' own answers, each in a real nginx:
- compose's (docker/nginx.conf) in front of the deployed server: what nginx answers itself keeps the
  API's error shape, and one request id follows a request;
- the Kubernetes ingress's error backend (deploy/k8s/base/errors.yaml) answers what ingress-nginx
  asks of it in the same shape, under the id the platform would have logged."""

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from config.problems import default_code, default_detail
from tests.helpers import free_port, raw_exchange, serving, wait_until, wsgi_server

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
NGINX = os.environ.get("NGINX", shutil.which("nginx") or "/usr/sbin/nginx")
HEX_ID = 32  # nginx's $request_id, like the platform's own ids: 32 hex digits


def nginx_missing() -> str | None:
    if os.path.exists(NGINX):
        return None
    return f"needs nginx at {NGINX}: apt-get install nginx (CI's .ci/run installs it)"


def local_config(folder: Path, port: int, web: str) -> Path:
    """docker/nginx.conf as compose mounts it, but listening on `port` of loopback, proxying to
    `web` (and to a closed port for ws), and writing its files under `folder`."""
    text = (ROOT / "docker" / "nginx.conf").read_text()
    replacements = {
        "listen 80 default_server;": f"listen 127.0.0.1:{port} default_server;",
        "http://web:8000": web,
        "http://ws:8001": "http://127.0.0.1:1",  # nothing listens there: the service is down
        "pid /run/nginx.pid;": f"pid {folder}/nginx.pid;\nuser root;",
        "error_log /dev/stderr warn;": f"error_log {folder}/error.log warn;",
        "access_log /dev/stdout main;": f"access_log {folder}/access.log main;",
        "http {": "http {\n"
        + "".join(
            f"    {kind}_temp_path {folder}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        ),
    }
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path = folder / "nginx.conf"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, django_db_blocker):
    if (reason := nginx_missing()) is not None:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("nginx")
    with django_db_blocker.unblock(), wsgi_server(folder) as web:
        port = free_port()
        command = [NGINX, "-c", str(local_config(folder, port, web)), "-p", str(folder), "-g", "daemon off;"]
        with serving(folder, command, port, health="/nginx-health", log_name="nginx.out") as base:
            yield base, folder / "access.log"


def assert_problem_from_nginx(answer, status: int, code: str) -> dict:
    answered, headers, body = answer
    assert answered == status, body[:500]
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert (problem["status"], problem["code"]) == (status, code)
    # The platform's own words for the status (config.problems), as nginx cannot ask.
    assert (problem["code"], problem["title"]) == (default_code(status), default_detail(status).rstrip("."))
    assert problem["detail"]
    assert problem["request_id"] == headers["x-request-id"]
    return problem


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (
            b"GET /api/v1/events/?q="
            + b"x" * 9000
            + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            414,
            "uri_too_long",
        ),
        (
            b"GET /api/v1/events/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Big: "
            + b"y" * 9000
            + b"\r\n\r\n",
            431,
            "headers_too_large",
        ),
        (b"NOT A REQUEST LINE AT ALL\r\n\r\n", 400, "bad_request"),
        (b"GET / HTTP/2.0\r\nHost: localhost\r\n\r\n", 400, "bad_request"),  # nginx's 505
        (
            b"POST /api/v1/auth/token/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            b"Transfer-Encoding: gzip\r\n\r\n",
            501,
            "not_implemented",
        ),
        (
            b"POST /api/v1/auth/token/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            b"Content-Length: 11000000\r\n\r\n",
            413,
            "payload_too_large",
        ),
        # The ws service down (nginx's 502) is the contract's "cannot be kept": 503 with Retry-After.
        (
            b"GET /ws/events/1/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            503,
            "service_unavailable",
        ),
        # nginx's own locations of these answers are not reachable from outside.
        (b"GET /.problem/400 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 404, "not_found"),
    ],
    ids=[
        "request-line-too-long",
        "header-too-large",
        "malformed",
        "unknown-version",
        "unknown-transfer-coding",
        "body-too-large",
        "ws-down",
        "internal-page",
    ],
)
def test_what_nginx_answers_itself_keeps_the_error_shape(proxy, request_bytes, status, code):
    base, access_log = proxy
    answer = raw_exchange(base, request_bytes)
    problem = assert_problem_from_nginx(answer, status, code)
    assert len(problem["request_id"]) == HEX_ID and b"<html" not in answer[2].lower()
    if status == 503:
        assert answer[1]["retry-after"] == "5"
    wait_until(lambda: f"request_id={problem['request_id']}" in access_log.read_text(), timeout=5)


def test_the_platforms_own_answers_pass_as_they_are_with_the_same_request_id(proxy):
    base, access_log = proxy
    status, headers, body = raw_exchange(
        base, b"GET /api/v1/no-such-route/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    problem = json.loads(body)
    assert (status, problem["code"]) == (404, "not_found")
    assert problem["detail"] == "Not found."
    # The platform took nginx's id as the request's: the access log and the answer say the same.
    assert headers["x-request-id"] == problem["request_id"] and len(problem["request_id"]) == HEX_ID
    wait_until(lambda: f"request_id={problem['request_id']}" in access_log.read_text(), timeout=5)
    # A client's own sane id is kept all the way through.
    status, headers, _ = raw_exchange(
        base,
        b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Request-ID: trace-42\r\n"
        b"\r\n",
    )
    assert (status, headers["x-request-id"]) == (200, "trace-42")
    wait_until(lambda: "request_id=trace-42" in access_log.read_text(), timeout=5)


# --- The ingress's error backend (deploy/k8s/base/errors.yaml) ----------------------------------------


ERROR_BACKEND = ROOT / "deploy" / "k8s" / "base" / "errors.yaml"


def error_backend_config(folder: Path, port: int, probe_port: int) -> Path:
    """The errors ConfigMap's nginx.conf, listening on `port` (and the probes on `probe_port`) of
    loopback and writing under `folder` instead of the pod's /tmp."""
    (config_map,) = (
        doc for doc in yaml.safe_load_all(ERROR_BACKEND.read_text()) if doc["kind"] == "ConfigMap"
    )
    text = config_map["data"]["nginx.conf"]
    pod_tmp = "/tmp/"  # noqa: S108 (the pod's emptyDir, in the configuration)
    replacements = {
        "listen 8080 default_server;": f"listen 127.0.0.1:{port} default_server;",
        "listen 8081;": f"listen 127.0.0.1:{probe_port};",
        pod_tmp: f"{folder}/",
    }
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    path = folder / "errors.conf"
    path.write_text("user root;\n" + text)  # (ignored unless nginx runs as root, as in CI)
    return path


@pytest.fixture(scope="module")
def error_backend(tmp_path_factory):
    if (reason := nginx_missing()) is not None:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("errors")
    port, probe_port = free_port(), free_port()
    config = error_backend_config(folder, port, probe_port)
    command = [NGINX, "-c", str(config), "-e", "stderr", "-g", "daemon off;"]
    with serving(folder, command, probe_port, health="/healthz", log_name="errors.out"):
        yield f"http://127.0.0.1:{port}", folder / "errors.out"


def ingress_asks(
    base: str, code: str | None, request_id: str, body: bytes, path: str = "/api/v1/events/7/enrollments/"
):
    """What ingress-nginx sends: the client's request (method, body and all) with, for an intercepted
    answer, X-Code and the request's id; with no X-Code when web has no ready pod."""
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: events.example.com",
        "Connection: close",
        f"X-Request-ID: {request_id}",
        f"Content-Length: {len(body)}",
    ]
    if code is not None:
        lines += [f"X-Code: {code}", f"X-Original-URI: {path}", "X-Format: */*"]
    return raw_exchange(base, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)


@pytest.mark.parametrize(
    ("x_code", "status", "code"),
    [
        ("502", 503, "service_unavailable"),  # no pod could be reached: "cannot be kept", as compose says
        ("504", 504, "server_error"),
        ("413", 413, "payload_too_large"),
        (None, 503, "service_unavailable"),  # no ready pod: the request itself comes here
        ("404", 500, "server_error"),  # a code added to the Ingress and not to the backend
    ],
    ids=["pod-failed", "pod-too-slow", "body-too-large", "no-ready-pod", "unknown-code"],
)
def test_the_error_backend_answers_the_ingress_in_the_error_shape(error_backend, x_code, status, code):
    base, log = error_backend
    request_id = f"ingress-{x_code or 'none'}"
    # Over nginx's default body limit of 1 MB when no pod is ready: read and dropped, never refused.
    body = b"x" * (2 * 1024 * 1024 if x_code is None else 100)
    answer = ingress_asks(base, x_code, request_id, body)
    problem = assert_problem_from_nginx(answer, status, code)
    assert problem["request_id"] == request_id  # the id ingress-nginx gave the platform
    assert answer[1].get("retry-after") == ("5" if status == 503 else None)
    line = f"code={x_code or '-'} uri="
    wait_until(
        lambda: any(
            line in entry and f"request_id={request_id}" in entry for entry in log.read_text().splitlines()
        ),
        timeout=5,
    )


def test_the_error_backend_has_no_public_path_of_its_own(error_backend):
    base, _ = error_backend
    # With no ready pod a client's own path comes here: the probes' path is answered like any other.
    status, _, body = ingress_asks(base, None, "probe-from-outside", b"", path="/healthz")
    assert (status, json.loads(body)["code"]) == (503, "service_unavailable")


def test_the_error_backend_never_writes_an_unsafe_id_into_its_answer(error_backend):
    base, _ = error_backend
    sent = 'x","status":200,"code":"ok'
    status, headers, body = ingress_asks(base, "504", sent, b"")
    problem = json.loads(body)  # still one well-formed document
    assert (status, problem["status"], problem["code"]) == (504, 504, "server_error")
    assert problem["request_id"] == headers["x-request-id"] != sent
    assert len(problem["request_id"]) == HEX_ID
