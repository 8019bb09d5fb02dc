"""HTTP benchmark of the event API against a bare Django view, in one run, on the same server.

From the root of a clean clone (after `make .venv/.dev-installed`):

    .venv/bin/python bench/http_bench.py           # progress on stderr, the table on stdout
    .venv/bin/python bench/http_bench.py --json    # the same figures as one JSON document

Every figure is a ratio to a **bare Django app** (bench/bare: one JsonResponse view, no middleware,
its own minimal settings) served by the same server with the same worker count, in the same run;
the platform's own `/health/live` (the whole middleware stack, no database) is a second reference.
The platform logs every request at INFO, as deployed, with multiprocess metrics on.

It recreates a throwaway PostgreSQL database, flushes one Redis db, migrates, seeds events and
participants, starts the bare app and the platform, runs the wrk scenarios (bare, /health/live, the
authenticated event list, enrollments with a fresh participant per request into one hot event,
the refusals of a full event, again a fresh participant per request, and the list and the
enrollments at the same time) in turn for a few rounds, then bare once more, checks the seats in
the database and reads the platform's log. bench/README.md says what the figures mean.

The exit code is non-zero only when the benchmark could not run (or its figures are invalid, e.g.
the token pool ran out); a missed target is a finding, printed as FAIL, not an error.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis

# bench/common.py: run as `python bench/http_bench.py`, this script has bench/ first on sys.path.
from common import (
    DEPLOYED_WEB_WORKERS,
    HOST,
    SERVER_UNDER_LOAD,
    SERVERS,
    BenchError,
    ServerLog,
    configure_environment,
    create_participants,
    flush_redis,
    free_port,
    http_get,
    purge_queues,
    read_server_log,
    recreate_database,
    run_in_work_dir,
    run_migrations,
    running_server,
    say,
    server_command,
    session_cpu_seconds,
    setup_django,
)
from wrkrun import WrkRun, ensure_wrk, run_wrk, wrk_version

# Defaults: a run of its own; give each parallel run its own database, Redis db and vhost.
DB_NAME = os.environ.get("BENCH_DB", "bench_events")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
DEFAULT_SERVER = "gunicorn-sync"

BARE_APP = "bench.bare.wsgi:application"
PLATFORM_APP = "config.wsgi:application"

# Far above any run's enrollments, so that every request of the enrollment scenario can get a seat.
HOT_EVENT_CAPACITY = 1_000_000
OTHER_EVENT_CAPACITY = 100
# The full event's one seat, taken before the load: every request of the full scenario is refused.
FULL_EVENT_CAPACITY = 1

# Minimum throughput of each scenario relative to the bare app (the targets).
TARGETS = {"list": 0.5, "enroll": 0.2}
SCENARIOS = ("bare", "live", "list", "enroll", "full", "mixed")
# The scenarios that POST with a fresh participant per request (from the token pool).
POOL_SCENARIOS = ("enroll", "full", "mixed")
# The mixed scenario's second figure: its enrollments, beside its reads (results["mixed"]).
MIXED_ENROLL = "mixed@enroll"


# --- Options and environment ----------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds of all the scenarios in turn (5)")
    parser.add_argument("--duration", type=int, default=4, help="seconds measured per scenario and round (4)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured warm-up before each (1)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument(
        "--server", choices=SERVERS, default=DEFAULT_SERVER, help=f"HTTP server ({DEFAULT_SERVER})"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=DEPLOYED_WEB_WORKERS,
        help=f"server worker processes ({DEPLOYED_WEB_WORKERS}, as deployed)",
    )
    parser.add_argument(
        "--server-threads",
        type=int,
        default=4,
        help="gthread threads / granian blocking threads per worker (4)",
    )
    parser.add_argument("--log-level", default="INFO", help="the platform's LOG_LEVEL (INFO: as deployed)")
    parser.add_argument(
        "--platform-settings",
        default="",
        help="DJANGO_SETTINGS_MODULE of the platform's server, to measure a variant (config.settings)",
    )
    parser.add_argument(
        "--compare-tree",
        type=Path,
        default=None,
        help="also serve the platform from this source tree (e.g. `git worktree add /tmp/old HEAD~3`) "
        "and measure its list and enrollment in the same rounds, beside this clone's",
    )
    parser.add_argument(
        "--db", default=DB_NAME, help=f"throwaway database, dropped and recreated ({DB_NAME})"
    )
    parser.add_argument("--redis-url", default=REDIS_URL, help=f"Redis db, flushed ({REDIS_URL})")
    parser.add_argument(
        "--broker-url", default=BROKER_URL, help="RabbitMQ (its queues are purged at the end)"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)} (bare is always run)",
    )
    parser.add_argument("--events", type=int, default=50, help="events seeded (50)")
    parser.add_argument(
        "--participants", type=int, default=30_000, help="participants, one enrollment each at most (30000)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    parser.add_argument("--keep-files", action="store_true", help="keep the work directory (logs, tokens)")
    args = parser.parse_args()
    if (
        min(
            args.rounds, args.duration, args.warmup, args.connections, args.threads, args.workers, args.events
        )
        < 1
    ):
        parser.error("durations and counts must be at least 1")
    if args.connections < args.threads:
        parser.error("wrk needs at least one connection per thread")
    if not args.threads * 100 <= args.participants < HOT_EVENT_CAPACITY:
        parser.error(f"--participants must be between {args.threads * 100} and {HOT_EVENT_CAPACITY - 1}")
    chosen = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}")
    args.scenarios = [name for name in SCENARIOS if name in chosen or name == "bare"]
    if args.compare_tree is not None:
        args.compare_tree = args.compare_tree.resolve()
        if not (args.compare_tree / "config" / "wsgi.py").is_file():
            parser.error(f"--compare-tree {args.compare_tree} is not a source tree of the platform")
    return args


def configure_benchmark_environment(args: argparse.Namespace, work_dir: Path) -> None:
    """The deployment's variables (bench/common.py), with what the load needs on top.

    As deployed: the request log at INFO and prometheus_client's multiprocess mode (several workers).
    """
    metrics_dir = work_dir / "prometheus"
    metrics_dir.mkdir()
    configure_environment(
        work_dir,
        db_name=args.db,
        redis_url=args.redis_url,
        # Production publishes side effects to RabbitMQ (the workers are other machines' work,
        # not started here; their queues are purged at the end).
        broker_url=args.broker_url,
        extra={
            **SERVER_UNDER_LOAD,
            "LOG_LEVEL": args.log_level,
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "WEB_WORKERS": str(args.workers),
        },
        unset=["JWT_SIGNING_KEY"],
    )


# --- Seed data --------------------------------------------------------------------------------------


@dataclass
class Seed:
    hot_event_id: int
    full_event_id: int
    reader_token: str  # a participant outside the enrollment pool, for the list scenario
    token_file: Path  # one access token per line, each of a different participant
    pool_size: int


def seed_events(count: int) -> tuple[int, int]:
    """Creates `count` upcoming events: the first is the hot one, with room for every request, the
    second the full one, whose one seat a participant of its own takes. Their ids."""
    from events import services
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
    events[1].title, events[1].capacity = "Full event", FULL_EVENT_CAPACITY
    Event.objects.bulk_create(events)
    (filler,) = create_participants(1, "filler")
    services.enroll(event_id=events[1].pk, participant_id=filler.pk)
    return events[0].pk, events[1].pk


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
    hot_event_id, full_event_id = seed_events(max(args.events, 2))
    token_file = work_dir / "tokens.txt"
    reader_token = seed_participants(args.participants, token_file)
    # The server has its own connections; this process keeps none open while it measures.
    connections.close_all()
    say(
        f"seeded {args.events} events and {args.participants + 1} participants with tokens "
        f"in {time.monotonic() - started:.1f} s"
    )
    return Seed(hot_event_id, full_event_id, reader_token, token_file, args.participants)


# --- Scenarios ------------------------------------------------------------------------------------


@dataclass
class ScenarioResult:
    """A scenario's wrk runs, one per round (the bare app has one more: the run after the last round)."""

    key: str
    label: str
    runs: list[WrkRun] = field(default_factory=list)
    warmups: list[WrkRun] = field(default_factory=list)
    # The server's CPU (master and workers) per answered request, in microseconds, per run.
    cpu_us: list[float] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """False when the token pool ran out: requests without a token measure the 401 path."""
        return all(run.exhausted == 0 for run in (*self.runs, *self.warmups))

    @property
    def rps(self) -> list[float]:
        return [run.rps for run in self.runs]

    def total(self, attribute: str) -> int:
        return sum(getattr(run, attribute) for run in self.runs)

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for run in self.runs:
            for status, number in run.statuses.items():
                counts[status] = counts.get(status, 0) + number
        return counts


def check_answers(port: int, path: str, token: str = "") -> None:
    """One request before the load: a scenario that answers errors would only measure the errors."""
    status, body = http_get(port, path, token)
    if status != 200:
        raise BenchError(f"GET {path} answered {status} before the load: {body[:500]!r}")


class Server:
    """A running server: its port, and the CPU its processes have used so far."""

    def __init__(self, port: int, process: subprocess.Popen[bytes]):
        self.port, self.session = port, process.pid

    def cpu_seconds(self) -> float:
        return session_cpu_seconds(self.session)


def measured(results: Sequence[ScenarioResult], server: Server, run: Callable[[], Sequence[WrkRun]]) -> None:
    """Runs `run` (one wrk run per result, at the same time) and records each run with the server's
    CPU per answered request, shared out over all the runs' answers alike."""
    before = server.cpu_seconds()
    runs = run()
    used = server.cpu_seconds() - before
    answered = sum(done.requests for done in runs)
    for result, done in zip(results, runs, strict=True):
        result.runs.append(done)
        result.cpu_us.append(used / answered * 1e6 if answered else 0.0)


def measure_fixed(
    wrk: str, args: argparse.Namespace, result: ScenarioResult, server: Server, path: str, token: str = ""
) -> None:
    check_answers(server.port, path, token)
    url = f"http://{HOST}:{server.port}{path}"
    script_args = ["fixed", "GET", token]
    result.warmups.append(run_wrk(wrk, args.threads, args.connections, url, args.warmup, script_args))
    measured(
        [result],
        server,
        lambda: [run_wrk(wrk, args.threads, args.connections, url, args.duration, script_args)],
    )


class TokenPool:
    """Hands out disjoint ranges of the token file, in proportion to the seconds each wrk run lasts,
    so that every run of the enrollment and full-event scenarios, warm-ups included, gets participants
    of its own (a token seen before would be verified from the process's memory of tokens)."""

    def __init__(self, seed: Seed, total_seconds: int):
        self.seed, self.total_seconds, self.next = seed, total_seconds, 1

    def take(self, seconds: int) -> tuple[int, int]:
        count = self.seed.pool_size * seconds // self.total_seconds
        first, self.next = self.next, self.next + count
        return first, count


def pool_args(seed: Seed, first: int, count: int, threads: int) -> list[str]:
    """wrk_scenario.lua's arguments for a POST per participant of tokens first .. first+count-1."""
    return ["token-pool", "POST", str(seed.token_file), str(first), str(count), str(threads)]


def measure_enrollment(
    wrk: str,
    args: argparse.Namespace,
    result: ScenarioResult,
    server: Server,
    seed: Seed,
    pool: TokenPool,
    *,
    full: bool = False,
) -> None:
    """POSTs to the hot event (201 each), or to the full one (`full`: 409 each), each request as a
    participant never seen before in this run."""
    event_id, expected = (seed.full_event_id, 409) if full else (seed.hot_event_id, 201)
    url = f"http://{HOST}:{server.port}/api/v1/events/{event_id}/enrollments/"
    warmup_args = pool_args(seed, *pool.take(args.warmup), args.threads)
    warmup = run_wrk(wrk, args.threads, args.connections, url, args.warmup, warmup_args)
    if warmup.count(expected) == 0:
        raise BenchError(f"no {expected} answer during the warm-up; statuses: {warmup.statuses}")
    result.warmups.append(warmup)
    run_args = pool_args(seed, *pool.take(args.duration), args.threads)
    measured(
        [result], server, lambda: [run_wrk(wrk, args.threads, args.connections, url, args.duration, run_args)]
    )


def measure_mixed(
    wrk: str,
    args: argparse.Namespace,
    reads: ScenarioResult,
    enrollments: ScenarioResult,
    server: Server,
    seed: Seed,
    pool: TokenPool,
) -> None:
    """The event list and enrollments into the hot event at the same time, each with half the
    connections: what a rush does to the reads beside it (every enrollment replaces the cache's
    seats token, so each read refreshes its answer's seats). The server's CPU is shared out over
    both scenarios' answers alike."""
    check_answers(server.port, "/api/v1/events/", seed.reader_token)
    threads = max(1, args.threads // 2)
    connections = max(threads, args.connections // 2)
    list_url = f"http://{HOST}:{server.port}/api/v1/events/"
    enroll_url = f"http://{HOST}:{server.port}/api/v1/events/{seed.hot_event_id}/enrollments/"
    read_args = ["fixed", "GET", seed.reader_token]

    def both(seconds: int) -> tuple[WrkRun, WrkRun]:
        enroll_args = pool_args(seed, *pool.take(seconds), threads)
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as running:
            read = running.submit(run_wrk, wrk, threads, connections, list_url, seconds, read_args)
            enroll = running.submit(run_wrk, wrk, threads, connections, enroll_url, seconds, enroll_args)
            return read.result(), enroll.result()

    for result, warmup in zip((reads, enrollments), both(args.warmup), strict=True):
        result.warmups.append(warmup)
    measured([reads, enrollments], server, lambda: both(args.duration))


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


def check_seats(hot_event_id: int, *enrollments: ScenarioResult) -> SeatCheck:
    """`enrollments`: every scenario that enrolled into the hot event (this clone's, the compared
    tree's, the mixed scenario's)."""
    from django.db.models import Count, F

    from events.models import Enrollment, Event

    hot = Event.objects.get(pk=hot_event_id)
    runs = [run for enrollment in enrollments for run in (*enrollment.warmups, *enrollment.runs)]
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


def bare_references(results: dict[str, ScenarioResult]) -> list[float]:
    """Round r's denominator: the mean of the bare app's runs just before and just after round r."""
    bare = results["bare"].rps
    return [(bare[index] + bare[index + 1]) / 2 for index in range(len(bare) - 1)]


def round_ratios(results: dict[str, ScenarioResult], key: str, to: str) -> list[float]:
    """The scenario's req/s over the bare app's (`to="bare"`) or /health/live's, round by round."""
    if to == "bare":
        references = bare_references(results)
    elif to in results:
        references = results[to].rps
    else:
        return []
    return [rps / ref if ref else 0.0 for rps, ref in zip(results[key].rps, references, strict=False)]


@dataclass
class Figure:
    rps: float  # median over the rounds
    to_bare: float  # median of the rounds' ratios
    to_bare_range: tuple[float, float]
    to_live: float | None


def figure(results: dict[str, ScenarioResult], key: str) -> Figure:
    to_bare = round_ratios(results, key, "bare")
    to_live = round_ratios(results, key, "live")
    rps = results[key].rps[: len(to_bare)] if key == "bare" else results[key].rps
    return Figure(
        rps=statistics.median(rps),
        to_bare=statistics.median(to_bare),
        to_bare_range=(min(to_bare), max(to_bare)),
        to_live=statistics.median(to_live) if to_live else None,
    )


def mixed_shares(results: dict[str, ScenarioResult]) -> dict[str, float]:
    """What the mixed scenario's reads and enrollments kept of their rate alone: the median over the
    rounds of each round's req/s beside each other over the same round's req/s alone ("reads":
    mixed / list, "enrollments": mixed@enroll / enroll; whichever was measured)."""
    shares: dict[str, float] = {}
    pairs = {"reads": ("mixed", "list"), "enrollments": (MIXED_ENROLL, "enroll")}
    for name, (beside, alone) in pairs.items():
        if beside in results and alone in results:
            rounds = zip(results[beside].rps, results[alone].rps, strict=False)
            shares[name] = statistics.median(b / a if a else 0.0 for b, a in rounds)
    return shares


def mixed_read_cpu_us(results: dict[str, ScenarioResult]) -> float | None:
    """The server's CPU per read beside the enrollments, estimated: the median over the rounds of
    the mixed runs' CPU less their enrollments' at the CPU each cost alone in the same round
    (`enroll`), over the reads. None unless both were measured.

    The mixed scenario's two rates cannot tell what a read costs: every connection waits for its
    answer and the workers take requests in the order they come, so reads and enrollments are
    served at about the same rate whatever each costs."""
    if "mixed" not in results or "enroll" not in results:
        return None
    estimates = []
    rounds = zip(
        results["mixed"].runs,
        results[MIXED_ENROLL].runs,
        results["mixed"].cpu_us,
        results["enroll"].cpu_us,
        strict=False,
    )
    for reads, enrollments, cpu_each, enrollment_alone in rounds:
        if reads.requests:
            spent = cpu_each * (reads.requests + enrollments.requests)
            estimates.append((spent - enrollment_alone * enrollments.requests) / reads.requests)
    return statistics.median(estimates) if estimates else None


def verdicts(results: dict[str, ScenarioResult], seats: SeatCheck | None) -> dict[str, dict[str, Any]]:
    """Each target: the median ratio to bare over the rounds, the target, and PASS/FAIL."""
    out: dict[str, dict[str, Any]] = {}
    for key, target in TARGETS.items():
        if key not in results:
            continue
        result, value = results[key], figure(results, key)
        five_xx = sum(run.server_errors for run in (*result.runs, *result.warmups))
        outcome: dict[str, Any] = {
            "ratio": round(value.to_bare, 3),
            "range": [round(value.to_bare_range[0], 3), round(value.to_bare_range[1], 3)],
            "target": target,
            "5xx": five_xx,
            "valid": result.valid,
        }
        passed = value.to_bare >= target and five_xx == 0
        if key == "enroll":
            outcome["seats_ok"] = seats is not None and seats.passed
            passed = passed and outcome["seats_ok"]
        outcome["passed"] = passed
        out[key] = outcome
    return out


def report_data(
    results: dict[str, ScenarioResult], seats: SeatCheck | None, log: ServerLog, setup: dict[str, Any]
) -> dict[str, Any]:
    scenarios = {}
    for key, result in results.items():
        value = figure(results, key)
        scenarios[key] = {
            "label": result.label,
            "rps_median": round(value.rps, 1),
            "rps_per_round": [round(rps, 1) for rps in result.rps],
            "ratio_to_bare": round(value.to_bare, 3),
            "ratio_to_bare_per_round": [round(r, 3) for r in round_ratios(results, key, "bare")],
            "ratio_to_live": round(value.to_live, 3) if value.to_live is not None else None,
            "server_cpu_us_per_request": [round(cpu, 1) for cpu in result.cpu_us],
            "non_2xx": sum(run.non_2xx for run in result.runs),
            "5xx": sum(run.server_errors for run in result.runs),
            "valid": result.valid,
            "runs": [asdict(run) for run in result.runs],
            "warmups": [asdict(run) for run in result.warmups],
        }
    checks: dict[str, Any] | None = None
    if seats is not None:
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
        "targets": verdicts(results, seats),
        "mixed_kept_of_alone": {name: round(share, 3) for name, share in mixed_shares(results).items()},
        "mixed_read_cpu_us": mixed_read_cpu_us(results),
        "seats": checks,
        "server_log": asdict(log),
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_table(
    results: dict[str, ScenarioResult], seats: SeatCheck | None, log: ServerLog, setup: dict[str, Any]
) -> None:
    print()
    print(
        "Setup: "
        + ", ".join(f"{key} {value}" for key, value in setup.items() if key not in ("participants", "events"))
    )
    print(f"Data: {setup['events']} events, {setup['participants']} participants with a token each")
    print()
    width = max(len(result.label) for result in results.values())
    columns = ("req/s", "x bare", "x live", "cpu us", "p50 ms", "p99 ms", "non-2xx", "5xx", "sock err")
    header = f"{'scenario':<{width}} " + " ".join(f"{column:>8}" for column in columns)
    print(header)
    print("-" * len(header))
    for key, result in results.items():
        value = figure(results, key)
        runs = result.runs
        live_text = f"{value.to_live:>8.3f}" if value.to_live is not None else f"{'-':>8}"
        p50 = statistics.median(run.p50_ms for run in runs)
        p99 = statistics.median(run.p99_ms for run in runs)
        socket_errors = sum(sum(run.socket_errors.values()) for run in runs)
        cpu = statistics.median(result.cpu_us)
        print(
            f"{result.label:<{width}} {value.rps:>8.1f} {value.to_bare:>8.3f} {live_text} {cpu:>8.0f} "
            f"{p50:>8.2f} {p99:>8.2f} {result.total('non_2xx'):>8} {result.total('server_errors'):>8} "
            f"{socket_errors:>8}"
        )
    print()
    print(
        "Round by round (req/s; the ratio divides by the mean of the bare runs before and after the round):"
    )
    for key, result in results.items():
        per_round = "  ".join(f"{rps:8.1f}" for rps in result.rps)
        ratios = "  ".join(f"{ratio:.3f}" for ratio in round_ratios(results, key, "bare"))
        print(f"  {key:<12} {per_round}   x bare: {ratios}")
    for key, result in results.items():
        statuses = {status: count for status, count in result.statuses().items() if not 200 <= status < 300}
        if statuses:
            print(f"  {key}: non-2xx answers by status {statuses}")
    print()
    names = {"list": "event list / bare", "enroll": "enrollment / bare"}
    for key, outcome in verdicts(results, seats).items():
        low, high = outcome["range"]
        extra = f" (rounds {low:.3f}-{high:.3f})  5xx {outcome['5xx']}"
        if key == "enroll":
            extra += f", seats {'ok' if outcome['seats_ok'] else 'WRONG'}"
        text = verdict(outcome["passed"]) if outcome["valid"] else "INVALID (the token pool ran out)"
        print(f"{names[key]:<25} {outcome['ratio']:>6.3f}  target >= {outcome['target']:<4}{extra}  {text}")
    if "full" in results:  # no target of its own: a refusal should cost no more than an enrollment
        value = figure(results, "full")
        low, high = value.to_bare_range
        rounds = f"(rounds {low:.3f}-{high:.3f})"
        print(f"{'full-event refusal / bare':<25} {value.to_bare:>6.3f}  {rounds}, no target")
    # No target either: what a rush on a direct event leaves of the reads beside it, and they of it.
    for name, share in mixed_shares(results).items():
        label = f"mixed {name} / alone"
        print(f"{label:<25} {share:>6.3f}  (each round's req/s beside each other), no target")
    read_cpu = mixed_read_cpu_us(results)
    if read_cpu is not None:
        print(
            f"{'mixed read, server CPU':<25} {read_cpu:>6.0f}  us each (estimated: the mixed runs' CPU less"
            " their enrollments' at their cost alone), no target"
        )
    if seats is not None:
        print()
        print(f"Seats of the hot event (capacity {seats.capacity}):")
        print(
            f"  enrolled_count {seats.enrolled_count} == enrollment rows {seats.enrollment_rows}: "
            f"{verdict(seats.counter_matches_rows)}"
        )
        extra_rows = seats.enrollment_rows - seats.created_responses
        print(
            f"  enrollment rows {seats.enrollment_rows} == 201 answers {seats.created_responses} "
            f"(+{extra_rows} done for requests cut off when wrk stopped, at most "
            f"{seats.unanswered_requests}): {verdict(seats.rows_match_responses)}"
        )
        print(
            f"  no overbooking (hot event {seats.enrolled_count} <= {seats.capacity}, "
            f"{seats.events_overbooked} events over capacity): {verdict(seats.no_overbooking)}"
        )
        print(f"  events whose counter differs from their rows: {seats.events_miscounted}")
    print()
    levels = ", ".join(f"{level} {count}" for level, count in sorted(log.lines_by_level.items())) or "empty"
    print(f"Platform log ({log.path}): {levels}")
    for count, message in log.notable:
        print(f"  {count:>6} x {message}")


# --- Main -----------------------------------------------------------------------------------------------


LABELS = {
    "bare": "bare Django view (bench/bare)",
    "live": "platform GET /health/live",
    "list": "GET /api/v1/events/ (auth, cached)",
    "enroll": "POST /api/v1/events/<hot>/enrollments/ (new user each)",
    "full": "POST /api/v1/events/<full>/enrollments/ (full: 409, new user each)",
    "mixed": "GET /api/v1/events/ during enrollments (half the connections)",
    MIXED_ENROLL: "POST /api/v1/events/<hot>/enrollments/ during reads (the other half)",
}
# The scenarios also measured on the platform served from --compare-tree, under these keys.
COMPARED = {"list": "list@cmp", "enroll": "enroll@cmp"}


def run_benchmark(args: argparse.Namespace, work_dir: Path) -> int:
    configure_benchmark_environment(args, work_dir)
    wrk = ensure_wrk()
    say(f"recreating database {args.db} and flushing {args.redis_url}")
    threads = "" if args.server == "gunicorn-sync" else f", {args.server_threads} threads each"
    setup: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "server": f"{args.server}, {args.workers} workers{threads} (bare app and platform alike)",
        "log level": args.log_level,
        "platform settings": args.platform_settings or "config.settings",
        "wrk": f"{args.threads} threads, {args.connections} connections, {args.rounds} rounds of "
        f"{args.duration} s (+{args.warmup} s warm-up) per scenario",
        "PostgreSQL": recreate_database(args.db),
        "Redis": flush_redis(args.redis_url),
        "Python": platform.python_version(),
        "wrk version": wrk_version(wrk),
        "events": args.events,
        "participants": args.participants,
    }
    say("migrating")
    run_migrations()
    setup_django()
    seeded = seed(args, work_dir)

    bare_port, port = free_port(), free_port()
    bare_log, log_path = work_dir / "bare.log", work_dir / "platform.log"
    say(f"starting the bare app and the platform ({args.server}, {args.workers} workers{threads})")
    results = {key: ScenarioResult(key, LABELS[key]) for key in args.scenarios}
    if "mixed" in results:
        results[MIXED_ENROLL] = ScenarioResult(MIXED_ENROLL, LABELS[MIXED_ENROLL])
    compared = [key for key in args.scenarios if key in COMPARED] if args.compare_tree else []
    for key in compared:
        results[COMPARED[key]] = ScenarioResult(COMPARED[key], f"{LABELS[key]} [compared tree]")
    bare_command = server_command(args.server, BARE_APP, bare_port, args.workers, args.server_threads)
    command = server_command(args.server, PLATFORM_APP, port, args.workers, args.server_threads)
    platform_env = {"DJANGO_SETTINGS_MODULE": args.platform_settings} if args.platform_settings else None
    pool_runs = sum(1 + (key in compared) for key in args.scenarios if key in POOL_SCENARIOS)
    pool = TokenPool(seeded, args.rounds * (args.warmup + args.duration) * max(pool_runs, 1))
    # All run for the whole measure; those not under load are idle. The scenarios take turns,
    # round after round, so that a change in the machine's load weighs on all of them alike.
    with contextlib.ExitStack() as servers:
        bare_process = servers.enter_context(running_server("bare app", bare_command, bare_port, bare_log))
        platform_process = servers.enter_context(
            running_server("platform", command, port, log_path, platform_env)
        )
        bare_server, server = Server(bare_port, bare_process), Server(port, platform_process)
        other: Server | None = None
        if compared:
            other_port = free_port()
            other_command = server_command(
                args.server, PLATFORM_APP, other_port, args.workers, args.server_threads
            )
            other_process = servers.enter_context(
                running_server(
                    "compared platform",
                    other_command,
                    other_port,
                    work_dir / "compared.log",
                    platform_env,
                    cwd=args.compare_tree,
                )
            )
            other = Server(other_port, other_process)
        for number in range(1, args.rounds + 1):
            say(f"round {number}/{args.rounds}: {', '.join(results)} ({args.duration} s each)")
            for key in args.scenarios:
                # Which of the two platforms goes first alternates from round to round.
                targets = [(results[key], server)]
                if other is not None and key in compared:
                    pair = [(results[key], server), (results[COMPARED[key]], other)]
                    targets = pair if number % 2 else pair[::-1]
                for result, target in targets:
                    if key == "bare":
                        measure_fixed(wrk, args, result, bare_server, "/bare")
                    elif key == "live":
                        measure_fixed(wrk, args, result, target, "/health/live")
                    elif key == "list":
                        measure_fixed(wrk, args, result, target, "/api/v1/events/", seeded.reader_token)
                    elif key == "enroll":
                        measure_enrollment(wrk, args, result, target, seeded, pool)
                    elif key == "full":
                        measure_enrollment(wrk, args, result, target, seeded, pool, full=True)
                    elif key == "mixed":
                        measure_mixed(wrk, args, result, results[MIXED_ENROLL], target, seeded, pool)
        say("the bare app once more, after the last round")
        measure_fixed(wrk, args, results["bare"], bare_server, "/bare")
    say("servers stopped; purging the benchmark's messages from RabbitMQ")
    purge_queues()
    seats = None
    for result in results.values():
        result.label = result.label.replace("<hot>", str(seeded.hot_event_id))
        result.label = result.label.replace("<full>", str(seeded.full_event_id))
    if any(key in results for key in POOL_SCENARIOS):
        say("checking the seats in the database")
        seats = check_seats(
            seeded.hot_event_id,
            *(results[key] for key in ("enroll", "enroll@cmp", MIXED_ENROLL) if key in results),
        )
    log = read_server_log(log_path)
    if not args.keep_files:
        log.path = f"{log_path}, removed at exit: --keep-files keeps it"

    if compared:
        setup["compared tree"] = str(args.compare_tree)
    if args.json:
        print(json.dumps(report_data(results, seats, log, setup), indent=2))
    else:
        print_table(results, seats, log, setup)

    if not all(result.valid for result in results.values()):
        exhausted = sum(
            run.exhausted for result in results.values() for run in (*result.runs, *result.warmups)
        )
        say(
            f"INVALID RUN: the token pool ran out ({exhausted} requests had no unused participant); "
            "rerun with a larger --participants"
        )
        return 1
    return 0


def main() -> int:
    args = parse_args()
    # The servers are stopped on the way out, also on Ctrl-C or a `kill`.
    return run_in_work_dir(
        lambda work_dir: run_benchmark(args, work_dir),
        prefix="http-bench-",
        keep_files=args.keep_files,
        errors=(psycopg.Error, redis.RedisError),
        say=say,
    )


if __name__ == "__main__":
    sys.exit(main())
