"""HTTP benchmark of the event API as it is deployed: gunicorn on PostgreSQL and Redis, loaded by wrk.

From the root of a clean clone (after `make .venv/.dev-installed`):

    .venv/bin/python bench/http_bench.py           # progress on stderr, the table on stdout
    .venv/bin/python bench/http_bench.py --json    # the same figures as one JSON document

It recreates the throwaway PostgreSQL database `bench_events`, flushes Redis db 3, migrates, seeds
events and participants, starts gunicorn, runs three wrk scenarios (a bare view as the reference,
the cached event list, enrollments with a fresh participant per request), checks the seat counters
in the database and reads the server's log. bench/README.md says what the figures mean.

The exit code is non-zero only when the benchmark could not run (or its figures are invalid, e.g.
the token pool ran out); a missed target is a finding, printed as FAIL, not an error.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
WRK_SCRIPT = REPO / "bench" / "wrk_scenario.lua"
# The interpreter's own directory: gunicorn is installed next to it in the project's virtualenv.
VENV_BIN = Path(sys.executable).parent

HOST = "127.0.0.1"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "bench_events"
REDIS_URL = "redis://127.0.0.1:6379/3"
BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"

# Far above any run's enrollments, so that every request of the enrollment scenario can get a seat.
HOT_EVENT_CAPACITY = 1_000_000
OTHER_EVENT_CAPACITY = 100

# Minimum throughput of each scenario relative to the reference (a bare view: the server's ceiling).
TARGETS = {"list": 0.5, "enroll": 0.2}


class BenchError(Exception):
    """The benchmark could not run; the message says why."""


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- Options and environment ----------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds measured per scenario (10)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured warm-up (2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--events", type=int, default=50, help="events seeded (50)")
    parser.add_argument(
        "--participants", type=int, default=30_000, help="participants, one enrollment each at most (30000)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    parser.add_argument("--keep-files", action="store_true", help="keep the work directory (log, tokens)")
    args = parser.parse_args()
    if min(args.duration, args.warmup, args.connections, args.threads, args.workers, args.events) < 1:
        parser.error("durations and counts must be at least 1")
    if args.connections < args.threads:
        parser.error("wrk needs at least one connection per thread")
    if not args.threads * 100 <= args.participants < HOT_EVENT_CAPACITY:
        parser.error(f"--participants must be between {args.threads * 100} and {HOT_EVENT_CAPACITY - 1}")
    return args


def configure_environment(work_dir: Path) -> None:
    """Sets the deployment's variables in this process; Django here and every child process read them."""
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": f"postgres://postgres@{HOST}:5432/{DB_NAME}",
            "REDIS_URL": REDIS_URL,
            "SECRET_KEY": secrets.token_urlsafe(64),
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            # The per-request INFO line would otherwise be a large share of each request's work.
            "LOG_LEVEL": "WARNING",
            "AUTH_THROTTLE_RATE": "1000000/min",
            # Tokens are minted before the server starts and must outlive the whole run.
            "JWT_ACCESS_MINUTES": "120",
            # Production publishes side effects to RabbitMQ (the workers are other machines' work,
            # not started here; their queues are purged at the end).
            "CELERY_BROKER_URL": BROKER_URL,
            "EMAIL_URL": "",
            # Mail files and the like go to the work directory, not to the clone's var/.
            "VAR_DIR": str(work_dir / "var"),
        }
    )
    # Tokens are signed with SECRET_KEY unless this is set; a stray value would only add confusion.
    os.environ.pop("JWT_SIGNING_KEY", None)
    # The API serves no static files; the directory exists so that WhiteNoise does not warn about it.
    (work_dir / "var" / "static").mkdir(parents=True, exist_ok=True)


# --- Backing services -----------------------------------------------------------------------------


def recreate_database() -> str:
    """Drops and creates the throwaway database; returns the PostgreSQL server version."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        name = sql.Identifier(DB_NAME)
        # FORCE: a previous run interrupted mid-way may have left connections behind.
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
        row = conn.execute("SELECT current_setting('server_version')").fetchone()
    return str(row[0]) if row else "?"


def flush_redis() -> str:
    """Empties the benchmark's Redis database (db 3 only); returns the Redis server version."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    client.flushdb()
    return str(client.info("server").get("redis_version", "?"))


def purge_queues() -> int:
    """Drops the tasks the run published (no worker consumes them here). Returns how many."""
    from config.celery import app

    return int(app.control.purge() or 0)


def run_migrations() -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"], cwd=REPO, check=True
    )


def setup_django() -> None:
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


# --- Seed data --------------------------------------------------------------------------------------


@dataclass
class Seed:
    hot_event_id: int
    reader_token: str  # a participant outside the enrollment pool, for the list scenario
    token_file: Path  # one access token per line, each of a different participant
    pool_size: int


def seed_events(count: int) -> int:
    """Creates `count` upcoming events; the first is the hot one, with room for every request. Its id."""
    from events.models import Event

    first_day = dt.date.today() + dt.timedelta(days=30)
    events = [
        Event(
            title=f"Bench event {number}",
            description="Seeded by bench/http_bench.py.",
            date=first_day + dt.timedelta(days=number),
            time=dt.time(10, 0),
            location=f"Room {number % 7}",
            capacity=OTHER_EVENT_CAPACITY,
        )
        for number in range(count)
    ]
    events[0].title, events[0].capacity = "Hot event", HOT_EVENT_CAPACITY
    Event.objects.bulk_create(events)
    return events[0].pk


def seed_participants(count: int, token_file: Path) -> str:
    """Creates a reader and `count` participants, writes a token per participant; the reader's token."""
    from django.contrib.auth.hashers import make_password
    from rest_framework_simplejwt.tokens import AccessToken

    from participants.models import User

    # One unusable password for all: no hashing per user, and nobody can sign in with it.
    unusable = make_password(None)
    users = [
        User(
            email=f"participant{number:06d}@bench.example",
            full_name=f"Participant {number}",
            password=unusable,
        )
        for number in range(count + 1)
    ]
    User.objects.bulk_create(users, batch_size=5000)
    reader, pool = users[0], users[1:]
    with token_file.open("w") as out:
        out.writelines(f"{AccessToken.for_user(user)}\n" for user in pool)
    return str(AccessToken.for_user(reader))


def seed(args: argparse.Namespace, work_dir: Path) -> Seed:
    from django.db import connections

    started = time.monotonic()
    hot_event_id = seed_events(args.events)
    token_file = work_dir / "tokens.txt"
    reader_token = seed_participants(args.participants, token_file)
    # The server has its own connections; this process keeps none open while it measures.
    connections.close_all()
    say(
        f"seeded {args.events} events and {args.participants + 1} participants with tokens "
        f"in {time.monotonic() - started:.1f} s"
    )
    return Seed(hot_event_id, reader_token, token_file, args.participants)


# --- The server ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def http_get(port: int, path: str, token: str = "") -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_until_live(process: subprocess.Popen[bytes], port: int, log_path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"gunicorn exited with code {process.returncode}:\n{tail(log_path)}")
        try:
            status, body = http_get(port, "/health/live")
        except OSError:  # not listening yet
            time.sleep(0.2)
            continue
        if status == 200:
            return
        # Any answer comes from Django itself: an error now will not go away by waiting.
        raise BenchError(f"/health/live answered {status}: {body[:300]!r}\n{tail(log_path)}")
    raise BenchError(f"gunicorn did not answer /health/live within {timeout:.0f} s:\n{tail(log_path)}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Graceful stop (SIGTERM lets workers finish the requests they hold), then SIGKILL if stuck."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running_server(port: int, workers: int, log_path: Path) -> Iterator[None]:
    """gunicorn as `make run` starts it, stopped on the way out whatever happened."""
    command = [
        str(VENV_BIN / "gunicorn"),
        "--config",
        "config/gunicorn.conf.py",
        "config.wsgi",
        "--workers",
        str(workers),
        "--bind",
        f"{HOST}:{port}",
        "--no-control-socket",
        "--error-logfile",
        "-",
    ]
    with log_path.open("wb") as log:
        # A session of its own: Ctrl-C reaches this script only, which then stops the server in order.
        process = subprocess.Popen(
            command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_until_live(process, port, log_path)
            yield
        finally:
            stop(process)


def tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


# --- wrk ----------------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """The path of wrk, installed with apt-get (refreshing the package lists if needed) when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    say("wrk is not installed: installing it with apt-get")
    install = [*sudo, "apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        say("apt-get install failed: refreshing the package lists and trying again")
        subprocess.run([*sudo, "apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
        subprocess.run(install, env=env, stdout=subprocess.DEVNULL)
    found = shutil.which("wrk")
    if not found:
        raise BenchError("wrk is missing and could not be installed; install it (apt-get install wrk)")
    return found


def wrk_version(wrk: str) -> str:
    # `wrk -v` prints its version and usage, then exits non-zero.
    output = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout
    return output.splitlines()[0].split(" Copyright")[0].strip() if output else "?"


@dataclass
class WrkRun:
    """One wrk run, as wrk_scenario.lua reports it."""

    duration_s: float
    requests: int  # responses received
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int]
    socket_errors: dict[str, int]  # connect, read, write, timeout
    issued: int  # requests handed out (the responses plus those cut off when wrk stopped)
    exhausted: int  # token-pool scenario: requests that found no unused token left

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def non_2xx(self) -> int:
        return sum(count for status, count in self.statuses.items() if not 200 <= status < 300)

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)

    @property
    def unanswered(self) -> int:
        return self.issued - self.requests

    def count(self, status: int) -> int:
        return self.statuses.get(status, 0)


def run_wrk(wrk: str, args: argparse.Namespace, url: str, seconds: int, script_args: list[str]) -> WrkRun:
    command = [
        wrk,
        "--threads",
        str(args.threads),
        "--connections",
        str(args.connections),
        "--duration",
        f"{seconds}s",
        # Slow answers must be measured, not dropped: wrk leaves answers past its timeout out of the
        # latency figures.
        "--timeout",
        "30s",
        "--script",
        str(WRK_SCRIPT),
        url,
        "--",
        *script_args,
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    marker = "BENCH_RESULT "
    lines = [line for line in completed.stdout.splitlines() if line.startswith(marker)]
    if completed.returncode != 0 or not lines:
        raise BenchError(
            f"wrk failed (code {completed.returncode}):\n{completed.stdout}\n{completed.stderr}".strip()
        )
    data = json.loads(lines[-1][len(marker) :])
    latency = data["latency_us"]
    errors = data["errors"]
    return WrkRun(
        duration_s=data["duration_us"] / 1e6,
        requests=int(data["requests"]),
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        statuses={int(status): int(count) for status, count in data["statuses"].items()},
        socket_errors={kind: int(errors[kind]) for kind in ("connect", "read", "write", "timeout")},
        issued=int(data["issued"]),
        exhausted=int(data["exhausted"]),
    )


# --- Scenarios ------------------------------------------------------------------------------------


@dataclass
class ScenarioResult:
    key: str
    label: str
    run: WrkRun
    warmup: WrkRun

    @property
    def valid(self) -> bool:
        """False when the token pool ran out: requests without a token measure the 401 path."""
        return self.run.exhausted == 0 and self.warmup.exhausted == 0


def check_answers(port: int, path: str, token: str = "") -> None:
    """One request before the load: a scenario that answers errors would only measure the errors."""
    status, body = http_get(port, path, token)
    if status != 200:
        raise BenchError(f"GET {path} answered {status} before the load: {body[:500]!r}")


def measure_fixed(
    wrk: str, args: argparse.Namespace, port: int, key: str, label: str, path: str, token: str = ""
) -> ScenarioResult:
    check_answers(port, path, token)
    url = f"http://{HOST}:{port}{path}"
    script_args = ["fixed", "GET", token]
    say(f"{label}: {args.warmup} s warm-up, {args.duration} s measured")
    warmup = run_wrk(wrk, args, url, args.warmup, script_args)
    run = run_wrk(wrk, args, url, args.duration, script_args)
    return ScenarioResult(key, label, run, warmup)


def measure_enrollment(wrk: str, args: argparse.Namespace, port: int, seed: Seed) -> ScenarioResult:
    """POSTs to the hot event, each request as a participant never seen before in this run.

    The token pool is shared between warm-up and measurement in proportion to their durations, so
    both run out at the same request rate; wrk_scenario.lua cuts each share into one slice per thread.
    """
    path = f"/api/v1/events/{seed.hot_event_id}/enrollments/"
    url = f"http://{HOST}:{port}{path}"
    label = f"(b) POST {path} (new user each)"
    warmup_share = seed.pool_size * args.warmup // (args.warmup + args.duration)
    ranges = {"warmup": (1, warmup_share), "run": (warmup_share + 1, seed.pool_size - warmup_share)}

    def pool_args(first: int, count: int) -> list[str]:
        return ["token-pool", "POST", str(seed.token_file), str(first), str(count), str(args.threads)]

    say(f"{label}: {args.warmup} s warm-up, {args.duration} s measured")
    warmup = run_wrk(wrk, args, url, args.warmup, pool_args(*ranges["warmup"]))
    if warmup.count(201) == 0:
        raise BenchError(f"no enrollment succeeded during the warm-up; statuses: {warmup.statuses}")
    run = run_wrk(wrk, args, url, args.duration, pool_args(*ranges["run"]))
    return ScenarioResult("enroll", label, run, warmup)


# --- Checks after the load --------------------------------------------------------------------------


@dataclass
class SeatCheck:
    """The hot event's seat counter against its rows and against what the clients were told."""

    capacity: int
    enrolled_count: int
    enrollment_rows: int
    created_responses: int  # 201 answers received, warm-up included
    unanswered_requests: int  # requests wrk cut off at the end of a run (the server may have done them)
    events_overbooked: int  # any event, not only the hot one
    events_miscounted: int  # events whose enrolled_count differs from their enrollment rows

    @property
    def counter_matches_rows(self) -> bool:
        return self.enrolled_count == self.enrollment_rows

    @property
    def rows_match_responses(self) -> bool:
        """Every 201 is a row; a row without a 201 is only allowed for a request cut off by wrk."""
        extra_rows = self.enrollment_rows - self.created_responses
        return 0 <= extra_rows <= self.unanswered_requests

    @property
    def no_overbooking(self) -> bool:
        return self.enrolled_count <= self.capacity and self.events_overbooked == 0

    @property
    def passed(self) -> bool:
        return (
            self.counter_matches_rows
            and self.rows_match_responses
            and self.no_overbooking
            and self.events_miscounted == 0
        )


def check_seats(hot_event_id: int, enrollment: ScenarioResult) -> SeatCheck:
    from django.db.models import Count, F

    from events.models import Enrollment, Event

    hot = Event.objects.get(pk=hot_event_id)
    runs = (enrollment.warmup, enrollment.run)
    miscounted = Event.objects.annotate(rows=Count("enrollments")).exclude(enrolled_count=F("rows")).count()
    return SeatCheck(
        capacity=hot.capacity,
        enrolled_count=hot.enrolled_count,
        enrollment_rows=Enrollment.objects.filter(event_id=hot_event_id).count(),
        created_responses=sum(run.count(201) for run in runs),
        unanswered_requests=sum(run.unanswered for run in runs),
        events_overbooked=Event.objects.filter(enrolled_count__gt=F("capacity")).count(),
        events_miscounted=miscounted,
    )


@dataclass
class ServerLog:
    path: str
    lines_by_level: dict[str, int] = field(default_factory=dict)
    # The most frequent distinct messages above INFO, with how often each came: [count, message].
    notable: list[tuple[int, str]] = field(default_factory=list)


_GUNICORN_LINE = re.compile(r"^\[[^\]]+\] \[\d+\] \[([A-Z]+)\] (.*)$")
_NUMBER = re.compile(r"\d+")
# The last line of a traceback ("ValueError: ...") or a Python warning ("file:1: UserWarning: ...").
_EXCEPTION_LINE = re.compile(r"^(\S+: )?[A-Za-z_.]*(Error|Exception|Warning|Exit|Interrupt)\b.*")


def classify_log_line(line: str) -> tuple[str, str | None]:
    """The line's level and, when it is worth showing, its message without timestamp and pid."""
    with contextlib.suppress(ValueError, AttributeError):
        record = json.loads(line)  # the app's JSON lines (config.logging)
        level = str(record.get("level", "OTHER"))
        message = f"[{level}] {record.get('logger', '')}: {record.get('msg', '')}"
        if record.get("exc"):
            message += " | " + str(record["exc"]).strip().splitlines()[-1]
        return level, message
    if match := _GUNICORN_LINE.match(line):
        return match.group(1), f"[{match.group(1)}] {match.group(2)}"
    # Anything else is a traceback or a warning printed by Python: only its headline is worth showing.
    return "OTHER", line.strip() if _EXCEPTION_LINE.match(line.strip()) else None


def read_server_log(path: Path, keep: int = 10) -> ServerLog:
    """Counts the log's lines per level and its distinct messages above INFO."""
    levels: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        level, message = classify_log_line(line)
        levels[level] += 1
        if message and level not in ("DEBUG", "INFO"):
            # Numbers (ids, pids, ports) differ from line to line; grouped without them, the same
            # problem is counted once instead of filling the list.
            messages[_NUMBER.sub("N", message)[:300]] += 1
    notable = [(count, message) for message, count in messages.most_common(keep)]
    return ServerLog(str(path), dict(levels), notable)


# --- Report -------------------------------------------------------------------------------------------


def ratio(result: ScenarioResult, reference: ScenarioResult) -> float:
    return result.run.rps / reference.run.rps if reference.run.rps else 0.0


def report_data(
    results: dict[str, ScenarioResult], seats: SeatCheck, log: ServerLog, setup: dict[str, Any]
) -> dict[str, Any]:
    reference = results["reference"]
    scenarios = {
        key: {
            "label": result.label,
            "rps": round(result.run.rps, 1),
            "p50_ms": round(result.run.p50_ms, 2),
            "p90_ms": round(result.run.p90_ms, 2),
            "p99_ms": round(result.run.p99_ms, 2),
            "max_ms": round(result.run.max_ms, 2),
            "non_2xx": result.run.non_2xx,
            "5xx": result.run.server_errors,
            "valid": result.valid,
            "run": asdict(result.run),
            "warmup": asdict(result.warmup),
        }
        for key, result in results.items()
    }
    targets = {
        key: {
            "ratio": round(ratio(results[key], reference), 3),
            "target": target,
            "passed": ratio(results[key], reference) >= target,
            "valid": results[key].valid,
        }
        for key, target in TARGETS.items()
    }
    checks = {
        **asdict(seats),
        "counter_matches_rows": seats.counter_matches_rows,
        "rows_match_responses": seats.rows_match_responses,
        "no_overbooking": seats.no_overbooking,
        "passed": seats.passed,
    }
    return {
        "setup": setup,
        "scenarios": scenarios,
        "targets": targets,
        "seats": checks,
        "server_log": asdict(log),
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_table(
    results: dict[str, ScenarioResult], seats: SeatCheck, log: ServerLog, setup: dict[str, Any]
) -> None:
    print()
    print(
        "Setup: "
        + ", ".join(f"{key} {value}" for key, value in setup.items() if key not in ("participants", "events"))
    )
    print(f"Data: {setup['events']} events, {setup['participants']} participants with a token each")
    print()
    width = max(len(result.label) for result in results.values())
    columns = ("req/s", "p50 ms", "p99 ms", "non-2xx", "5xx", "sock err")
    header = f"{'scenario':<{width}} " + " ".join(f"{column:>8}" for column in columns)
    print(header)
    print("-" * len(header))
    for result in results.values():
        run = result.run
        socket_errors = sum(run.socket_errors.values())
        print(
            f"{result.label:<{width}} {run.rps:>8.1f} {run.p50_ms:>8.2f} {run.p99_ms:>8.2f} "
            f"{run.non_2xx:>8} {run.server_errors:>8} {socket_errors:>8}"
        )
    unexpected = {
        key: {status: count for status, count in result.run.statuses.items() if not 200 <= status < 300}
        for key, result in results.items()
    }
    for key, statuses in unexpected.items():
        if statuses:
            print(f"  {key}: non-2xx answers by status {statuses}")
    print()
    reference = results["reference"]
    names = {"list": "list / reference", "enroll": "enrollment / reference"}
    for key, target in TARGETS.items():
        value = ratio(results[key], reference)
        outcome = verdict(value >= target) if results[key].valid else "INVALID (the token pool ran out)"
        print(f"{names[key]:<24} {value:>6.3f}   target >= {target:<4}  {outcome}")
    print()
    print(f"Seats of the hot event (capacity {seats.capacity}):")
    print(
        f"  enrolled_count {seats.enrolled_count} == enrollment rows {seats.enrollment_rows}: "
        f"{verdict(seats.counter_matches_rows)}"
    )
    extra = seats.enrollment_rows - seats.created_responses
    print(
        f"  enrollment rows {seats.enrollment_rows} == 201 answers {seats.created_responses} "
        f"(+{extra} done for requests cut off when wrk stopped, at most {seats.unanswered_requests}): "
        f"{verdict(seats.rows_match_responses)}"
    )
    print(
        f"  no overbooking (hot event {seats.enrolled_count} <= {seats.capacity}, "
        f"{seats.events_overbooked} events over capacity): {verdict(seats.no_overbooking)}"
    )
    print(f"  events whose counter differs from their rows: {seats.events_miscounted}")
    print()
    levels = ", ".join(f"{level} {count}" for level, count in sorted(log.lines_by_level.items())) or "empty"
    print(f"Server log ({log.path}): {levels}")
    for count, message in log.notable:
        print(f"  {count:>6} x {message}")


# --- Main -----------------------------------------------------------------------------------------------


def run_benchmark(args: argparse.Namespace, work_dir: Path) -> int:
    configure_environment(work_dir)
    wrk = ensure_wrk()
    say(f"recreating database {DB_NAME} and flushing Redis db 3")
    setup: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "gunicorn workers": args.workers,
        "wrk": f"{args.threads} threads, {args.connections} connections, {args.duration} s "
        f"(+{args.warmup} s warm-up)",
        "PostgreSQL": recreate_database(),
        "Redis": flush_redis(),
        "Python": platform.python_version(),
        "wrk version": wrk_version(wrk),
        "events": args.events,
        "participants": args.participants,
    }
    say("migrating")
    run_migrations()
    setup_django()
    seeded = seed(args, work_dir)

    port = free_port()
    log_path = work_dir / "gunicorn.log"
    say(f"starting gunicorn ({args.workers} workers) on {HOST}:{port}, log in {log_path}")
    results: dict[str, ScenarioResult] = {}
    with running_server(port, args.workers, log_path):
        results["reference"] = measure_fixed(
            wrk, args, port, "reference", "(c) reference: GET /health/live", "/health/live"
        )
        results["list"] = measure_fixed(
            wrk,
            args,
            port,
            "list",
            "(a) GET /api/v1/events/ (auth, cached)",
            "/api/v1/events/",
            seeded.reader_token,
        )
        results["enroll"] = measure_enrollment(wrk, args, port, seeded)
    say("server stopped; purging the benchmark's messages from RabbitMQ")
    purge_queues()
    say("checking the seats in the database")
    seats = check_seats(seeded.hot_event_id, results["enroll"])
    log = read_server_log(log_path)
    if not args.keep_files:
        log.path = f"{log_path}, removed at exit: --keep-files keeps it"

    if args.json:
        print(json.dumps(report_data(results, seats, log, setup), indent=2))
    else:
        print_table(results, seats, log, setup)

    if not all(result.valid for result in results.values()):
        exhausted = sum(result.run.exhausted + result.warmup.exhausted for result in results.values())
        say(
            f"INVALID RUN: the token pool ran out ({exhausted} requests had no unused participant); "
            "rerun with a larger --participants"
        )
        return 1
    return 0


def main() -> int:
    args = parse_args()
    # A `kill` of the benchmark unwinds like Ctrl-C, so the server is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    work_dir = Path(tempfile.mkdtemp(prefix="http-bench-"))
    try:
        return run_benchmark(args, work_dir)
    except (BenchError, OSError, subprocess.SubprocessError, psycopg.Error, redis.RedisError) as exc:
        say(f"the benchmark could not run: {type(exc).__name__}: {exc}")
        return 1
    finally:
        if args.keep_files:
            say(f"work files kept in {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
