"""The settings module picks its adapters from the environment (checked in fresh processes)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "db": settings.DATABASES["default"]["ENGINE"],
    "db_options": settings.DATABASES["default"].get("OPTIONS", {}),
    "cache": settings.CACHES["default"]["BACKEND"],
    "debug": settings.DEBUG,
    "email": settings.EMAIL_BACKEND,
    "email_path": getattr(settings, "EMAIL_FILE_PATH", None),
    "email_timeout": settings.EMAIL_TIMEOUT,
    "task_time_limit": settings.CELERY_TASK_TIME_LIMIT,
    "task_acks_on_timeout": settings.CELERY_TASK_ACKS_ON_TIMEOUT,
    "broker": settings.CELERY_BROKER_URL,
}))
"""


def run(code_or_args, env, tmp_path):
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "CELERY_BROKER_URL",
            "EMAIL_URL",
            "SECRET_KEY",
            "DEBUG",
            "DB_POOL",  # set in this process once an ASGI test has imported config.asgi
        }
    }
    clean.update({"DJANGO_SETTINGS_MODULE": "config.settings", "VAR_DIR": str(tmp_path), **env})
    args = (
        [sys.executable, "-c", code_or_args]
        if isinstance(code_or_args, str)
        else [sys.executable, *code_or_args]
    )
    return subprocess.run(args, cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120, check=False)


def probe(env, tmp_path):
    result = run(PROBE, env, tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_embedded_default_with_nothing_set(tmp_path):
    config = probe({}, tmp_path)
    assert config["db"] == "django.db.backends.sqlite3"
    assert config["db_options"]["transaction_mode"] == "IMMEDIATE"
    assert config["cache"].endswith("LocMemCache")
    assert config["debug"] is True
    assert config["email"] == "django.core.mail.backends.filebased.EmailBackend"
    assert config["email_path"] == str(tmp_path / "mail")
    assert config["broker"] == ""


def test_services_by_environment(tmp_path):
    config = probe(
        {
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/events",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
            "EMAIL_URL": "smtp://mail.example.com:25",
            "SECRET_KEY": "x" * 60,
        },
        tmp_path,
    )
    assert config["db"] == "django.db.backends.postgresql"
    assert config["cache"] == "django_redis.cache.RedisCache"
    assert config["email"] == "django.core.mail.backends.smtp.EmailBackend"
    assert config["email_timeout"] == 10.0  # Django's own default waits for a quiet server for ever
    # A hung task is killed and its message queued again (Celery's defaults: never, and acknowledged).
    assert (config["task_time_limit"], config["task_acks_on_timeout"]) == (900.0, False)
    assert config["broker"].startswith("amqp://")
    assert config["debug"] is False
    configured = probe({"EMAIL_URL": "smtp://mail.example.com:25", "EMAIL_TIMEOUT": "2.5"}, tmp_path)
    assert configured["email_timeout"] == 2.5


def test_a_database_that_does_not_answer_fails_the_connection_within_its_timeout(tmp_path):
    """psycopg's own default waits 130 s, beyond gunicorn's 30 s: the request died without its 503."""
    quiet = socket.create_server(("127.0.0.1", 0))  # the kernel completes the handshake; nobody answers
    connect = """
import time, django
django.setup()
from django.db import connection
started = time.monotonic()
try:
    connection.ensure_connection()
except Exception as exc:
    print(type(exc).__name__, time.monotonic() - started)
"""
    try:
        url = f"postgres://postgres@127.0.0.1:{quiet.getsockname()[1]}/events"
        result = run(connect, {"DATABASE_URL": url, "DB_CONNECT_TIMEOUT": "2"}, tmp_path)
    finally:
        quiet.close()
    error, seconds = result.stdout.split()[-2:]
    assert error == "OperationalError"  # answered as a 503 by the API's error handler
    assert float(seconds) < 10
    assert probe({"DATABASE_URL": url}, tmp_path)["db_options"]["connect_timeout"] == 5
    with_query = probe({"DATABASE_URL": url + "?connect_timeout=3"}, tmp_path)["db_options"]
    assert with_query["connect_timeout"] in (3, "3")  # the URL's own wins


def test_debug_off_requires_a_secret_key(tmp_path):
    result = run(PROBE, {"DEBUG": "false"}, tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_deploy_check_is_clean_in_production(tmp_path):
    env = {"SECRET_KEY": "k3y-" + "abcdefghij" * 6, "ALLOWED_HOSTS": "events.example.com"}
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_development_key_warns_loudly(tmp_path):
    result = run(["manage.py", "check"], {}, tmp_path)
    assert "SECRET_KEY is not set" in result.stderr


@pytest.mark.parametrize("module", ["config.wsgi", "config.asgi"])
def test_server_entry_points_import(module, tmp_path):
    result = run(f"import {module}; print({module}.application)", {"SECRET_KEY": "y" * 60}, tmp_path)
    assert result.returncode == 0, result.stderr


def test_the_example_placeholder_key_is_refused(tmp_path):
    result = run(
        PROBE, {"SECRET_KEY": "change-me-to-a-random-string-of-at-least-50-characters-0000000000"}, tmp_path
    )
    assert result.returncode != 0
    assert "placeholder" in result.stderr


def test_the_example_placeholder_metrics_token_is_refused(tmp_path):
    env = {"SECRET_KEY": "y" * 60, "METRICS_TOKEN": "change-me-to-a-long-random-scrape-token"}
    result = run(PROBE, env, tmp_path)
    assert result.returncode != 0
    assert "METRICS_TOKEN is still the placeholder" in result.stderr
    assert run(PROBE, dict(env, METRICS_TOKEN="a-real-random-token-" + "x" * 20), tmp_path).returncode == 0


def test_the_development_key_is_random_per_checkout_and_kept(tmp_path):
    from django.conf import settings

    key_file = ROOT / "var" / "dev-secret-key"
    key = run(
        "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)",
        {},
        tmp_path,
    )
    assert key.returncode == 0, key.stderr
    probe_key = key.stdout.strip().splitlines()[-1]
    assert probe_key == key_file.read_text().strip() == settings.SECRET_KEY  # the same in every process
    assert len(probe_key) >= 50 and "dev-only" not in probe_key
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert "var/" in (ROOT / ".gitignore").read_text().split()  # never committed


def test_development_answers_local_host_names_only(client):
    assert client.get("/health/live", HTTP_HOST="localhost:8000").status_code == 200
    refused = client.get("/api/v1/events/?page=1", HTTP_HOST="evil.example.com")
    assert refused.status_code == 400
    assert b"evil.example.com" not in refused.content


def test_one_line_names_the_active_backends(tmp_path):
    embedded = run(["-m", "config.backends"], {}, tmp_path)
    assert embedded.returncode == 0, embedded.stderr
    line = embedded.stdout.strip()
    assert line.startswith("Backends: database SQLite")
    assert "cache local memory" in line and "tasks in-process" in line and "e-mail files under" in line
    services = run(
        ["-m", "config.backends"],
        {
            "DATABASE_URL": "postgres://postgres@db.example.com:5432/events",
            "REDIS_URL": "redis://cache.example.com:6379/0",
            "CELERY_BROKER_URL": "amqp://user:s3cret@mq.example.com:5672//",
            "EMAIL_URL": "smtp+tls://mailer:pw@mail.example.com:587",
        },
        tmp_path,
    )
    line = services.stdout.strip()
    assert "PostgreSQL (db.example.com:5432/events)" in line and "cache Redis" in line
    assert "RabbitMQ (mq.example.com:5672)" in line and "SMTP (mail.example.com:587)" in line
    assert "s3cret" not in line and "pw@" not in line


def test_the_development_key_warning_is_shown_once_per_start(tmp_path):
    assert "SECRET_KEY is not set" in run(["manage.py", "check"], {}, tmp_path).stderr
    assert (
        "SECRET_KEY is not set" not in run(["manage.py", "check"], {"DEV_KEY_WARNED": "1"}, tmp_path).stderr
    )
    makefile = (ROOT / "Makefile").read_text()
    run_target = makefile[makefile.index("\nrun:") : makefile.index("\ntest:")]
    steps = [line.strip() for line in run_target.splitlines() if line.startswith("\t")]
    assert "DEV_KEY_WARNED" not in steps[0]  # the first step warns
    assert all("$(QUIET)" in step for step in steps[1:] if "manage.py" in step or "exec" in step)


def test_the_readme_names_every_variable_the_settings_read():
    import re

    code = "\n".join(p.read_text() for p in (ROOT / "config").glob("*.py"))
    read = set(re.findall(r"env\.\w+\(\s*\"([A-Z_]+)\"", code))
    read |= set(re.findall(r"os\.environ(?:\.get)?\(\s*\"([A-Z_]+)\"", code)) - {"DJANGO_SETTINGS_MODULE"}
    readme = (ROOT / "README.md").read_text()
    missing = sorted(name for name in read if f"`{name}`" not in readme)
    assert not missing, f"README.md does not name: {missing}"


def test_quorum_queues_for_clustered_brokers(tmp_path):
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print([(q.name, q.exchange.type, q.queue_arguments) for q in settings.CELERY_TASK_QUEUES])"
    )
    classic = run(code, {}, tmp_path)
    assert "('admissions', 'direct', None)" in classic.stdout, classic.stderr
    quorum = run(code, {"RABBITMQ_QUORUM_QUEUES": "true"}, tmp_path)
    for name in ("notifications", "reports", "admissions"):
        assert f"('{name}', 'topic', {{'x-queue-type': 'quorum'}})" in quorum.stdout, quorum.stderr


def test_a_broker_without_redis_gives_its_processes_one_cache(tmp_path):
    """The web server, the admission consumer and the workers (make run's Procfile) each kept a
    cache in their own memory: the consumer's decisions never reached the web server's cached
    seats. Without Redis they share one in files."""
    env = {"CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//"}
    assert probe(env, tmp_path)["cache"].endswith("FileBasedCache")
    write = "import django; django.setup(); from django.core.cache import cache; cache.set('seats', 7)"
    read = "import django; django.setup(); from django.core.cache import cache; print(cache.get('seats'))"
    assert run(write, env, tmp_path).returncode == 0
    assert run(read, env, tmp_path).stdout.strip() == "7"  # another process sees it
    assert "files under" in run(["-m", "config.backends"], env, tmp_path).stdout
