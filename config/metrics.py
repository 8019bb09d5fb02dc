"""Prometheus metrics: the `/metrics` view, gauges read from the database, Celery task metrics.

Counters live beside the code they count (events/metrics.py, notifications/metrics.py, …). Several
processes per role (gunicorn workers, prefork pool children) each count on their own; with
PROMETHEUS_MULTIPROC_DIR set, prometheus_client writes their values to files there and a scrape
adds them up (the directory must be emptied when the role starts: docker/compose.yaml does).
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterator
from typing import Any

from celery import signals
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from config.problems import problem_response  # noqa: E402

TASK_DURATION = Histogram(
    "celery_task_duration_seconds", "Run time of Celery tasks.", ["queue", "task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)  # fmt: skip
TASK_FAILURES = Counter("celery_task_failures", "Celery tasks that raised.", ["queue", "task"])

# --- HTTP ---------------------------------------------------------------------------------------------
# The request metrics the dashboard reads, under django-prometheus's names, labels and buckets (its
# middleware used to export them with a dozen more per request that nobody read). Recorded by
# config.middleware.RequestIdMiddleware, once per request, over the whole middleware stack.
HTTP_LATENCY_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 25.0, 50.0, 75.0, float("inf"),
)  # fmt: skip
HTTP_REQUESTS = Counter(
    "django_http_requests_total_by_view_transport_method",
    "Count of requests by view, transport, method.",
    ["view", "transport", "method"],
)
HTTP_RESPONSES = Counter(
    "django_http_responses_total_by_status_view_method",
    "Count of responses by status, view, method.",
    ["status", "view", "method"],
)
HTTP_LATENCY = Histogram(
    "django_http_requests_latency_seconds_by_view_method",
    "Histogram of request processing time labelled by view.",
    ["view", "method"],
    buckets=HTTP_LATENCY_BUCKETS,
)
UNNAMED_VIEW = "<unnamed view>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH"})

# The labelled children, by their labels: `labels()` takes a lock and builds a key every time, this
# is one dictionary lookup. The label values are bounded (route names, methods, statuses), and so is
# this dictionary.
_http_children: dict[tuple[str, str, str, int], tuple[Any, Any, Any]] = {}


def observe_http_request(view: str | None, secure: bool, method: str, status: int, seconds: float) -> None:
    """Counts one answered request in the three HTTP metrics."""
    transport = "https" if secure else "http"
    # A client chooses the method: anything unknown is one label (and one key here), as before.
    if method not in _METHODS:
        method = "<invalid method>"
    key = (view or UNNAMED_VIEW, transport, method, status)
    children = _http_children.get(key)
    if children is None:
        view_label = key[0]
        children = (
            HTTP_REQUESTS.labels(view_label, transport, method),
            HTTP_RESPONSES.labels(str(status), view_label, method),
            HTTP_LATENCY.labels(view_label, method),
        )
        _http_children[key] = children
    requests, responses, latency = children
    requests.inc()
    responses.inc()
    latency.observe(seconds)


# Upcoming events whose seats are exported, soonest first: the gauge's label set stays bounded.
SEATS_EVENTS_LIMIT = 200


class DatabaseGauges(Collector):
    """Gauges read from the database at scrape time: one truth, whichever process serves it."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from config.outbox.models import OutboxMessage
        from events.domain import Seats
        from events.models import Event

        seats = GaugeMetricFamily(
            # Ids only: titles are free text (cardinality, and what a scrape may see).
            "events_seats_left",
            "Seats left per upcoming event.",
            labels=["event_id"],
        )
        upcoming = Event.objects.filter(date__gte=timezone.localdate()).order_by("date", "time", "id")
        for event_id, capacity, enrolled in upcoming.values_list("id", "capacity", "enrolled_count")[
            :SEATS_EVENTS_LIMIT
        ]:
            seats.add_metric([str(event_id)], Seats(capacity=capacity, enrolled=enrolled).left)
        yield seats

        pending = OutboxMessage.objects.filter(published_at__isnull=True)
        oldest = pending.order_by("id").values_list("created_at", flat=True).first()
        yield GaugeMetricFamily(
            "outbox_pending_messages", "Outbox messages not yet published.", pending.count()
        )
        yield GaugeMetricFamily(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest unpublished outbox message (0 when none).",
            (timezone.now() - oldest).total_seconds() if oldest else 0.0,
        )


def _process_registry() -> CollectorRegistry:
    """The counters of every process of this role (multiprocess mode) or of this process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


_database_registry = CollectorRegistry()
_database_registry.register(DatabaseGauges())


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text. With METRICS_TOKEN set, only a scraper sending `Authorization: Bearer
    <token>` gets it (401 otherwise), as Prometheus deployments usually protect the endpoint."""
    token = settings.METRICS_TOKEN
    if token:
        sent = request.META.get("HTTP_AUTHORIZATION", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return problem_response(
                401,
                "not_authenticated",
                "Metrics need the scraper's token.",
                headers={"WWW-Authenticate": "Bearer"},
            )
    body = generate_latest(_process_registry()) + generate_latest(_database_registry)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


# --- Celery ---------------------------------------------------------------------------------------

_task_started: dict[str, float] = {}


def _queue_of(task: Any) -> str:
    delivery = getattr(task.request, "delivery_info", None) or {}
    return str(delivery.get("routing_key") or task.name.split(".", 1)[0])


@signals.task_prerun.connect
def _task_prerun(task_id: str, task: Any, **kwargs: Any) -> None:
    _task_started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_postrun(task_id: str, task: Any, **kwargs: Any) -> None:
    started = _task_started.pop(task_id, None)
    if started is not None:
        TASK_DURATION.labels(_queue_of(task), task.name).observe(time.perf_counter() - started)


@signals.task_failure.connect
def _task_failure(task_id: str, exception: BaseException, sender: Any = None, **kwargs: Any) -> None:
    if sender is not None:
        TASK_FAILURES.labels(_queue_of(sender), sender.name).inc()


@signals.worker_ready.connect
def _serve_worker_metrics(**kwargs: Any) -> None:
    """A worker's own metrics endpoint, on METRICS_PORT (the web process serves /metrics)."""
    port = os.environ.get("METRICS_PORT")
    if port:
        start_http_server(int(port), registry=_process_registry())
