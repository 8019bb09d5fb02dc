"""The request log line and the HTTP metrics of config.middleware: what they record, and never."""

from __future__ import annotations

import json
import logging

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import ResolverMatch

from config import logging as log_config
from config import metrics
from config.middleware import RequestIdMiddleware


def record(**fields) -> logging.LogRecord:
    rec = logging.LogRecord("http.request", logging.INFO, __file__, 1, "request", (), None)
    rec.fields = fields  # type: ignore[attr-defined]
    rec.request_id = "req-1"  # type: ignore[attr-defined]
    return rec


def test_a_line_is_one_json_object_with_the_fields():
    line = log_config.JsonFormatter().format(record(method="GET", path="/x", status=200, user_id=None))
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "INFO" and data["logger"] == "http.request" and data["msg"] == "request"
    assert data["request_id"] == "req-1"
    assert (data["method"], data["path"], data["status"], data["user_id"]) == ("GET", "/x", 200, None)


@pytest.mark.parametrize("dumps", [log_config._json_dumps_stdlib, log_config._json_dumps_orjson])
def test_both_encoders_write_the_same_json(dumps):
    if dumps is log_config._json_dumps_orjson and log_config.orjson is None:
        pytest.skip("orjson is not installed")
    import datetime as dt
    import decimal

    line = {
        "a": 1,
        "b": 'é\n"',
        "c": None,
        "d": 1.5,
        "e": dt.date(2030, 1, 2),
        "f": decimal.Decimal("2.5"),
        3: "x",
    }
    line["big"] = 2**70  # beyond orjson's integers: still written
    expected = json.loads(log_config._json_dumps_stdlib(line))
    assert json.loads(dumps(line)) == expected


def test_the_timestamp_follows_the_clock_across_seconds():
    formatter = log_config.JsonFormatter()
    first, second = record(), record()
    first.created, second.created = 1_900_000_000.2, 1_900_000_001.7
    a = json.loads(formatter.format(first))["ts"]
    b = json.loads(formatter.format(second))["ts"]
    again = json.loads(formatter.format(first))["ts"]
    assert a != b and again == a
    assert a == formatter.formatTime(first, log_config.JsonFormatter.TIME_FORMAT)


def test_an_exception_is_logged_with_its_trace():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = logging.LogRecord("http.error", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    data = json.loads(log_config.JsonFormatter().format(rec))
    assert "ValueError: boom" in data["exc"]


@pytest.mark.parametrize("with_trace", [False, True])
def test_gunicorns_arbiter_writes_the_platforms_line(with_trace):
    """config/gunicorn.conf.py formats gunicorn's own records in the arbiter, which loads no app
    code, with a formatter of its own: the same line as the platform's for the same record."""
    import runpy
    import sys
    from pathlib import Path

    conf = Path(__file__).resolve().parents[2] / "config" / "gunicorn.conf.py"
    arbiter = runpy.run_path(str(conf))["ArbiterJsonFormatter"]()
    exc_info = None
    if with_trace:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    rec = logging.LogRecord(
        "gunicorn.error", logging.WARNING, __file__, 1, 'Worker %s: "quoted"', (7,), exc_info
    )
    rec.created = 1_900_000_000.2
    assert json.loads(arbiter.format(rec)) == json.loads(log_config.JsonFormatter().format(rec))


class Answer:
    """A get_response that resolves the request as Django's handler would, then answers."""

    def __init__(self, status: int = 200, view_name: str | None = "event-list"):
        self.status, self.view_name = status, view_name

    def __call__(self, request):
        if self.view_name:
            request.resolver_match = ResolverMatch(lambda r: None, (), {}, url_name=self.view_name)
        return HttpResponse(status=self.status)


def lines(caplog) -> list[dict]:
    return [r.fields | {"request_id": r.request_id} for r in caplog.records if r.name == "http.request"]


def test_one_line_per_request_without_the_query_string_or_credentials(caplog):
    caplog.set_level("INFO", logger="http.request")
    request = RequestFactory().get(
        "/api/v1/events/?token=sekrit&page=2", HTTP_AUTHORIZATION="Bearer sekrit-token"
    )
    response = RequestIdMiddleware(Answer(201))(request)
    (line,) = lines(caplog)
    assert line["method"] == "GET" and line["path"] == "/api/v1/events/" and line["status"] == 201
    assert line["user_id"] is None and line["duration_ms"] >= 0
    assert line["request_id"] == response["X-Request-ID"] == request.request_id
    assert "sekrit" not in caplog.text + repr([r.__dict__ for r in caplog.records])


def test_a_sane_request_id_is_echoed_and_a_bad_one_replaced(caplog):
    caplog.set_level("INFO", logger="http.request")
    middleware = RequestIdMiddleware(Answer())
    echoed = middleware(RequestFactory().get("/", HTTP_X_REQUEST_ID="abc-123"))
    replaced = middleware(RequestFactory().get("/", HTTP_X_REQUEST_ID="<script>\n"))
    assert echoed["X-Request-ID"] == "abc-123"
    assert replaced["X-Request-ID"] != "<script>\n" and len(replaced["X-Request-ID"]) == 32
    assert [line["request_id"] for line in lines(caplog)] == ["abc-123", replaced["X-Request-ID"]]


def test_the_user_id_is_the_authenticated_accounts_and_a_lazy_user_is_not_loaded(caplog):
    from django.contrib.auth.models import AnonymousUser
    from django.utils.functional import SimpleLazyObject

    caplog.set_level("INFO", logger="http.request")

    class Account:
        pk, is_authenticated = 42, True

    def answer_as(user):
        def get_response(request):
            request.user = user
            return HttpResponse()

        return get_response

    def never_loaded():
        raise AssertionError("the lazy user was loaded for the log line")

    for user in (Account(), AnonymousUser(), SimpleLazyObject(never_loaded)):
        RequestIdMiddleware(answer_as(user))(RequestFactory().get("/"))
    assert [line["user_id"] for line in lines(caplog)] == [42, None, None]


def test_no_line_below_info_but_the_id_and_metrics_still(caplog):
    caplog.set_level("WARNING", logger="http.request")
    response = RequestIdMiddleware(Answer())(RequestFactory().get("/"))
    assert response["X-Request-ID"]
    assert lines(caplog) == []


def count(metric, *labels) -> float:
    return metric.labels(*labels)._value.get()


def test_each_request_is_counted_once_in_the_dashboards_metrics():
    before = (
        count(metrics.HTTP_REQUESTS, "event-list", "http", "GET"),
        count(metrics.HTTP_RESPONSES, "409", "event-list", "GET"),
        metrics.HTTP_LATENCY.labels("event-list", "GET")._sum.get(),
    )
    RequestIdMiddleware(Answer(409))(RequestFactory().get("/api/v1/events/"))
    after = (
        count(metrics.HTTP_REQUESTS, "event-list", "http", "GET"),
        count(metrics.HTTP_RESPONSES, "409", "event-list", "GET"),
        metrics.HTTP_LATENCY.labels("event-list", "GET")._sum.get(),
    )
    assert after[0] - before[0] == 1 and after[1] - before[1] == 1
    assert after[2] > before[2]


def test_unresolved_views_and_odd_methods_share_one_label_each():
    before = count(metrics.HTTP_RESPONSES, "404", "<unnamed view>", "<invalid method>")
    children = len(metrics._http_children)
    for method in ("FOO", "BAR", "BAZ"):
        RequestIdMiddleware(Answer(404, view_name=None))(RequestFactory().generic(method, "/nowhere"))
    assert count(metrics.HTTP_RESPONSES, "404", "<unnamed view>", "<invalid method>") - before == 3
    assert len(metrics._http_children) <= children + 1


# --- log_info_line: the request's line straight to the stream, while logging is as LOGGING sets it ----


class Hierarchy:
    """A logger hierarchy of its own (its own root), configured as LOGGING configures the real one:
    the root's one StreamHandler with JsonFormatter and RequestIdFilter, writing to `stream`."""

    def __init__(self) -> None:
        import io

        self.root = logging.RootLogger(logging.WARNING)
        self.manager = logging.Manager(self.root)
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(log_config.JsonFormatter())
        self.handler.addFilter(log_config.RequestIdFilter())
        self.root.addHandler(self.handler)
        self.logger = self.manager.getLogger("http.request")
        self.logger.setLevel(logging.INFO)

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


FIELDS = {"method": "GET", "path": "/api/v1/events/", "status": 200, "duration_ms": 0.21, "user_id": 7}


def test_the_direct_line_is_the_line_logging_writes():
    logs = Hierarchy()
    logs.logger.info("request", extra={"request_id": "req-1", "fields": FIELDS})
    log_config.log_info_line(logs.logger, "request", "req-1", FIELDS)
    through_logging, direct = logs.lines()
    assert direct == through_logging | {"ts": direct["ts"]}  # the clock may have ticked between them
    assert list(direct) == list(through_logging)  # the keys in the same order
    assert logs.stream.getvalue().endswith("\n") and logs.stream.getvalue().count("\n") == 2


def test_a_line_without_a_request_id_gets_the_current_one_through_logging():
    logs = Hierarchy()
    token = log_config.current_request_id.set("req-current")
    try:
        log_config.log_info_line(logs.logger, "request", "", FIELDS)
    finally:
        log_config.current_request_id.reset(token)
    assert logs.lines()[0]["request_id"] == "req-current"


def test_the_direct_line_makes_no_record(monkeypatch):
    logs = Hierarchy()

    def no_record(*args, **kwargs):
        raise AssertionError("a record was made")

    monkeypatch.setattr(logs.logger, "makeRecord", no_record)
    log_config.log_info_line(logs.logger, "request", "req-1", FIELDS)
    assert logs.lines()[0]["request_id"] == "req-1"


def capturing_handler() -> tuple[logging.Handler, list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    return handler, records


@pytest.mark.parametrize("where", ["root", "logger"])
def test_another_handler_gets_the_record_through_logging(where):
    logs = Hierarchy()
    handler, records = capturing_handler()
    (logs.root if where == "root" else logs.logger).addHandler(handler)
    log_config.log_info_line(logs.logger, "request", "req-1", FIELDS)
    [record] = records
    assert record.fields == FIELDS and record.request_id == "req-1"  # type: ignore[attr-defined]
    assert logs.lines()[0]["request_id"] == "req-1"  # and the configured handler still writes it


def test_filters_and_levels_are_logging_s_to_apply():
    logs = Hierarchy()
    logs.logger.addFilter(lambda record: False)
    log_config.log_info_line(logs.logger, "request", "req-1", FIELDS)
    logs.logger.filters.clear()
    logs.handler.setLevel(logging.WARNING)
    log_config.log_info_line(logs.logger, "request", "req-2", FIELDS)
    logs.handler.setLevel(logging.NOTSET)
    logs.logger.setLevel(logging.WARNING)
    log_config.log_info_line(logs.logger, "request", "req-3", FIELDS)
    logs.logger.setLevel(logging.INFO)
    logs.logger.propagate = False
    log_config.log_info_line(logs.logger, "request", "req-4", FIELDS)
    assert logs.lines() == []
    logs.logger.propagate = True
    logs.handler.addFilter(lambda record: record.request_id != "req-5")
    log_config.log_info_line(logs.logger, "request", "req-5", FIELDS)
    log_config.log_info_line(logs.logger, "request", "req-6", FIELDS)
    assert [line["request_id"] for line in logs.lines()] == ["req-6"]


def test_a_stream_that_fails_is_reported_by_logging_and_the_request_goes_on(monkeypatch):
    logs = Hierarchy()
    reported: list[logging.LogRecord] = []
    monkeypatch.setattr(logs.handler, "handleError", reported.append)

    def refuse(text: str) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(logs.stream, "write", refuse)
    log_config.log_info_line(logs.logger, "request", "req-1", FIELDS)  # raises nothing
    [record] = reported
    assert record.request_id == "req-1"  # type: ignore[attr-defined]


def test_the_platform_s_logging_is_what_the_direct_line_is_for():
    """LOGGING, as settings configure it, ends the request's line at the one handler the direct line
    writes to: a change there (another handler, a filter) would quietly cost every request the
    slower way, and must come with a second look at log_info_line."""
    from django.conf import settings

    config = settings.LOGGING
    assert config["root"]["handlers"] == ["console"]
    console = config["handlers"]["console"]
    assert console["class"] == "logging.StreamHandler" and console.get("level") in (
        None,
        "NOTSET",
        "DEBUG",
        "INFO",
    )
    assert config["formatters"][console["formatter"]]["()"] == "config.logging.JsonFormatter"
    assert [config["filters"][name]["()"] for name in console["filters"]] == [
        "config.logging.RequestIdFilter"
    ]
    assert not any(name in ("http", "http.request") for name in config.get("loggers", {}))
    assert "filters" not in config["root"]
