"""Liveness and readiness probes: live says the process answers, ready that its backends do."""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET
from kombu import Connection

from config.problems import problem_response

log = logging.getLogger(__name__)


@require_GET
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _cache() -> None:
    key, value = "health:probe", uuid.uuid4().hex
    cache.set(key, value, timeout=10)
    if cache.get(key) != value:
        raise RuntimeError("the cache did not return what was written")


def _broker() -> None:
    if not settings.CELERY_BROKER_URL:
        return  # embedded default: tasks run in-process, there is no broker to reach
    timeout = settings.BROKER_PROBE_TIMEOUT
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=timeout) as conn:
        conn.ensure_connection(max_retries=1, timeout=timeout)


CHECKS = {"database": _database, "cache": _cache, "broker": _broker}


@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the reason goes to the log only
            log.warning("readiness check %s failed: %s", name, type(exc).__name__)
            results[name] = "unavailable"
    failed = [name for name, result in results.items() if result != "ok"]
    if failed:
        return problem_response(
            503,
            "service_unavailable",
            f"Not ready: {', '.join(failed)} not answering.",
            failed=failed,
            checks=results,
        )
    return JsonResponse({"status": "ok", "checks": results})
