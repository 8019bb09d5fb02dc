"""The deployment files agree with each other and with the platform (no Docker engine, no database).

docker/compose.yaml, docker/prometheus.yml, docker/nginx.conf, the Grafana provisioning and
dashboard, docker/Dockerfile and .env.example are read as files and cross-checked: a scrape target
that names no service, an application role that lost its env file, or a dashboard metric that is
not in DASHBOARD_METRICS fails here. Their schemas are checked by docker/check.sh.
"""

from __future__ import annotations

import json
import re
import runpy
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"

# Every metric name the Grafana dashboard queries (series names, so histograms as *_bucket).
# The application's metrics test compares this set with what the platform exports.
DASHBOARD_METRICS = frozenset(
    {
        "django_http_requests_total_by_view_transport_method_total",
        "django_http_responses_total_by_status_view_method_total",
        "django_http_requests_latency_seconds_by_view_method_bucket",
        "events_enrollments_total",
        "events_cancellations_total",
        "events_enrollments_rejected_total",
        "events_seats_left",
        "outbox_pending_messages",
        "outbox_oldest_pending_age_seconds",
        "notifications_sent_total",
        "notifications_failed_total",
        "reports_build_duration_seconds_bucket",
        "celery_task_duration_seconds_bucket",
        "celery_task_failures_total",
    }
)
METRIC_NAME = re.compile(r"\b[a-z_]+(?:_total|_seconds|_bucket|_messages|_left)\b")

# Roles run from the one application image, and the services around them.
APP_ROLES = {
    "migrate",
    "web",
    "ws",
    "worker-notifications",
    "worker-reports",
    "worker-admissions",
    "relay",
    "beat",
}
INFRASTRUCTURE = {"postgres", "redis", "rabbitmq", "nginx", "prometheus", "grafana"}
WORKERS = {
    "worker-notifications": "notifications",
    "worker-reports": "reports",
    "worker-admissions": "admissions",
}
MEDIA_ROOT = "/app/var/media"
# Services that read or write report documents: web serves them, worker-reports builds them,
# worker-notifications attaches them to the report emails.
MEDIA_USERS = {"web", "worker-reports", "worker-notifications"}


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def services() -> dict[str, Any]:
    return compose()["services"]


def app_services() -> dict[str, Any]:
    """Services that run the application image (built from docker/Dockerfile)."""
    image = services()["web"]["image"]
    return {
        name: service
        for name, service in services().items()
        if service.get("image") == image or "build" in service
    }


def command_line(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def env_files(service: dict[str, Any]) -> list[str]:
    value = service.get("env_file", [])
    entries = [value] if isinstance(value, (str, dict)) else value
    return [entry["path"] if isinstance(entry, dict) else entry for entry in entries]


def environment(service: dict[str, Any]) -> dict[str, str]:
    value = service.get("environment", {})
    if isinstance(value, list):
        value = dict(item.split("=", 1) for item in value)
    return {key: str(val) for key, val in value.items()}


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Target path -> source of each short-syntax volume."""
    result = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        result[target] = source
    return result


def host_port(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host, int(port)


# --- Compose -----------------------------------------------------------------------------------------


def test_compose_is_a_compose_specification_file():
    assert "version" not in compose()
    assert set(services()) >= APP_ROLES | INFRASTRUCTURE


def test_every_role_runs_from_the_application_image_with_the_env_file():
    apps = app_services()
    assert set(apps) == APP_ROLES
    for name, service in apps.items():
        assert env_files(service) == [".env"], name
        build = service["build"]
        assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKER / "Dockerfile"
    # The secrets of the backing services come from the same file.
    for name in ("postgres", "rabbitmq", "grafana"):
        assert env_files(services()[name]) == [".env"], name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("web", "gunicorn config.wsgi --bind 0.0.0.0:8000 --no-control-socket -c config/gunicorn.conf.py"),
        ("ws", "uvicorn config.asgi:application --host 0.0.0.0 --port 8001 --timeout-graceful-shutdown 10"),
        (
            "worker-notifications",
            "celery -A config worker -Q notifications -n notifications@%h --concurrency 2",
        ),
        ("worker-reports", "celery -A config worker -Q reports -n reports@%h --concurrency 1"),
        ("worker-admissions", "celery -A config worker -Q admissions -n admissions@%h --concurrency 1"),
        ("relay", "python manage.py relay_outbox"),
        ("beat", "celery -A config beat --schedule /tmp/celerybeat-schedule"),
        ("migrate", "python manage.py migrate --noinput && python manage.py ensure_admin"),
    ],
)
def test_each_role_has_its_command(name, expected):
    assert expected in command_line(services()[name])


def test_start_order_waits_for_healthy_services_and_the_migration():
    svc = services()
    for name in APP_ROLES - {"migrate"}:
        depends = svc[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
    assert svc["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert svc["migrate"]["restart"] == "no"
    for name in ("web", *WORKERS):
        assert svc[name]["depends_on"]["rabbitmq"]["condition"] == "service_healthy", name
        assert svc[name]["depends_on"]["redis"]["condition"] == "service_healthy", name
    assert svc["relay"]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert svc["beat"]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert svc["nginx"]["depends_on"]["web"]["condition"] == "service_healthy"


def test_healthchecks():
    svc = services()

    def probe(name: str) -> str:
        test = svc[name]["healthcheck"]["test"]
        return " ".join(test) if isinstance(test, list) else test

    assert "pg_isready" in probe("postgres")
    assert "redis-cli ping" in probe("redis")
    assert "rabbitmq-diagnostics -q ping" in probe("rabbitmq")
    assert "http://127.0.0.1:8000/health/live" in probe("web")
    # The image's own HEALTHCHECK probes port 8000: every other role replaces or disables it.
    for name in APP_ROLES - {"web"}:
        check = svc[name]["healthcheck"]
        assert check.get("disable") is True or ":8000" not in probe(name), name


def test_named_volumes_and_the_shared_media():
    svc = services()
    assert set(compose()["volumes"]) >= {"postgres-data", "rabbitmq-data", "grafana-data", "media"}
    assert mounts(svc["postgres"])["/var/lib/postgresql/data"] == "postgres-data"
    assert mounts(svc["rabbitmq"])["/var/lib/rabbitmq"] == "rabbitmq-data"
    assert mounts(svc["grafana"])["/var/lib/grafana"] == "grafana-data"
    for name in MEDIA_USERS:
        assert mounts(svc[name])[MEDIA_ROOT] == "media", name
        assert environment(svc[name])["MEDIA_ROOT"] == MEDIA_ROOT, name


def test_published_ports():
    svc = services()
    assert "8080:80" in svc["nginx"]["ports"]
    assert any(port.endswith("15672:15672") for port in svc["rabbitmq"]["ports"])


def test_metrics_settings_of_web_and_workers():
    svc = services()
    # Several processes per container add their metrics up in a directory that starts empty.
    for name in ("web", *WORKERS):
        assert environment(svc[name])["PROMETHEUS_MULTIPROC_DIR"] in svc[name]["tmpfs"], name
    for name in WORKERS:
        assert environment(svc[name])["METRICS_PORT"] == "9100", name
    # gunicorn's settings file removes a dead worker's gauges from the shared directory.
    assert "-c config/gunicorn.conf.py" in command_line(svc["web"])
    assert (ROOT / "config" / "gunicorn.conf.py").is_file()


def test_the_web_workers_are_counted_in_one_place(monkeypatch):
    """The settings file counts the workers (WEB_WORKERS, else its default): a command that passed
    a count of its own would override it for that deployment alone."""
    assert "--workers" not in command_line(services()["web"])
    monkeypatch.delenv("WEB_WORKERS", raising=False)
    assert runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))["workers"] == 3
    monkeypatch.setenv("WEB_WORKERS", "5")
    assert runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))["workers"] == 5


# --- Prometheus --------------------------------------------------------------------------------------


def scrape_targets() -> dict[str, list[str]]:
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    return {
        job["job_name"]: [target for static in job["static_configs"] for target in static["targets"]]
        for job in config["scrape_configs"]
    }


def test_every_scrape_target_is_a_compose_service():
    targets = [target for job in scrape_targets().values() for target in job]
    assert targets
    for target in targets:
        host, _ = host_port(target)
        assert host in services(), target


def test_web_and_each_worker_are_scraped_on_their_metrics_port():
    targets = {target for job in scrape_targets().values() for target in job}
    assert "web:8000" in targets
    assert "ws:8001" in targets
    for name in (*WORKERS, "relay"):
        port = environment(services()[name])["METRICS_PORT"]
        assert f"{name}:{port}" in targets
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    web_job = next(job for job in config["scrape_configs"] if job["job_name"] == "web")
    assert web_job.get("metrics_path", "/metrics") == "/metrics"


def test_allowed_hosts_admit_the_scraper_and_the_healthcheck():
    hosts = env_example()["ALLOWED_HOSTS"].split(",")
    assert "web" in hosts  # Prometheus sends Host: web:8000
    assert "ws" in hosts  # and Host: ws:8001
    assert "127.0.0.1" in hosts  # the web container's healthcheck


# --- Grafana -----------------------------------------------------------------------------------------


@cache
def dashboard() -> dict[str, Any]:
    return json.loads((DOCKER / "grafana" / "dashboards" / "platform.json").read_text())


def panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def exprs() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def test_grafana_provisioning_points_at_prometheus_and_the_dashboards():
    provisioning = DOCKER / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (datasource,) = datasources["datasources"]
    assert datasource["type"] == "prometheus"
    assert urlsplit(datasource["url"]).hostname in services()
    providers = yaml.safe_load((provisioning / "dashboards" / "dashboards.yml").read_text())
    (provider,) = providers["providers"]
    grafana_mounts = mounts(services()["grafana"])
    assert grafana_mounts[provider["options"]["path"]] == "./grafana/dashboards"
    assert grafana_mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    for panel in panels():
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]


def test_dashboard_panels_have_queries():
    titles = {panel["title"] for panel in panels()}
    assert len(titles) == len(panels())
    for panel in panels():
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
    ids = [panel["id"] for panel in dashboard()["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_metrics_are_exactly_the_documented_set():
    used = {name for expr in exprs() for name in METRIC_NAME.findall(expr)}
    assert used == DASHBOARD_METRICS


def test_dashboard_queries_break_down_by_the_documented_labels():
    text = "\n".join(exprs())
    assert 'status=~"5.."' in text
    assert "by (le, view)" in text
    assert "by (reason)" in text
    assert "by (event_id)" in text and "title" not in text  # ids only in labels
    assert "by (le, queue)" in text
    assert "by (queue, task)" in text


# --- nginx -------------------------------------------------------------------------------------------


@cache
def nginx_conf() -> str:
    return re.sub(r"#[^\n]*", "", (DOCKER / "nginx.conf").read_text())


def nginx_block(header: str) -> str:
    """The body of the first block whose header matches the regex, braces balanced."""
    text = nginx_conf()
    match = re.search(header + r"\s*\{", text)
    assert match, header
    depth, start = 1, match.end()
    for index in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[start:index]
    raise AssertionError(f"unbalanced block: {header}")


def directives(body: str, name: str) -> list[str]:
    pattern = r"(?:^|(?<=[;{}]))\s*" + re.escape(name) + r"\s+([^;{}]+);"
    return [value.strip() for value in re.findall(pattern, body, re.MULTILINE)]


def proxied_to(location: str) -> set[str]:
    """host:port the location's proxy_pass reaches, through `set` variables and upstream blocks."""
    (target,) = directives(nginx_block(rf"location\s+{re.escape(location)}"), "proxy_pass")
    if target.startswith("$"):
        values = [v.split(None, 1)[1] for v in directives(nginx_conf(), "set") if v.split()[0] == target]
        (target,) = values
    address = urlsplit(target).netloc
    if ":" not in address:  # an upstream block
        return {server.split()[0] for server in directives(nginx_block(rf"upstream\s+{address}"), "server")}
    return {address}


def test_nginx_routes_websockets_to_ws_with_the_upgrade_headers():
    assert proxied_to("/ws/") == {"ws:8001"}
    body = nginx_block(r"location\s+/ws/")
    headers = {
        value.split(None, 1)[0].lower(): value.split(None, 1)[1]
        for value in directives(body, "proxy_set_header")
    }
    assert headers["upgrade"] == "$http_upgrade"
    connection = headers["connection"]
    if connection.startswith("$"):  # a map from $http_upgrade: "upgrade" when the client asks
        mapping = nginx_block(rf"map\s+\$http_upgrade\s+{re.escape(connection)}")
        assert re.search(r"default\s+upgrade\s*;", mapping)
    else:
        assert connection.strip('"').lower() == "upgrade"
    assert directives(body, "proxy_http_version") == ["1.1"]
    for service in {address.split(":")[0] for address in proxied_to("/ws/") | proxied_to("/")}:
        assert service in services()


def test_nginx_sends_everything_else_to_web():
    assert proxied_to("/") == {"web:8000"}


# --- Dockerfile and .env.example ---------------------------------------------------------------------


def test_dockerfile_runs_as_non_root_and_probes_liveness():
    text = (DOCKER / "Dockerfile").read_text()
    froms = re.findall(r"(?m)^FROM\s+(\S+)", text)
    assert len(froms) >= 2 and all(image.startswith("python:3.11-slim") for image in froms)
    (user,) = re.findall(r"(?m)^USER\s+(\S+)", text)
    assert user.split(":")[0] not in {"root", "0"}
    assert "http://127.0.0.1:8000/health/live" in text
    assert re.search(r"(?m)^EXPOSE\s+8000\s+8001\s*$", text)
    assert "collectstatic" in text


@cache
def env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def test_env_example_documents_every_variable_with_placeholders():
    env = env_example()
    required = {
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "SECURE_SSL_REDIRECT",
        "DATABASE_URL",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "POSTGRES_DB",
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
        "RABBITMQ_DEFAULT_USER",
        "RABBITMQ_DEFAULT_PASS",
        "GF_SECURITY_ADMIN_PASSWORD",
        "ADMIN_EMAIL",
        "ADMIN_PASSWORD",
    }
    assert required <= set(env)
    for key in (
        "SECRET_KEY",
        "POSTGRES_PASSWORD",
        "RABBITMQ_DEFAULT_PASS",
        "GF_SECURITY_ADMIN_PASSWORD",
        "ADMIN_PASSWORD",
        "METRICS_TOKEN",
    ):
        assert "change-me" in env[key], key
    assert env["SECURE_SSL_REDIRECT"] == "false"
    # Per-service variables are set by compose, not shared by every service through the env file.
    assert "PROMETHEUS_MULTIPROC_DIR" not in env
    assert "METRICS_PORT" not in env


def test_env_example_urls_agree_with_the_services_credentials():
    env = env_example()
    database = urlsplit(env["DATABASE_URL"])
    assert (database.hostname, database.port) == ("postgres", 5432)
    assert (database.username, database.password) == (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"])
    assert database.path == "/" + env["POSTGRES_DB"]
    broker = urlsplit(env["CELERY_BROKER_URL"])
    assert (broker.scheme, broker.hostname, broker.port) == ("amqp", "rabbitmq", 5672)
    assert (broker.username, broker.password) == (env["RABBITMQ_DEFAULT_USER"], env["RABBITMQ_DEFAULT_PASS"])
    assert urlsplit(env["REDIS_URL"]).hostname == "redis"
    for url in (database, broker, urlsplit(env["REDIS_URL"])):
        assert url.hostname in services()


def test_prometheus_scrapes_web_and_ws_with_the_metrics_token():
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name in ("web", "ws"):
        assert jobs[name]["authorization"] == {
            "type": "Bearer",
            "credentials_file": "/run/secrets/metrics_token",
        }
    assert compose()["secrets"]["metrics_token"] == {"environment": "METRICS_TOKEN"}
    assert "metrics_token" in services()["prometheus"]["secrets"]


def test_make_run_starts_beat_with_a_broker_and_runs_its_schedule_in_process_without():
    procfile = dict(
        line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if ": " in line
    )
    assert procfile["beat"].split()[1:4] == ["-A", "config", "beat"]
    makefile = (ROOT / "Makefile").read_text()
    embedded = next(line for line in makefile.splitlines() if "uvicorn config.asgi:application" in line)
    assert "IN_PROCESS_BEAT=1" in embedded
