"""gunicorn settings shared by every deployment of the web role (`gunicorn -c config/gunicorn.conf.py`)."""

import os

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
# gunicorn's own lines (a worker booted, timed out or refused a request) as JSON lines, like the
# platform's, to the same stream: gunicorn.error goes to the root logger, which is this handler in
# the arbiter and the platform's LOGGING in a worker. No level here, so that --log-level still
# applies.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "config.logging.JsonFormatter"}},
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
