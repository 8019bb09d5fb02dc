"""An ASGI application that fails before it answers, served by uvicorn with the answers config.asgi
installs (tests/e2e/test_server_refusals.py). The platform's own application answers every HTTP
request through Django, which turns any failure into its own 500, so uvicorn's 500 is reached only
this way. It answers the health check the test server waits for."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from config import server_errors  # noqa: E402

server_errors.install_uvicorn()


async def application(scope, receive, send):  # noqa: ANN001, ANN201
    if scope["type"] != "http":
        return
    if scope["path"] == "/health/live":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"status": "ok"}'})
        return
    raise RuntimeError("this application fails before it answers")
