"""Benchmark: from an enrollment's 201 to its confirmation e-mail sent, for a burst of enrollments.

From the root of a clean clone (after `make .venv/.dev-installed`):

    .venv/bin/python bench/email_latency_bench.py            # progress on stderr, the table on stdout
    .venv/bin/python bench/email_latency_bench.py --json     # the same figures as one JSON document

It starts the production stack on PostgreSQL, Redis and RabbitMQ: gunicorn (config.wsgi with
config/gunicorn.conf.py, 2 sync workers), the `notifications` Celery worker (the README's command:
prefork, `--concurrency 2`) and the outbox relay (`manage.py relay_outbox`). It seeds one upcoming
event with room for everyone and --participants (200) participants, mints their access tokens,
then enrolls each of them once, as fast as --clients (16) keep-alive HTTP clients can, recording
the wall-clock time each 201 arrived. It then waits for every confirmation's Notification row to
be `sent` and takes, per enrollment, `sent_at - time of the 201` (the worker sets `sent_at` when
the e-mail backend has accepted the e-mail; same machine, same clock). It also checks that every
participant got exactly one confirmation (rows and e-mail files), and that the outbox is drained.

Target: p95 < 1 s (printed PASS or FAIL). The exit code is 0 whenever the benchmark ran, also when
the target is missed; 1 when it could not run or an enrollment or an e-mail went missing.

What it touches: the database `bench_email_latency` (dropped and created again at every start),
Redis db 5 (flushed at start), and the `notifications` and `reports` queues of --broker-url's
vhost (purged at start and end: pass a vhost of your own when something else uses that RabbitMQ).
Everything else (logs, token file, the e-mail files) goes to a temporary directory, removed at
exit unless --keep-files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# bench/common.py: run as `python bench/email_latency_bench.py`, this script has bench/ first on sys.path.
from common import (
    BROKER_URL,
    DEPLOYED_WEB_WORKERS,
    HOST,
    REPO,
    SERVER_UNDER_LOAD,
    BenchError,
    configure_environment,
    create_participants,
    flush_redis,
    free_port,
    gunicorn_command,
    purge_queues,
    read_server_log,
    recreate_database,
    run_in_work_dir,
    run_migrations,
    say,
    setup_django,
    stop,
    tail,
    wait_until_live,
)

DB_NAME = "bench_email_latency"
REDIS_URL = "redis://127.0.0.1:6379/5"
TARGET_P95_SECONDS = 1.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--participants", type=int, default=200, help="enrollments, one each (200)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent keep-alive HTTP clients (16)")
    parser.add_argument(
        "--workers",
        type=int,
        default=DEPLOYED_WEB_WORKERS,
        help=f"gunicorn workers ({DEPLOYED_WEB_WORKERS}, as deployed)",
    )
    parser.add_argument(
        "--worker-concurrency", type=int, default=2, help="notifications worker processes (2, as deployed)"
    )
    parser.add_argument(
        "--worker-log-level", default="warning", help="the worker's -l (warning; info logs each task)"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the e-mails (120)")
    parser.add_argument("--broker-url", default=BROKER_URL, help=f"RabbitMQ ({BROKER_URL})")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    parser.add_argument("--keep-files", action="store_true", help="keep the work directory (logs, e-mails)")
    args = parser.parse_args()
    if args.participants < 1 or args.clients < 1:
        parser.error("--participants and --clients must be at least 1")
    return args


# --- The stack ------------------------------------------------------------------------------------


@contextmanager
def running(name: str, command: list[str], log_path: Path, ready: Any = None, timeout: float = 60.0) -> Any:
    """Starts a process of the stack, waits for `ready()` (if given), stops it on the way out."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            if ready is not None:
                deadline = time.monotonic() + timeout
                while not ready(process):
                    if process.poll() is not None:
                        raise BenchError(f"{name} exited with code {process.returncode}:\n{tail(log_path)}")
                    if time.monotonic() > deadline:
                        raise BenchError(f"{name} not ready within {timeout:.0f} s:\n{tail(log_path)}")
                    time.sleep(0.2)
            yield process
        finally:
            stop(process)


def worker_is_ready(process: subprocess.Popen[bytes]) -> bool:
    from config.celery import app

    replies = app.control.ping(timeout=0.5) or []
    return any(name.startswith("notifications@") for reply in replies for name in reply)


# --- Seed -----------------------------------------------------------------------------------------


def seed(participants: int) -> tuple[int, list[tuple[int, str]]]:
    """One upcoming event with room for all, and the participants with their access tokens."""
    from rest_framework_simplejwt.tokens import AccessToken

    from events.models import Event

    event = Event.objects.create(
        title="Launch party",
        description="Everyone is welcome.",
        date=dt.date.today() + dt.timedelta(days=30),
        time=dt.time(18, 0),
        location="Atrium",
        capacity=participants * 2,
    )
    users = create_participants(participants, "latency")
    from participants.models import User

    saved = list(User.objects.filter(email__endswith="@bench.example").order_by("id"))
    assert len(saved) == len(users)
    return event.pk, [(user.pk, str(AccessToken.for_user(user))) for user in saved]


# --- Load -----------------------------------------------------------------------------------------


@dataclass
class Answers:
    created_at: dict[int, float] = field(default_factory=dict)  # participant id -> time.time() of the 201
    other: dict[int, int] = field(default_factory=dict)  # participant id -> status other than 201
    errors: list[str] = field(default_factory=list)


def enroll_all(
    port: int, event_id: int, people: list[tuple[int, str]], clients: int
) -> tuple[Answers, float]:
    """Every participant enrolls once, `clients` at a time; returns the answers and the wall time."""
    answers = Answers()
    lock = threading.Lock()
    todo = iter(people)
    start = threading.Barrier(clients + 1)

    def client() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        start.wait()
        while True:
            with lock:
                person = next(todo, None)
            if person is None:
                break
            participant_id, token = person
            try:
                conn.request(
                    "POST",
                    f"/api/v1/events/{event_id}/enrollments/",
                    body=b"",
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                )
                response = conn.getresponse()
                response.read()
                now = time.time()
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    answers.errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=30)
                continue
            with lock:
                if response.status == 201:
                    answers.created_at[participant_id] = now
                else:
                    answers.other[participant_id] = response.status
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.monotonic()
    for thread in threads:
        thread.join()
    return answers, time.monotonic() - began


def wait_for_emails(event_id: int, expected: int, timeout: float) -> dict[int, float]:
    """participant id -> sent_at (epoch seconds) of their confirmation, once all are sent (or timeout)."""
    from django.db import connection

    from notifications.models import Notification

    deadline = time.monotonic() + timeout
    sent: dict[int, float] = {}
    while time.monotonic() < deadline:
        rows = Notification.objects.filter(
            kind="enrollment_confirmed", event_id=event_id, status="sent"
        ).values_list("user_id", "sent_at")
        sent = {user_id: sent_at.timestamp() for user_id, sent_at in rows if sent_at is not None}
        connection.close()
        if len(sent) >= expected:
            break
        time.sleep(0.2)
    return sent


# --- Figures --------------------------------------------------------------------------------------


@dataclass
class Result:
    participants: int
    clients: int
    gunicorn_workers: int
    worker_concurrency: int
    created: int
    not_created: dict[str, int]
    request_errors: int
    enroll_seconds: float
    enrollments_per_second: float
    emails_sent: int
    missing_emails: int
    notification_rows: int
    duplicate_rows: int
    email_files_confirmations: int
    outbox_pending: int
    # Where the time goes, p50/p95 in seconds: outbox row -> published, published -> row created by
    # the worker, row created -> sent; and how many broker messages (publishes) carried them.
    stages: dict[str, list[float]]
    publishes: int
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    latency_max: float | None
    target_p95: float
    verdict: str
    server_logs: dict[str, Any]
    environment: dict[str, str]


STAGES_SQL = """
WITH o AS (
    SELECT created_at, published_at, (kwargs->'participants'->0->>0)::int AS participant
    FROM outbox_outboxmessage WHERE task = 'notifications.notify'
)
SELECT EXTRACT(EPOCH FROM o.published_at - o.created_at), EXTRACT(EPOCH FROM n.created_at - o.published_at),
       EXTRACT(EPOCH FROM n.sent_at - n.created_at), o.published_at
FROM o JOIN notifications_notification n ON n.user_id = o.participant
WHERE n.kind = 'enrollment_confirmed' AND n.sent_at IS NOT NULL AND o.published_at IS NOT NULL
"""


def stages() -> tuple[dict[str, list[float]], int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(STAGES_SQL)
        rows = cursor.fetchall()
    if not rows:
        return {}, 0
    figures = {}
    for index, name in enumerate(("published", "picked_up", "sent")):
        values = [float(row[index]) for row in rows]
        figures[name] = [round(percentile(values, 0.5), 3), round(percentile(values, 0.95), 3)]
    return figures, len({row[3] for row in rows})


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[index]


def count_confirmation_files(mail_dir: Path) -> int:
    if not mail_dir.exists():
        return 0
    return sum(
        path.read_text(errors="replace").count("Subject: You are enrolled: ") for path in mail_dir.iterdir()
    )


def benchmark(work_dir: Path, args: argparse.Namespace) -> int:
    configure_environment(
        work_dir,
        db_name=DB_NAME,
        redis_url=REDIS_URL,
        broker_url=args.broker_url,
        extra={**SERVER_UNDER_LOAD, "WEB_WORKERS": str(args.workers)},
        unset=("JWT_SIGNING_KEY", "EMAIL_BACKEND", "PROMETHEUS_MULTIPROC_DIR", "METRICS_PORT"),
    )
    say(f"PostgreSQL {recreate_database(DB_NAME)}, Redis {flush_redis(REDIS_URL)}")
    run_migrations()
    setup_django()
    say(f"purged {purge_queues()} leftover task(s)")
    event_id, people = seed(args.participants)
    say(f"seeded event {event_id} and {len(people)} participants")

    logs = {name: work_dir / f"{name}.log" for name in ("web", "worker", "relay")}
    port = free_port()
    celery = [sys.executable, "-m", "celery", "-A", "config"]
    with ExitStack() as stack:
        stack.enter_context(
            running(
                "notifications worker",
                [*celery, "worker", "-Q", "notifications", "-n", "notifications@%h",
                 "--concurrency", str(args.worker_concurrency), "-l", args.worker_log_level],
                logs["worker"],
                ready=worker_is_ready,
            )
        )  # fmt: skip
        stack.enter_context(
            running("relay", [sys.executable, "manage.py", "relay_outbox"], logs["relay"], ready=None)
        )
        web = stack.enter_context(
            running(
                "gunicorn",
                gunicorn_command(port, args.workers, config_file="config/gunicorn.conf.py"),
                logs["web"],
                ready=None,
            )
        )
        wait_until_live("gunicorn", web, port, logs["web"])
        say(f"stack up: gunicorn on :{port}, notifications worker, relay; enrolling {len(people)}")
        answers, seconds = enroll_all(port, event_id, people, args.clients)
        say(f"{len(answers.created_at)} enrollments in {seconds:.2f} s; waiting for the e-mails")
        sent = wait_for_emails(event_id, len(answers.created_at), args.timeout)
        say(f"{len(sent)} confirmations sent")

    from django.db.models import Count

    from config.outbox.models import OutboxMessage
    from notifications.models import Notification

    rows = Notification.objects.filter(kind="enrollment_confirmed", event_id=event_id)
    duplicates = rows.values("user_id").annotate(n=Count("id")).filter(n__gt=1).count()
    latencies = [sent[pid] - created for pid, created in answers.created_at.items() if pid in sent]
    p95 = percentile(latencies, 0.95) if latencies else None
    complete = len(latencies) == len(answers.created_at) == len(people)
    verdict = "PASS" if complete and p95 is not None and p95 < TARGET_P95_SECONDS else "FAIL"
    stage_figures, publishes = stages()
    not_created: dict[str, int] = {}
    for status in answers.other.values():
        not_created[str(status)] = not_created.get(str(status), 0) + 1
    result = Result(
        participants=len(people),
        clients=args.clients,
        gunicorn_workers=args.workers,
        worker_concurrency=args.worker_concurrency,
        created=len(answers.created_at),
        not_created=not_created,
        request_errors=len(answers.errors),
        enroll_seconds=round(seconds, 3),
        enrollments_per_second=round(len(answers.created_at) / seconds, 1) if seconds else 0.0,
        emails_sent=len(sent),
        missing_emails=len(answers.created_at) - len(latencies),
        notification_rows=rows.count(),
        duplicate_rows=duplicates,
        email_files_confirmations=count_confirmation_files(work_dir / "var" / "mail"),
        outbox_pending=OutboxMessage.objects.filter(published_at__isnull=True).count(),
        stages=stage_figures,
        publishes=publishes,
        latency_p50=round(statistics.median(latencies), 3) if latencies else None,
        latency_p95=round(p95, 3) if p95 is not None else None,
        latency_p99=round(percentile(latencies, 0.99), 3) if latencies else None,
        latency_max=round(max(latencies), 3) if latencies else None,
        target_p95=TARGET_P95_SECONDS,
        verdict=verdict,
        server_logs={name: asdict(read_server_log(path, keep=5)) for name, path in logs.items()},
        environment={"python": platform.python_version(), "cpus": str(os.cpu_count())},
    )
    say(f"purged {purge_queues()} task(s) left at the end")
    if args.json:
        print(json.dumps(asdict(result), indent=2))
    else:
        print_table(result)
    broken = (
        result.created != result.participants
        or result.missing_emails
        or result.duplicate_rows
        or result.email_files_confirmations != result.created
    )
    return 1 if broken else 0


def print_table(result: Result) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f} ms"

    print(
        f"enrollments        {result.created}/{result.participants} created in "
        f"{result.enroll_seconds:.2f} s ({result.enrollments_per_second} /s, {result.clients} clients, "
        f"{result.gunicorn_workers} gunicorn workers)"
    )
    if result.not_created or result.request_errors:
        print(f"  not created      {result.not_created}, request errors {result.request_errors}")
    print(
        f"confirmations      {result.emails_sent} sent, {result.missing_emails} missing, "
        f"{result.duplicate_rows} duplicated; {result.email_files_confirmations} in e-mail files; "
        f"outbox pending {result.outbox_pending}"
    )
    print(
        f"201 -> e-mail sent p50 {ms(result.latency_p50)}, p95 {ms(result.latency_p95)}, "
        f"p99 {ms(result.latency_p99)}, max {ms(result.latency_max)}"
    )
    if result.stages:
        print(
            "  stages p50/p95  "
            + ", ".join(f"{name} {ms(p50)}/{ms(p95)}" for name, (p50, p95) in result.stages.items())
            + f"; {result.publishes} broker messages"
        )
    print(f"target p95 < {result.target_p95 * 1000:.0f} ms: {result.verdict}")
    for name, log in result.server_logs.items():
        for count, message in log["notable"]:
            print(f"  {name} log: {count}x {message}")


def main() -> int:
    args = parse_args()
    return run_in_work_dir(
        lambda work_dir: benchmark(work_dir, args),
        prefix="email-latency-bench-",
        keep_files=args.keep_files,
        errors=(),
        say=say,
    )


if __name__ == "__main__":
    sys.exit(main())
