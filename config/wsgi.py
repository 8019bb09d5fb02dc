import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from config import redaction  # noqa: E402  (after setup: it configures logging)

redaction.install()  # no credential in a server's own log lines
