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
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis

# bench/common.py: run as `python bench/http_bench.py`, this script has bench/ first on sys.path.
from common import (
    BROKER_URL,
    HOST,
    REPO,
    SERVER_UNDER_LOAD,
    BenchError,
    ServerLog,
    configure_environment,
    create_participants,
    flush_redis,
    free_port,
    gunicorn_command,
    http_get,
    purge_queues,
    read_server_log,
    recreate_database,
    run_in_work_dir,
    run_migrations,
    running_server,
    say,
    setup_django,
)

WRK_SCRIPT = REPO / "bench" / "wrk_scenario.lua"

DB_NAME = "bench_events"
REDIS_URL = "redis://127.0.0.1:6379/3"

# Far above any run's enrollments, so that every request of the enrollment scenario can get a seat.
HOT_EVENT_CAPACITY = 1_000_000
OTHER_EVENT_CAPACITY = 100

# Minimum throughput of each scenario relative to the reference (a bare view: the server's ceiling).
TARGETS = {"list": 0.5, "enroll": 0.2}


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


def configure_benchmark_environment(work_dir: Path) -> None:
    """The deployment's variables (bench/common.py), with what the load needs on top."""
    configure_environment(
        work_dir,
        db_name=DB_NAME,
        redis_url=REDIS_URL,
        # Production publishes side effects to RabbitMQ (the workers are other machines' work,
        # not started here; their queues are purged at the end).
        broker_url=BROKER_URL,
        extra=SERVER_UNDER_LOAD,
        unset=["JWT_SIGNING_KEY"],
    )


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
    from rest_framework_simplejwt.tokens import AccessToken

    users = create_participants(count + 1, "participant")
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
    configure_benchmark_environment(work_dir)
    wrk = ensure_wrk()
    say(f"recreating database {DB_NAME} and flushing Redis db 3")
    setup: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "gunicorn workers": args.workers,
        "wrk": f"{args.threads} threads, {args.connections} connections, {args.duration} s "
        f"(+{args.warmup} s warm-up)",
        "PostgreSQL": recreate_database(DB_NAME),
        "Redis": flush_redis(REDIS_URL),
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
    command = gunicorn_command(port, args.workers, config_file="config/gunicorn.conf.py")  # as `make run`
    with running_server("gunicorn", command, port, log_path):
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
    # The server is stopped on the way out, also on Ctrl-C or a `kill`.
    return run_in_work_dir(
        lambda work_dir: run_benchmark(args, work_dir),
        prefix="http-bench-",
        keep_files=args.keep_files,
        errors=(psycopg.Error, redis.RedisError),
        say=say,
    )


if __name__ == "__main__":
    sys.exit(main())
