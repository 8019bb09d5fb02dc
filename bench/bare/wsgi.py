"""WSGI entry of the bare reference app: `gunicorn bench.bare.wsgi` (or granian) from the repository root."""

import os

from django.core.wsgi import get_wsgi_application

os.environ["DJANGO_SETTINGS_MODULE"] = "bench.bare.settings"
application = get_wsgi_application()
