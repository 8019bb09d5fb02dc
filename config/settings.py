"""One settings module, read from the environment (and an optional `.env`).

With nothing set, the platform runs on its embedded default: SQLite under `var/`, local-memory
cache, tasks in-process, emails written as files under `var/mail/`. Each production adapter is
switched on by its variable: DATABASE_URL, REDIS_URL, CELERY_BROKER_URL, EMAIL_URL.
"""

from __future__ import annotations

import os
import secrets
import sys
import warnings
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# --- Secrets and debug ----------------------------------------------------------------------------


def _dev_secret_key() -> str:
    """A random key made once per checkout (var/dev-secret-key, readable by its owner only), so no
    two development instances share one and nobody can mint tokens for another's. It lives in the
    checkout's var/ whatever VAR_DIR says: every process of one checkout signs with the same key."""
    path = BASE_DIR / "var" / "dev-secret-key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()  # made by an earlier run, or a process starting beside us
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY", default="")
# Debug follows the presence of a real secret: a deployment sets SECRET_KEY and gets debug off.
DEBUG = env.bool("DEBUG", default=not SECRET_KEY)
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = _dev_secret_key()
    # Once per start: `make run` sets DEV_KEY_WARNED for every step after its first.
    if "pytest" not in sys.modules and os.environ.get("DEV_KEY_WARNED") != "1":
        warnings.warn(
            "SECRET_KEY is not set: running with this checkout's development key and DEBUG on. "
            "Never expose this instance.",
            stacklevel=1,
        )

if not DEBUG and SECRET_KEY.startswith("change-me"):
    raise ImproperlyConfigured("SECRET_KEY is still the placeholder of .env.example: generate a real one.")

# Development answers local names only: a foreign Host header would otherwise be echoed into links.
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- Applications ---------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "config.outbox",
    "participants",
    "events",
    "notifications",
    "reports",
]

MIDDLEWARE = [
    # Request id, the request log line and the HTTP metrics (config.metrics), once per request.
    "config.middleware.RequestIdMiddleware",
    "config.middleware.ProblemDetailsMiddleware",
    "config.methods.UnservedMethodMiddleware",
    # Idempotency-Key on the creating POSTs: a retry replays the first answer.
    "config.idempotency.IdempotencyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Sessions, the session's user and messages serve the admin only (the API uses tokens).
    "config.middleware.AdminSessionMiddleware",
    "config.middleware.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "config.middleware.AdminAuthenticationMiddleware",
    "config.middleware.AdminMessageMiddleware",
    # The admin's malformed input: a NUL or an impossible selection 400, an impossible date filter
    # the list without its filters, never a 500.
    "config.middleware.AdminInputMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
# The routes answered in front of Django's handler under WSGI (config/fastlane.py).
FAST_LANE_ROUTES = "events.api.urls.FAST_ROUTES"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
AUTH_USER_MODEL = "participants.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "config" / "templates"],  # the admin's dashboard and inline templates
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent writers (an enrollment rush) must queue, not fail with "database is locked":
    # writes start as IMMEDIATE transactions and wait up to 20 s; WAL lets readers go on meanwhile.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not ":memory:", so that tests with real threads share one database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_db.sqlite3")}
elif env.bool("DB_POOL", default=False):
    # ASGI processes (config/asgi.py turns this on): a persistent connection per request thread
    # would leak connections; psycopg's pool hands them out and takes them back instead.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN", default=2),
        "max_size": env.int("DB_POOL_MAX", default=10),
        "timeout": 10,
    }
else:
    # Persistent connections suit the WSGI workers that serve HTTP in production.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# A connection whose last request ended less than this many seconds ago skips the health check's
# round trip (config/dbconnections.py: what is checked, and what is left to the error path).
DB_HEALTH_CHECK_AFTER_IDLE_SECONDS = env.float("DB_HEALTH_CHECK_AFTER_IDLE_SECONDS", default=1.0)
# The hottest statements are prepared (config/prepared.py: what for, and when to turn it off).
DB_PREPARED_STATEMENTS = env.bool("DB_PREPARED_STATEMENTS", default=True)
if not DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Behind PgBouncer in transaction mode a server-side cursor (QuerySet.iterator()) can outlive its
    # server connection: such deployments turn them off.
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env.bool(
        "DB_DISABLE_SERVER_SIDE_CURSORS", default=False
    )
    # psycopg prepares only on a connection with a threshold. Django's own cursors bind on the
    # client and never prepare, so the threshold (psycopg's default) matters only to
    # prepared_cursor(), which prepares at once.
    if DB_PREPARED_STATEMENTS:
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
    # psycopg waits 130 s for a database that does not answer (a host gone without a reset): longer
    # than gunicorn's 30 s, so a request died as a 502 instead of failing as a 503 with Retry-After.
    # A `connect_timeout` in DATABASE_URL's query wins.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=5)
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="evp"),
            "OPTIONS": {
                # Redis down must not take requests down: reads fall through to the database.
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
            },
        }
    }
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
elif env.str("CELERY_BROKER_URL", default=""):
    # Several processes (make run's Procfile: the web server, the admission consumer, the workers)
    # and no Redis: a cache they share, in files on this machine. Each one's own memory disagreed:
    # the consumer's decisions never reached the seats the web server had cached.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Channel layer (live updates over WebSockets) -------------------------------------------------
if REDIS_URL:
    # Across processes: the web process, the WebSocket server and the workers all broadcast.
    # Redis pub/sub: a process subscribes once per group it has sockets in, over one connection,
    # and fans messages out itself; nothing is stored in Redis, so nothing can be left behind by
    # sockets (or processes) that go away. Seat sockets do not even subscribe: their process
    # does, once per event (config/fanout.py). docs/architecture.md, Live updates, has the figures.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                # Pub/sub channels belong to the whole Redis server, not to a database: the
                # database's number in the prefix keeps deployments (and test runs) that share a
                # server on different databases from hearing each other.
                "prefix": "asgi-db" + ((REDIS_URL.split("?")[0].split("/")[3:4] or ["0"])[0] or "0") + "-",
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_connect_timeout": 0.5,
                        # No client-side read/write timeout: any value makes redis-py write through
                        # asyncio.wait_for, which on Python 3.11 can swallow a cancellation (a
                        # closed socket's consumer then never finishes, and a server never stops).
                        # The layer polls its subscription every 0.1 s; keepalive finds dead peers.
                        "socket_timeout": None,
                        "socket_keepalive": True,
                        # Publishing takes a pooled connection per concurrent send (subscriptions
                        # share one); redis-py's async pool fails at once beyond its maximum.
                        "max_connections": env.int("CHANNEL_LAYER_MAX_CONNECTIONS", default=2000),
                    }
                ],
            },
        }
    }
else:
    # Embedded default: one process serves HTTP and WebSockets and runs the tasks.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# A broadcast waits at most this long for the channel layer; it never fails the caller.
BROADCAST_TIMEOUT_SECONDS = env.float("BROADCAST_TIMEOUT_SECONDS", default=1.0)
BROADCAST_PAUSE_SECONDS = env.float("BROADCAST_PAUSE_SECONDS", default=5.0)

# --- Task broker (Celery on RabbitMQ) -------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
# Embedded default: no broker, tasks run in-process right after the commit that asked for them.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ROUTES = {
    # Exact names before patterns: the reminder run is a notifications worker's job.
    "events.send_reminders": {"queue": "notifications"},
    "notifications.*": {"queue": "notifications"},
    "reports.*": {"queue": "reports"},
    "events.*": {"queue": "admissions"},
}
# Durable classic queues, one per worker process, each with its own direct exchange. `admissions`
# carries the wake-ups of the admission consumer (queued enrollment, events.admission).
# Clustered brokers: quorum queues (replicated) instead of classic durable queues. They need topic
# exchanges: Celery's native delayed delivery (the notification retries' countdown) skips direct
# ones. An existing broker's queues and exchanges must be drained and deleted before switching.
RABBITMQ_QUORUM_QUEUES = env.bool("RABBITMQ_QUORUM_QUEUES", default=False)
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name, type="topic"), routing_key=name, queue_arguments={"x-queue-type": "quorum"})
    if RABBITMQ_QUORUM_QUEUES
    else Queue(name, Exchange(name), routing_key=name)
    for name in ("notifications", "reports", "admissions")
]
CELERY_TASK_DEFAULT_QUEUE = "notifications"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
# Tasks are idempotent, so a message is acknowledged only once its task has finished, and one whose
# worker died is delivered again.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A task still running after this long is killed (its pool process replaced) and its message put
# back in the queue, as if its worker had died: something it waits for has hung without a timeout of
# its own, and a pool process lost to it for good went unnoticed (the worker still answers its
# liveness probe). Far beyond any task's normal run: a report of a million participants takes
# seconds, a decision batch milliseconds, a notifications' batch at most 10,000 emails
# (notifications.services.PARTICIPANTS_PER_MESSAGE). And within RabbitMQ's consumer timeout (30
# minutes by default), past which the broker takes an unacknowledged message back and delivers it
# again while the first run goes on. The limit travels in each message, as the process that
# publishes it has it (Celery copies a registered task's options into the message): set it alike
# on every process, web and relay included.
CELERY_TASK_TIME_LIMIT = env.float("TASK_TIME_LIMIT_SECONDS", default=900.0)
CELERY_TASK_ACKS_ON_TIMEOUT = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Publisher confirms: without them RabbitMQ may drop a message silently under a resource alarm.
CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
# Publishing from a web request must fail fast when the broker is away; the outbox relay retries.
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("BROKER_CONNECTION_TIMEOUT", default=2.0)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SEND_TASK_EVENTS = False
# Celery beat: the periodic jobs (the `beat` process; one replica only, it is the clock). A tick
# missed while the broker is away is harmless: each job catches up on its next run, and a message
# older than its interval expires instead of piling up behind a stopped worker.
CELERY_BEAT_SCHEDULE = {
    "send-reminders": {"task": "events.send_reminders", "schedule": 60.0, "options": {"expires": 55}},
    "withdraw-retired-accounts": {
        "task": "events.withdraw_retired_accounts",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Embedded default (no broker, no beat process): `make run` sets this to run the schedule in a
# thread of the web process (config.beat).
IN_PROCESS_BEAT = env.bool("IN_PROCESS_BEAT", default=False)
# Enrolled participants are reminded this many hours before an event starts (events.reminders).
REMINDER_HOURS = env.int("REMINDER_HOURS", default=24)
# How long a health probe waits for the broker before calling it down.
BROKER_PROBE_TIMEOUT = env.float("BROKER_PROBE_TIMEOUT", default=2.0)
# After a failed publish from a web process, leave publishing to the relay for this long, so that
# requests do not each pay a connection timeout during a broker outage.
OUTBOX_INLINE_BACKOFF_SECONDS = env.float("OUTBOX_INLINE_BACKOFF_SECONDS", default=5.0)
OUTBOX_RELAY_INTERVAL_SECONDS = env.float("OUTBOX_RELAY_INTERVAL_SECONDS", default=1.0)

# Emails are tried this many times (with exponential backoff from the base delay) before the
# notification is marked failed.
NOTIFICATION_MAX_RETRIES = env.int("NOTIFICATION_MAX_RETRIES", default=5)
NOTIFICATION_RETRY_BASE_SECONDS = env.float("NOTIFICATION_RETRY_BASE_SECONDS", default=10.0)

# Reports larger than this are not attached to their email (mail servers refuse big messages; the
# default is half of Postfix's 10 MB limit, leaving room for base64): the email says where to get it.
# With a token, GET /metrics answers only a scraper that sends it (Authorization: Bearer …).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
if not DEBUG and METRICS_TOKEN.startswith("change-me"):
    raise ImproperlyConfigured("METRICS_TOKEN is still the placeholder of .env.example: generate a real one.")
# How long an Idempotency-Key's answer is kept for replay (config/idempotency.py).
IDEMPOTENCY_TTL_SECONDS = env.int("IDEMPOTENCY_TTL_SECONDS", default=24 * 60 * 60)
REPORT_ATTACHMENT_MAX_BYTES = env.int("REPORT_ATTACHMENT_MAX_BYTES", default=5 * 1024 * 1024)

# Stored report documents (and any other uploaded file) live here unless a storage is configured.
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))

# --- Email (simulated by default) -----------------------------------------------------------------
EMAIL_DIR = VAR_DIR / "mail"
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.filebased.EmailBackend")
    EMAIL_FILE_PATH = str(EMAIL_DIR)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="events@example.com")
# Seconds any one step of an SMTP exchange may wait (connect, each command, each write). Django's
# default is no limit: a mail server that accepts the connection and then goes quiet held a
# notification worker for good, and every notification after it.
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)

# --- Auth -----------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "SIGNING_KEY": env.str("JWT_SIGNING_KEY", default=SECRET_KEY),
    # simplejwt's access token, with a short path for decoding the platform's own tokens.
    "AUTH_TOKEN_CLASSES": ("participants.tokens.PlatformAccessToken",),
}

# Failed sign-ins allowed per account within the window before the account is throttled.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
LOGIN_FAILURE_WINDOW_SECONDS = env.int("LOGIN_FAILURE_WINDOW_SECONDS", default=15 * 60)

# --- REST framework -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.PageNumberPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "config.openapi.PlatformAutoSchema",
    "EXCEPTION_HANDLER": "config.exceptions.problem_exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        # Per client address on the sign-up and sign-in routes: far above an office signing up
        # together behind one NAT address, low enough to stop a scripted flood.
        "auth": env.str("AUTH_THROTTLE_RATE", default="1200/min"),
    },
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # The API's one version is in its paths (/api/v1/). The schema view still reads `?version=`
    # and writes it into its answer's Content-Disposition header; any value but this one is
    # ignored (a newline or a NUL in it made that header invalid: a 500).
    "ALLOWED_VERSIONS": ["v1"],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Event platform API",
    "DESCRIPTION": "Corporate events: accounts, events, enrollment, notifications and reports.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # `<id:...>` (config/converters.py) is an integer, as `<int:...>` is.
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer"}},
    # No badge fetched from validator.swagger.io: the docs work on an offline network.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None, "persistAuthorization": True},
    # Tags, summaries, every 4xx and exact request formats (config/openapi.py).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "config.openapi.postprocess"],
}

# --- Internationalisation -------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
# Event dates and times are wall-clock times in this zone (the company's office time).
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # filled by collectstatic; WhiteNoise warns on every start without it
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Tests and `runserver` serve static files from the apps without collectstatic.
WHITENOISE_USE_FINDERS = DEBUG or "pytest" in sys.modules

# --- Security (production) ------------------------------------------------------------------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Probes and scrapers talk plain HTTP inside the cluster.
    SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 30)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
# HSTS preloading is a one-way decision of the domain's owner, made at the proxy, not by the app.
SILENCED_SYSTEM_CHECKS = ["security.W021"]

# --- Logging: one JSON line per record, never credentials -----------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "config.logging.RequestIdFilter"},
        "client_mistake": {"()": "config.logging.ClientMistakeFilter"},
    },
    "formatters": {"json": {"()": "config.logging.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's records through the root's JSON handler only: Django's own console handler
        # (DEBUG's) wrote each of them a second time as plain text, and it mails no one (no ADMINS).
        "django": {"level": "INFO"},
        # The request line of config.middleware replaces Django's own request/server logs.
        "django.request": {"level": "CRITICAL", "propagate": True},
        "django.server": {"level": "WARNING", "propagate": True},
        "django.security.DisallowedHost": {"filters": ["client_mistake"], "propagate": True},
    },
}
