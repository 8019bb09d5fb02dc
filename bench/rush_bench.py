"""Rush benchmark: 5,000 distinct participants enroll at once in a queued event of 500 seats.

From the root of a clean clone (after `make .venv/.dev-installed`):

    .venv/bin/python bench/rush_bench.py           # progress on stderr, the table on stdout
    .venv/bin/python bench/rush_bench.py --json    # the same figures as one JSON document

It runs the platform as deployed for a rush: the web server (the same server and worker count as
the bare reference app, bench/bare), the admission consumer (`celery -A config worker -Q admissions
--concurrency 1`) and the outbox relay (`manage.py relay_outbox`), on PostgreSQL, Redis and
RabbitMQ. One event of `--capacity` seats is switched to `admission: "queue"` by an admin
(`PATCH /api/v1/events/{id}/`), then wrk POSTs `/api/v1/events/{id}/enrollments/` once for each of
`--participants` participants (each its own token), as fast as the server takes them.

Measured, and checked against the targets:
- accepting: the requests answered 202 per second (server side: from the first to the last
  `queued_at`), as a ratio to the bare app's req/s in the same run (target >= 0.30);
- the last decision's `decided_at` after the last `queued_at` (target <= 2 s);
- exactly `capacity` confirmed, and they are the earliest `queued_at`; everyone else waitlisted at
  positions 1..n in `queued_at` order (read through the API: each participant's
  `GET .../enrollments/me/`, the admin's participants and waiting-list pages, the event's counts);
- no 5xx, every POST answered 202.

The exit code is non-zero only when the benchmark could not run; a missed target prints FAIL.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
from common import (
    DEPLOYED_WEB_WORKERS,
    HOST,
    REPO,
    SERVER_UNDER_LOAD,
    SERVERS,
    VENV_BIN,
    BenchError,
    CpuSnapshot,
    configure_environment,
    cpu_split,
    create_participants,
    flush_redis,
    free_port,
    purge_queues,
    read_server_log,
    recreate_database,
    run_in_work_dir,
    run_migrations,
    running_server,
    say,
    server_command,
    setup_django,
    stop,
)
from wrkrun import BURST_SCRIPT, WrkRun, ensure_wrk, run_wrk, run_wrk_until, wrk_version

DB_NAME = os.environ.get("BENCH_DB", "bench_rush")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
BARE_APP = "bench.bare.wsgi:application"
PLATFORM_APP = "config.wsgi:application"

ACCEPT_TARGET = 0.30  # accepted req/s over the bare app's
DECISION_LAG_TARGET_S = 2.0  # last decided_at - last queued_at
WARMUP_PARTICIPANTS = 300
WARMUP_CAPACITY = 30
VENV_PY_SPY = Path(sys.executable).parent / "py-spy"
THIS_TREE, COMPARED_TREE = "this clone", "compared tree"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--participants", type=int, default=5000, help="participants in the rush (5000)")
    parser.add_argument("--capacity", type=int, default=500, help="seats of the queued event (500)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="wrk threads (1): with more, the first thread through its tokens stops with its connections "
        "open, and every sync worker that answered one waits 2 s for it to close (gunicorn's lingering "
        "close), holding the other threads' last requests back",
    )
    parser.add_argument(
        "--server", choices=SERVERS, default="gunicorn-sync", help="HTTP server (gunicorn-sync)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=DEPLOYED_WEB_WORKERS,
        help=f"server worker processes ({DEPLOYED_WEB_WORKERS}, as deployed)",
    )
    parser.add_argument(
        "--server-threads", type=int, default=4, help="gthread/granian threads per worker (4)"
    )
    parser.add_argument(
        "--bare-seconds", type=int, default=5, help="each bare measure, before and after each rush (5)"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="rushes per platform, each on an event of its own (1)"
    )
    parser.add_argument(
        "--compare-tree",
        type=Path,
        default=None,
        help="also serve the platform from this source tree (e.g. `git worktree add /tmp/old HEAD~3`) and "
        "rush it in the same run, the two taking turns (the order alternating from round to round)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="record each of this clone's platform workers with py-spy (beside this Python; idle samples "
        "included, so waits show) during its rushes, as collapsed stacks in this directory",
    )
    parser.add_argument(
        "--profile-cpu",
        action="store_true",
        help="with --profile: on-CPU samples only (where the CPU goes, rather than the wall time)",
    )
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds allowed for the rush (180)")
    parser.add_argument("--db", default=DB_NAME, help=f"throwaway database ({DB_NAME})")
    parser.add_argument("--redis-url", default=REDIS_URL, help=f"Redis db, flushed ({REDIS_URL})")
    parser.add_argument(
        "--broker-url", default=BROKER_URL, help="RabbitMQ (its queues are purged at the end)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    parser.add_argument("--keep-files", action="store_true", help="keep the work directory (logs, tokens)")
    args = parser.parse_args()
    if args.participants < args.threads or not args.capacity >= 1 or args.rounds < 1:
        parser.error("at least one participant per wrk thread, one seat and one round")
    if args.compare_tree is not None:
        args.compare_tree = args.compare_tree.resolve()
        if not (args.compare_tree / "config" / "wsgi.py").is_file():
            parser.error(f"--compare-tree {args.compare_tree} is not a source tree of the platform")
    if args.profile is not None:
        args.profile = args.profile.resolve()
        if not VENV_PY_SPY.is_file():
            parser.error(f"--profile needs py-spy: {VENV_PY_SPY.parent}/pip install py-spy")
    return args


def configure(args: argparse.Namespace, work_dir: Path) -> None:
    metrics_dir = work_dir / "prometheus"
    metrics_dir.mkdir()
    configure_environment(
        work_dir,
        db_name=args.db,
        redis_url=args.redis_url,
        broker_url=args.broker_url,
        extra={
            **SERVER_UNDER_LOAD,
            "LOG_LEVEL": "INFO",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "WEB_WORKERS": str(args.workers),
        },
        unset=["JWT_SIGNING_KEY"],
    )


# --- Seed data --------------------------------------------------------------------------------------


@dataclass
class Seed:
    admin_token: str
    rush_event_ids: list[int]  # one per rush, in the order they run
    warmup_event_ids: list[int]  # one per platform
    token_file: Path  # the rush's participants, one token a line
    warmup_token_file: Path
    participants: list[tuple[int, str]]  # (participant id, token) of the rush, in token-file order


def seed(args: argparse.Namespace, work_dir: Path, rushes: int, platforms: int) -> Seed:
    """An admin, `rushes` rush events and one warm-up event per platform; the participants (the same
    ones rush every event: a request is per event and participant)."""
    from django.contrib.auth.hashers import make_password
    from django.db import connections
    from rest_framework_simplejwt.tokens import AccessToken

    from events.models import Event
    from participants.models import User

    started = time.monotonic()
    admin = User.objects.create(
        email="admin@bench.example", full_name="Bench admin", is_staff=True, password=make_password(None)
    )
    day = dt.date.today() + dt.timedelta(days=30)
    plan = [(f"Rush {n + 1}", args.capacity) for n in range(rushes)]
    plan += [(f"Warm-up {n + 1}", WARMUP_CAPACITY) for n in range(platforms)]
    events = [
        Event(title=title, description="bench/rush_bench.py", date=day, time=dt.time(10), location="Hall",
              capacity=capacity)
        for title, capacity in plan
    ]  # fmt: skip
    Event.objects.bulk_create(events)
    users = create_participants(args.participants + WARMUP_PARTICIPANTS, "rush")
    rush, warm = users[: args.participants], users[args.participants :]
    # Tokens minted in-process (no sign-in per participant): one signature each.
    participants = [(user.pk, str(AccessToken.for_user(user))) for user in rush]
    token_file, warmup_token_file = work_dir / "tokens.txt", work_dir / "warmup-tokens.txt"
    token_file.write_text("".join(f"{token}\n" for _, token in participants))
    warmup_token_file.write_text("".join(f"{AccessToken.for_user(user)}\n" for user in warm))
    connections.close_all()
    say(
        f"seeded {len(events)} events and {len(users)} participants with tokens in "
        f"{time.monotonic() - started:.1f} s"
    )
    return Seed(
        str(AccessToken.for_user(admin)),
        [event.pk for event in events[:rushes]],
        [event.pk for event in events[rushes:]],
        token_file,
        warmup_token_file,
        participants,
    )


# --- HTTP helpers -------------------------------------------------------------------------------------


def request(port: int, method: str, path: str, token: str, body: dict[str, Any] | None = None) -> Any:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {token}"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        data = response.read()
        if response.status >= 300:
            raise BenchError(f"{method} {path} answered {response.status}: {data[:300]!r}")
        return json.loads(data) if data else None
    finally:
        connection.close()


def pages(port: int, path: str, token: str) -> list[dict[str, Any]]:
    """Every item of a paginated admin list, in the API's order."""
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        data = request(port, "GET", f"{path}?page={page}&page_size=100", token)
        items.extend(data["results"])
        if not data.get("next"):
            return items
        page += 1


# --- Progress of the rush, from the database -------------------------------------------------------


class QueueWatch:
    """Counts the event's requests and decisions while wrk runs (every 50 ms), without counting all
    the event's rows each time: that cost PostgreSQL 16 ms at 40,000 requests, a third of a core
    taken from the platform under test at 20 polls a second.

    Each poll counts the rows above the highest id seen so far (a range of the primary key) and the
    event's pending requests (a partial index, whose entries of decided rows it still walks until
    they are cleaned up: 0.5 ms at 40,000); the decided ones are the difference. A request
    committed after one with a higher id that a poll has seen is not above that id any more, so
    when a poll finds no new row the event's rows are counted once in full. Neither count can
    exceed the truth, so "all queued" and "all decided" are never reported early."""

    def __init__(self, db_url: str, event_id: int):
        from events.domain import RequestStatus
        from events.models import AdmissionRequest

        self.table = AdmissionRequest._meta.db_table
        self.pending = str(RequestStatus.PENDING)
        self.event_id = event_id
        self.connection = psycopg.connect(db_url, autocommit=True)
        self.queued, self.top_id = 0, 0
        self.recount()

    def recount(self) -> None:
        """Counts the event's rows in full, and sets the id above which to count from now on."""
        row = self.connection.execute(
            f"SELECT count(*) FILTER (WHERE event_id = %s), coalesce(max(id), 0) FROM {self.table}",  # noqa: S608
            (self.event_id,),
        ).fetchone()
        if row:
            self.queued, self.top_id = int(row[0]), int(row[1])
        self.recounted = True

    def counts(self) -> tuple[int, int]:
        row = self.connection.execute(
            f"SELECT count(*) FILTER (WHERE event_id = %s), max(id), (SELECT count(*) FROM {self.table}"  # noqa: S608
            f" WHERE event_id = %s AND status = %s) FROM {self.table} WHERE id > %s",
            (self.event_id, self.event_id, self.pending, self.top_id),
        ).fetchone()
        new, top_id, pending = row if row else (0, None, 0)
        if top_id is not None:
            self.queued += int(new)
            self.top_id = int(top_id)
            self.recounted = False
        elif not self.recounted:
            self.recount()
        return self.queued, max(self.queued - int(pending), 0)

    def ids_by_participant(self) -> dict[int, int]:
        rows = self.connection.execute(
            f"SELECT participant_id, id FROM {self.table} WHERE event_id = %s",  # noqa: S608
            (self.event_id,),
        ).fetchall()
        return {int(participant): int(request_id) for participant, request_id in rows}

    def close(self) -> None:
        self.connection.close()


@dataclass
class Progress:
    all_queued_after_s: float | None = None  # from wrk's start, as polled
    all_decided_after_s: float | None = None
    timeline: list[tuple[float, int, int]] = field(default_factory=list)  # (s, queued, decided)
    # Each role's CPU from wrk's start until all were seen queued, in percent of one core (cpu_split).
    burst_cpu: dict[str, float] = field(default_factory=dict)


def run_rush(
    wrk: str,
    args: argparse.Namespace,
    port: int,
    event_id: int,
    token_file: Path,
    count: int,
    watch: QueueWatch,
    role: Callable[[int, int, str], str] | None = None,
) -> tuple[WrkRun, Progress]:
    """One burst of `count` POSTs (each with its own token), then waits until all are decided.
    `role`: names each process's role for the burst's CPU split (`Progress.burst_cpu`)."""
    url = f"http://{HOST}:{port}/api/v1/events/{event_id}/enrollments/"
    script = ["POST", str(token_file), "1", str(count), str(args.threads)]
    progress = Progress()
    cpu_before = CpuSnapshot.take() if role is not None else None
    started = time.monotonic()

    def poll() -> tuple[int, int]:
        queued, decided = watch.counts()
        now = time.monotonic() - started
        progress.timeline.append((round(now, 3), queued, decided))
        if queued >= count and progress.all_queued_after_s is None:
            progress.all_queued_after_s = now
            if cpu_before is not None and role is not None:
                progress.burst_cpu = cpu_split(cpu_before, CpuSnapshot.take(), role)
        if decided >= count and progress.all_decided_after_s is None:
            progress.all_decided_after_s = now
        return queued, decided

    def burst_done() -> bool:
        # Every request is in: wrk is stopped a moment later, so that the answers on their way
        # (at most one per connection) reach it before it stops counting.
        poll()
        reached = progress.all_queued_after_s
        return reached is not None and time.monotonic() - started - reached >= 0.5

    run = run_wrk_until(
        wrk,
        args.threads,
        args.connections,
        url,
        script,
        done=burst_done,
        timeout=args.timeout,
        poll=0.05,
        script=BURST_SCRIPT,
    )
    deadline = started + args.timeout
    while progress.all_decided_after_s is None and time.monotonic() < deadline:
        poll()
        time.sleep(0.05)
    return run, progress


# --- Checks -------------------------------------------------------------------------------------------


_LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)


def parse_time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


@dataclass
class RushCheck:
    answered_202: int
    server_errors: int
    other_statuses: dict[int, int]
    states: dict[str, int]  # status -> participants (from each participant's enrollments/me/)
    enrolled_count: int
    waitlist_count: int
    confirmed_are_earliest: bool
    positions_are_1_to_n: bool
    positions_follow_queued_at: bool
    admin_participants: int  # rows of GET /events/{id}/participants/
    admin_lists_agree: bool  # the admin's participants and waiting list match the per-participant answers
    accept_window_s: float
    accept_rate: float
    decision_lag_s: float  # last decided_at - last queued_at
    queued_at_vs_id_inversions: int  # participants whose rank by queued_at differs from their rank by id


def check(
    port: int, seed: Seed, event_id: int, args: argparse.Namespace, run: WrkRun, watch: QueueWatch
) -> RushCheck:
    event_path = f"/api/v1/events/{event_id}/"

    def mine(item: tuple[int, str]) -> tuple[int, dict[str, Any]]:
        participant_id, token = item
        return participant_id, request(port, "GET", f"{event_path}enrollments/me/", token)

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        answers = dict(pool.map(mine, seed.participants))
    states: dict[str, int] = {}
    for answer in answers.values():
        states[answer["status"]] = states.get(answer["status"], 0) + 1
    queued = {pid: parse_time(a["queued_at"]) for pid, a in answers.items()}
    decided = [t for a in answers.values() if (t := parse_time(a.get("decided_at")))]
    stamp = {pid: t or _LATEST for pid, t in queued.items()}  # (a missing queued_at sorts last)
    by_queued_at = sorted(answers, key=lambda pid: (queued[pid] or _LATEST, pid))
    confirmed = {pid for pid, a in answers.items() if a["status"] == "confirmed"}
    waitlisted = sorted(
        (pid for pid, a in answers.items() if a["status"] == "waitlisted"),
        key=lambda pid: answers[pid]["position"],
    )
    positions = [answers[pid]["position"] for pid in waitlisted]

    event = request(port, "GET", event_path, seed.admin_token)
    admin_participants = pages(port, f"{event_path}participants/", seed.admin_token)
    admin_waitlist = pages(port, f"{event_path}waitlist/", seed.admin_token)
    admin_lists_agree = {p["id"] for p in admin_participants} == confirmed and [
        (entry["participant"]["id"], entry["position"]) for entry in admin_waitlist
    ] == [(pid, answers[pid]["position"]) for pid in waitlisted]

    times = [t for t in queued.values() if t is not None]
    window = (max(times) - min(times)).total_seconds() if times else 0.0
    ids = watch.ids_by_participant()
    by_id = sorted(ids, key=ids.__getitem__)
    rank_by_id = {pid: rank for rank, pid in enumerate(by_id)}
    inversions = sum(1 for rank, pid in enumerate(by_queued_at) if rank_by_id.get(pid) != rank)
    return RushCheck(
        answered_202=run.count(202),
        server_errors=run.server_errors,
        other_statuses={s: c for s, c in run.statuses.items() if s not in (200, 202)},
        states=states,
        enrolled_count=int(event["enrolled_count"]),
        waitlist_count=int(event.get("waitlist_count", -1)),
        # Requests stamped in the same microsecond are simultaneous: either order is fair.
        confirmed_are_earliest=len(confirmed) == args.capacity
        and max(stamp[pid] for pid in confirmed) <= min((stamp[pid] for pid in waitlisted), default=_LATEST),
        positions_are_1_to_n=positions == list(range(1, len(positions) + 1)),
        positions_follow_queued_at=[stamp[pid] for pid in waitlisted]
        == sorted(stamp[pid] for pid in waitlisted),
        admin_participants=len(admin_participants),
        admin_lists_agree=admin_lists_agree,
        accept_window_s=window,
        accept_rate=(len(times) - 1) / window if window > 0 else 0.0,
        decision_lag_s=(max(decided) - max(times)).total_seconds() if decided and times else float("inf"),
        queued_at_vs_id_inversions=inversions,
    )


# --- Processes ---------------------------------------------------------------------------------------


class Workers:
    """The admission consumer and the outbox relay, as deployed, logging to the work directory."""

    def __init__(self, work_dir: Path):
        self.work_dir = work_dir
        self.processes: list[tuple[str, subprocess.Popen[bytes], Any]] = []

    def start(self) -> None:
        commands = {
            "admissions": [str(VENV_BIN / "celery"), "-A", "config", "worker", "-Q", "admissions",
                           "-n", "admissions@%h", "--concurrency", "1", "-l", "info", "--without-mingle",
                           "--without-gossip"],
            "relay": [sys.executable, "manage.py", "relay_outbox"],
        }  # fmt: skip
        for name, command in commands.items():
            log = (self.work_dir / f"{name}.log").open("wb")
            process = subprocess.Popen(
                command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            self.processes.append((name, process, log))

    def wait_ready(self, timeout: float = 60) -> None:
        """The consumer has connected to its queue (its log says "ready")."""
        deadline = time.monotonic() + timeout
        log = self.work_dir / "admissions.log"
        while time.monotonic() < deadline:
            for name, process, _ in self.processes:
                if process.poll() is not None:
                    raise BenchError(f"{name} exited with code {process.returncode}: see {self.work_dir}")
            if log.exists() and "ready." in log.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise BenchError("the admission consumer did not become ready")

    def stop(self) -> None:
        for _, process, log in self.processes:
            stop(process)
            log.close()


def consumer_work(path: Path) -> dict[str, Any]:
    """How many decide tasks the consumer ran and how long they took in all (from its log)."""
    tasks, busy = 0, 0.0
    for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
        if "decide_admissions" in line and "succeeded in " in line:
            tasks += 1
            busy += float(line.split("succeeded in ", 1)[1].split("s", 1)[0])
    return {"tasks": tasks, "busy_s": round(busy, 2)}


_ROLES_BY_NAME = {"postgres": "PostgreSQL", "wrk": "wrk", "beam.smp": "RabbitMQ", "redis-server": "Redis"}


def process_roles(server_session: int, workers: Workers, watch: QueueWatch) -> Callable[[int, int, str], str]:
    """Names each process's role in a rush, for its CPU split: the rushed platform's server (a
    session of its own), the consumer and the relay, PostgreSQL (the bench's own poll apart), wrk,
    RabbitMQ, Redis, the kernel's threads, the bench; anything else (the bare app, the other
    platform, the machine's other services) is "other"."""
    sessions = {process.pid: name for name, process, _ in workers.processes}
    sessions[server_session] = "web workers"
    bench_pids = {os.getpid(), watch.connection.info.backend_pid}

    def role(pid: int, session: int, name: str) -> str:
        if pid in bench_pids:
            return "bench"
        if session in sessions:
            return sessions[session]
        if name.startswith("["):
            return "kernel threads"  # e.g. the disk's and the file system's work for each flush
        return _ROLES_BY_NAME.get(name, "other")

    return role


# --- Main -----------------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


@dataclass
class Rush:
    """One rush: a platform, its event, its run and its figures."""

    tree: str  # THIS_TREE or COMPARED_TREE
    event_id: int
    bare_before: float = 0.0
    bare_after: float = 0.0
    run: WrkRun | None = None
    progress: Progress | None = None
    result: RushCheck | None = None

    @property
    def bare(self) -> float:
        return (self.bare_before + self.bare_after) / 2

    @property
    def ratio(self) -> float:
        return self.result.accept_rate / self.bare if self.result and self.bare else 0.0

    def ordered(self, args: argparse.Namespace) -> bool:
        result = self.result
        return bool(
            result
            and result.states.get("confirmed") == args.capacity
            and result.enrolled_count == args.capacity
            and result.states.get("waitlisted") == args.participants - args.capacity
            and result.waitlist_count == args.participants - args.capacity
            and result.confirmed_are_earliest
            and result.positions_are_1_to_n
            and result.positions_follow_queued_at
            and result.admin_lists_agree
        )

    def answered(self, args: argparse.Namespace) -> bool:
        return bool(
            self.result and self.result.answered_202 == args.participants and self.result.server_errors == 0
        )

    def data(self, args: argparse.Namespace, timeline: bool) -> dict[str, Any]:
        progress = self.progress or Progress()
        data: dict[str, Any] = {
            "tree": self.tree,
            "event_id": self.event_id,
            "bare_rps": [round(self.bare_before, 1), round(self.bare_after, 1)],
            "accept_ratio": round(self.ratio, 3),
            "wrk": asdict(self.run) if self.run else None,
            "check": asdict(self.result) if self.result else None,
            "ordered": self.ordered(args),
            "answered": self.answered(args),
            "polled": {
                "all_queued_after_s": progress.all_queued_after_s,
                "all_decided_after_s": progress.all_decided_after_s,
            },
            "burst_cpu_percent_of_a_core": progress.burst_cpu,
        }
        if timeline:
            data["timeline"] = progress.timeline
        return data


class Profiler:
    """py-spy recording every worker of a server (children of its master) while a rush runs."""

    def __init__(self, directory: Path, master_pid: int, idle: bool = True):
        self.directory = directory
        self.master_pid = master_pid
        self.idle = idle
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, label: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        children = Path(f"/proc/{self.master_pid}/task/{self.master_pid}/children").read_text().split()
        for pid in children:
            output = self.directory / f"{label}-worker-{pid}.txt"
            idle = ["--idle"] if self.idle else []
            command = [str(VENV_PY_SPY), "record", "--pid", pid, *idle, "--rate", "250", "--format", "raw",
                       "--output", str(output), "--nonblocking"]  # fmt: skip
            self.processes.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(2)  # SIGINT: py-spy writes its file and exits
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes = []


def measure_bare(wrk: str, args: argparse.Namespace, bare_url: str) -> float:
    return run_wrk(wrk, args.threads, args.connections, bare_url, args.bare_seconds, ["fixed", "GET", ""]).rps


def run_benchmark(args: argparse.Namespace, work_dir: Path) -> int:
    configure(args, work_dir)
    wrk = ensure_wrk()
    say(f"recreating database {args.db} and flushing {args.redis_url}")
    trees = [THIS_TREE] + ([COMPARED_TREE] if args.compare_tree else [])
    # The platforms take turns, the order alternating from round to round.
    order = [tree for number in range(args.rounds) for tree in (trees if number % 2 == 0 else trees[::-1])]
    threads = "" if args.server == "gunicorn-sync" else f", {args.server_threads} threads each"
    setup: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "server": f"{args.server}, {args.workers} workers{threads} (bare app and platforms alike)",
        "consumer": "celery -Q admissions --concurrency 1, plus manage.py relay_outbox (this clone's)",
        "wrk": f"{args.threads} threads, {args.connections} connections",
        "PostgreSQL": recreate_database(args.db),
        "Redis": flush_redis(args.redis_url),
        "Python": platform.python_version(),
        "wrk version": wrk_version(wrk),
        "rush": f"{args.participants} participants, {args.capacity} seats, {len(order)} rushes",
    }
    if args.compare_tree:
        setup["compared tree"] = str(args.compare_tree)
    say("migrating")
    run_migrations()
    setup_django()
    seeded = seed(args, work_dir, rushes=len(order), platforms=len(trees))
    db_url = os.environ["DATABASE_URL"]
    rushes = [Rush(tree, event_id) for tree, event_id in zip(order, seeded.rush_event_ids, strict=True)]

    bare_port = free_port()
    ports = {tree: free_port() for tree in trees}
    bare_command = server_command(args.server, BARE_APP, bare_port, args.workers, args.server_threads)
    workers = Workers(work_dir)
    profiler: Profiler | None = None
    try:
        with contextlib.ExitStack() as servers:
            servers.enter_context(running_server("bare app", bare_command, bare_port, work_dir / "bare.log"))
            processes = {}
            for tree in trees:
                command = server_command(
                    args.server, PLATFORM_APP, ports[tree], args.workers, args.server_threads
                )
                log = work_dir / ("platform.log" if tree == THIS_TREE else "compared.log")
                cwd = REPO if tree == THIS_TREE else args.compare_tree
                processes[tree] = servers.enter_context(
                    running_server(tree, command, ports[tree], log, cwd=cwd)
                )
            if args.profile is not None:
                profiler = Profiler(args.profile, processes[THIS_TREE].pid, idle=not args.profile_cpu)
            workers.start()
            workers.wait_ready()
            port = ports[THIS_TREE]
            for event_id in (*seeded.warmup_event_ids, *seeded.rush_event_ids):
                changed = request(
                    port, "PATCH", f"/api/v1/events/{event_id}/", seeded.admin_token, {"admission": "queue"}
                )
                if changed.get("admission") != "queue":
                    raise BenchError(f"PATCH admission=queue answered {changed}")
            bare_url = f"http://{HOST}:{bare_port}/bare"
            run_wrk(wrk, args.threads, args.connections, bare_url, 1, ["fixed", "GET", ""])
            for tree, warmup_event_id in zip(trees, seeded.warmup_event_ids, strict=True):
                say(f"warm-up of {tree}: {WARMUP_PARTICIPANTS} requests on a queued event (not measured)")
                warm_watch = QueueWatch(db_url, warmup_event_id)
                try:
                    warm_run, warm_progress = run_rush(
                        wrk, args, ports[tree], warmup_event_id, seeded.warmup_token_file,
                        WARMUP_PARTICIPANTS, warm_watch,
                    )  # fmt: skip
                finally:
                    warm_watch.close()
                if warm_progress.all_decided_after_s is None:
                    raise BenchError(f"the warm-up was not decided; statuses {warm_run.statuses}")
            bare = measure_bare(wrk, args, bare_url)
            for number, rush in enumerate(rushes, 1):
                say(
                    f"rush {number}/{len(rushes)} on {rush.tree}: {args.participants} POSTs on event "
                    f"{rush.event_id} ({args.capacity} seats)"
                )
                rush.bare_before = bare
                watch = QueueWatch(db_url, rush.event_id)
                try:
                    if profiler is not None and rush.tree == THIS_TREE:
                        profiler.start(f"rush{number}")
                    role = process_roles(processes[rush.tree].pid, workers, watch)
                    try:
                        rush.run, rush.progress = run_rush(
                            wrk, args, ports[rush.tree], rush.event_id, seeded.token_file, args.participants,
                            watch, role,
                        )  # fmt: skip
                    finally:
                        if profiler is not None:
                            profiler.stop()
                    say("the bare app again")
                    bare = rush.bare_after = measure_bare(wrk, args, bare_url)
                    say("reading every participant's answer and the admin's lists through the API")
                    rush.result = check(port, seeded, rush.event_id, args, rush.run, watch)
                finally:
                    watch.close()
    finally:
        if profiler is not None:
            profiler.stop()
        workers.stop()
    purge_queues()
    mine = [rush for rush in rushes if rush.tree == THIS_TREE]
    ratio = statistics.median(rush.ratio for rush in mine)
    lag = max(rush.result.decision_lag_s if rush.result else float("inf") for rush in mine)
    targets: dict[str, dict[str, Any]] = {
        "accept": {
            "value": round(ratio, 3),
            "target": f">= {ACCEPT_TARGET}",
            "passed": ratio >= ACCEPT_TARGET,
        },
        "decision_lag_s": {
            "value": round(lag, 3),
            "target": f"<= {DECISION_LAG_TARGET_S}",
            "passed": lag <= DECISION_LAG_TARGET_S,
        },
        "order": {"passed": all(rush.ordered(args) for rush in rushes)},
        "answers": {"passed": all(rush.answered(args) for rush in rushes)},
    }
    log_names = ["platform", "admissions", "relay"] + (["compared"] if args.compare_tree else [])
    logs = {name: asdict(read_server_log(work_dir / f"{name}.log")) for name in log_names}
    logs["admissions"].update(consumer_work(work_dir / "admissions.log"))
    data = {
        "setup": setup,
        "rushes": [rush.data(args, timeline=args.json) for rush in rushes],
        "targets": targets,
        "logs": logs,
    }
    if args.profile is not None:
        data["profile"] = str(args.profile)
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print_report(args, data, rushes, targets)
    return 0


def print_report(
    args: argparse.Namespace,
    data: dict[str, Any],
    rushes: list[Rush],
    targets: dict[str, dict[str, Any]],
) -> None:
    print()
    print("Setup: " + ", ".join(f"{key} {value}" for key, value in data["setup"].items()))
    for number, rush in enumerate(rushes, 1):
        result, progress, run = rush.result, rush.progress, rush.run
        assert result is not None and progress is not None and run is not None
        print()
        print(f"Rush {number} ({rush.tree}, event {rush.event_id})")
        print(
            f"bare app: {rush.bare_before:.1f} / {rush.bare_after:.1f} req/s before / after "
            f"(mean {rush.bare:.1f})"
        )
        print(
            f"accepted: {result.answered_202} x 202 in {result.accept_window_s:.2f} s "
            "(first to last queued_at) "
            f"= {result.accept_rate:.1f} req/s = {rush.ratio:.3f} x bare   target >= {ACCEPT_TARGET}  "
            f"{verdict(rush.ratio >= ACCEPT_TARGET)}"
        )
        print(
            f"last decision {result.decision_lag_s:.3f} s after the last 202 (decided_at - queued_at)   "
            f"target <= {DECISION_LAG_TARGET_S} s  {verdict(result.decision_lag_s <= DECISION_LAG_TARGET_S)}"
        )
        if progress.all_queued_after_s is not None and progress.all_decided_after_s is not None:
            print(
                f"  polled: all {args.participants} queued {progress.all_queued_after_s:.2f} s after wrk "
                f"started, all decided {progress.all_decided_after_s:.2f} s"
            )
        if progress.burst_cpu and progress.all_queued_after_s:
            # CPU per accept: a role's share of a core over the burst, spread over its requests.
            per_accept = 1e4 * progress.all_queued_after_s / args.participants
            split = ", ".join(
                f"{name} {percent:.0f} %" + (f" ({percent * per_accept:.0f} us)" if name != "idle" else "")
                for name, percent in sorted(progress.burst_cpu.items(), key=lambda item: -item[1])
            )
            print(f"  the machine until then (% of one core, and CPU per accept): {split}")
        print(
            f"states (each participant's enrollments/me/): {result.states}; event enrolled_count "
            f"{result.enrolled_count}, waitlist_count {result.waitlist_count}"
        )
        print(
            f"  confirmed are the {args.capacity} earliest queued_at: "
            f"{verdict(result.confirmed_are_earliest)}"
        )
        print(f"  waiting-list positions are 1..n: {verdict(result.positions_are_1_to_n)}")
        print(f"  waiting-list order is queued_at order: {verdict(result.positions_follow_queued_at)}")
        print(f"  admin's participants ({result.admin_participants}) and waiting list agree: "
              f"{verdict(result.admin_lists_agree)}")  # fmt: skip
        print(
            f"  (diagnostic: {result.queued_at_vs_id_inversions} participants rank differently by queued_at "
            "than by request id, the consumer's queue order)"
        )
        print(f"  order overall: {verdict(rush.ordered(args))}")
        print(
            f"answers: 202 x {result.answered_202} of {args.participants}, 5xx {result.server_errors}, "
            f"others {result.other_statuses}: {verdict(rush.answered(args))}"
        )
        print(
            f"  POST latency (wrk): p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms, "
            f"max {run.max_ms:.1f} ms; socket errors {run.socket_errors}"
        )
    print()
    mine = [rush for rush in rushes if rush.tree == THIS_TREE]
    print(
        f"accepting, this clone: {targets['accept']['value']} x bare (median of {len(mine)}; "
        f"{', '.join(f'{rush.ratio:.3f}' for rush in mine)})  target >= {ACCEPT_TARGET}  "
        f"{verdict(targets['accept']['passed'])}"
    )
    other = [rush for rush in rushes if rush.tree == COMPARED_TREE]
    if other:
        print(
            f"accepting, compared tree: {statistics.median(rush.ratio for rush in other):.3f} x bare "
            f"({', '.join(f'{rush.ratio:.3f}' for rush in other)})"
        )
    print(
        f"last decision, order, answers: {verdict(targets['decision_lag_s']['passed'])}, "
        f"{verdict(targets['order']['passed'])}, {verdict(targets['answers']['passed'])}"
    )
    work = data["logs"]["admissions"]
    print(f"admission consumer: {work['tasks']} decide tasks, busy {work['busy_s']} s in all")
    if "profile" in data:
        print(f"py-spy profiles (collapsed stacks, idle included) of this clone's workers: {data['profile']}")
    for name, log in data["logs"].items():
        levels = ", ".join(f"{level} {count}" for level, count in sorted(log["lines_by_level"].items()))
        print(f"{name} log: {levels or 'empty'}")
        for count, message in log["notable"][:5]:
            print(f"  {count:>6} x {message}")


def main() -> int:
    args = parse_args()
    return run_in_work_dir(
        lambda work_dir: run_benchmark(args, work_dir),
        prefix="rush-bench-",
        keep_files=args.keep_files,
        errors=(psycopg.Error, redis.RedisError),
        say=say,
    )


if __name__ == "__main__":
    sys.exit(main())
