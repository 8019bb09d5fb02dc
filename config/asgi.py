"""The ASGI application: HTTP (Django) and WebSockets (Channels) in one.

`make run` serves everything from it; production serves only `/ws/` from it and HTTP from the WSGI
workers (sync views are several times slower under ASGI: docs/architecture.md, Serving).
"""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Under ASGI, persistent per-thread database connections leak; use psycopg's pool (settings).
os.environ.setdefault("DB_POOL", "true")

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()  # sets Django up before the consumers are imported

from django.conf import settings  # noqa: E402
from django.urls import path, re_path  # noqa: E402

from config import redaction, server_errors  # noqa: E402
from config.beat import InProcessBeat  # noqa: E402
from config.logging import write_through_root  # noqa: E402
from config.websockets import TokenQueryAuthMiddleware, UnknownPathConsumer  # noqa: E402
from events.consumers import EventSeatsConsumer  # noqa: E402
from notifications.consumers import NotificationsConsumer  # noqa: E402

websocket_urlpatterns = [
    path("ws/events/<int:event_id>/", EventSeatsConsumer.as_asgi()),
    path("ws/notifications/", NotificationsConsumer.as_asgi()),
    re_path(r"", UnknownPathConsumer.as_asgi()),  # last: closes with 4404
]

# uvicorn writes each WebSocket's path with its ?token= to the log: redact it first.
redaction.install()
# uvicorn's own lines (started, a connection opened, a request it could not read) as JSON lines.
write_through_root("uvicorn", "uvicorn.access")
# What uvicorn and websockets answer themselves (an unreadable request, a refused handshake) in the
# API's error shape, not their plain text.
server_errors.install_uvicorn()

if settings.IN_PROCESS_BEAT and settings.CELERY_TASK_ALWAYS_EAGER:
    InProcessBeat.instance()  # the embedded default's beat (make run): no broker, no beat process

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": TokenQueryAuthMiddleware(URLRouter(websocket_urlpatterns)),
    }
)

# The garbage collector of a process holding thousands of sockets. A full collection walks every
# object of every socket, and no socket gets anything meanwhile; with the default thresholds
# (700, 10, 10) they came often, because each fan-out's thousands of short-lived sends were caught
# alive by young collections and promoted. With young collections every 50,000 allocations
# instead of 700 those objects are freed by reference counting first, and what was imported at
# start-up (it lives as long as the process) is frozen out of every collection. The figures:
# docs/architecture.md, "Measurements behind design choices" (bench/ws_bench.py).
GC_THRESHOLDS = (50_000, 20, 10)
gc.collect()
gc.freeze()
gc.set_threshold(*GC_THRESHOLDS)
