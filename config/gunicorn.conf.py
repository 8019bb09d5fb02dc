"""gunicorn settings shared by every deployment of the web role (`gunicorn -c config/gunicorn.conf.py`)."""

import json
import logging
import os
import time

# Sync workers: on 2 cores the work is CPU-bound and threads only add contention (docs/architecture.md).
worker_class = "sync"
# Three, for the 2 cores a web machine or pod has: one per core and one more. A sync worker also
# waits (for each commit's flush, for Redis, and for the client to close the connection after the
# answer), and with one per core the cores sat idle meanwhile, a fifth of the time under
# enrollment; a third worker keeps them busy, a fourth only adds contention (docs/architecture.md,
# "Worker count"). Every deployment's count is this one unless WEB_WORKERS says otherwise.
workers = int(os.environ.get("WEB_WORKERS", "3"))
# A request line as long as nginx lets through (docker/nginx.conf: 8 kB), so that one over
# gunicorn's own default (4,094 bytes) is not refused by gunicorn with an id nginx never logged.
limit_request_line = 8190
control_socket_disable = True  # gunicorn 27 would create ~/.gunicorn otherwise
errorlog = "-"


class ArbiterJsonFormatter(logging.Formatter):
    """The platform's JSON line (config.logging.JsonFormatter's fields) for gunicorn's own records
    in the arbiter, which reads this file and must load no app code: the `config` package loads
    the Celery app and Django's modules."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S%z", self.converter(record.created)),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line)


# gunicorn's own lines (a worker booted or timed out, a request refused) as JSON lines like the
# platform's, on the same stream: gunicorn.error writes through the root logger, whose handler is
# this one in the arbiter and the platform's LOGGING in a worker. gunicorn's --error-logfile and
# syslog options give way to it; no level here, so that --log-level still applies.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": ArbiterJsonFormatter}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    },
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {"gunicorn.error": {"handlers": [], "propagate": True}},
}


def child_exit(server, worker):  # noqa: ANN001, ANN201
    """A dead worker's live gauges must not be summed any more (prometheus_client multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):  # noqa: ANN001, ANN201
    """What gunicorn refuses itself (an over-long request line, a malformed request) is answered
    with problem details, not gunicorn's HTML page (config.server_errors)."""
    from config import server_errors  # here: the arbiter, which reads this file, loads no app code

    server_errors.install_gunicorn()
