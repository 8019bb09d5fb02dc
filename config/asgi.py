"""The ASGI application: HTTP (Django) and WebSockets (Channels) in one.

`make run` serves everything from it; production serves only `/ws/` from it and HTTP from the WSGI
workers (sync views are several times slower under ASGI: docs/architecture.md, Serving).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Under ASGI, persistent per-thread database connections leak; use psycopg's pool (settings).
os.environ.setdefault("DB_POOL", "true")

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()  # sets Django up before the consumers are imported

from django.urls import path  # noqa: E402

from config.websockets import TokenQueryAuthMiddleware  # noqa: E402
from events.consumers import EventSeatsConsumer  # noqa: E402
from notifications.consumers import NotificationsConsumer  # noqa: E402

websocket_urlpatterns = [
    path("ws/events/<int:event_id>/", EventSeatsConsumer.as_asgi()),
    path("ws/notifications/", NotificationsConsumer.as_asgi()),
]

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": TokenQueryAuthMiddleware(URLRouter(websocket_urlpatterns)),
    }
)
