"""One line saying which adapters this configuration uses (`make run` prints it at start).

python -m config.backends
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit


def describe() -> str:
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        database = f"SQLite ({db['NAME']})"
    else:
        database = f"PostgreSQL ({db.get('HOST') or 'local'}:{db.get('PORT') or 5432}/{db['NAME']})"
    cache = settings.CACHES["default"]["BACKEND"]
    if "redis" in cache.lower():
        cache_text = "Redis"
    elif "filebased" in cache.lower():
        cache_text = f"files under {settings.CACHES['default']['LOCATION']} (this machine's processes)"
    else:
        cache_text = "local memory (this process only)"
    if settings.CELERY_TASK_ALWAYS_EAGER:
        tasks = "in-process (no broker)"
    else:
        broker = urlsplit(settings.CELERY_BROKER_URL)
        tasks = f"RabbitMQ ({broker.hostname}:{broker.port or 5672})"  # never the credentials
    if settings.EMAIL_BACKEND.endswith("filebased.EmailBackend"):
        email = f"files under {settings.EMAIL_FILE_PATH}"
    elif settings.EMAIL_BACKEND.endswith("smtp.EmailBackend"):
        email = f"SMTP ({settings.EMAIL_HOST}:{settings.EMAIL_PORT})"
    else:
        email = settings.EMAIL_BACKEND.rsplit(".", 1)[-1]
    return f"Backends: database {database} · cache {cache_text} · tasks {tasks} · e-mail {email}"


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    print(describe())
