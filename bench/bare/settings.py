"""Minimal settings of the bare reference app (bench/bare): no apps, no middleware, no database.

It is what Django itself costs per request on this server: the denominator of every figure of
bench/http_bench.py. Served by the same server, with the same worker count, as the platform.
"""

import os

SECRET_KEY = os.environ.get("SECRET_KEY", "bare-bench-app-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "bench.bare.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
USE_I18N = False
LOGGING_CONFIG = None  # Django's default logging is not installed either
