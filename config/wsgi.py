import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_wsgi_application()

from config.fastlane import FastLane  # noqa: E402  (after setup: it reads the settings)

# The hottest requests' usual case is answered in front of Django's handler (config/fastlane.py).
application = FastLane(django_application)

from config import redaction  # noqa: E402  (after setup: it configures logging)

redaction.install()  # no credential in a server's own log lines
