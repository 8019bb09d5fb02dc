"""Benchmark of participant report builds: time and peak memory for 10 000 and 100 000 participants.

From the root of a clean clone (after `make .venv/.dev-installed`):

    .venv/bin/python bench/report_bench.py            # progress on stderr, the table on stdout
    .venv/bin/python bench/report_bench.py --json     # the same figures as one JSON document
    .venv/bin/python bench/report_bench.py --sizes 1000,5000   # a quick run

It recreates the throwaway PostgreSQL database `bench_reports`, flushes Redis db 4, migrates, seeds
one admin, the participants and one event per size (with that many enrollments), then for each
size requests a report the way the API does (`reports.services.request_report`) and builds it in a
fresh child process (`reports.services.build`, what the reports worker runs), which measures the
build's wall time and its own peak RSS (VmHWM: see "Child processes" below for why not ru_maxrss).
A baseline child (Django set up, `reports.services` imported, no build) gives the memory of an idle
worker-like process. The parent then checks the stored document. Each size is built --repeat times
(3), each time a new report in a new process; the table gives the medians. bench/README.md says
what the figures mean.

The configuration is production's: PostgreSQL, Redis and RabbitMQ. The build request and the
report's emails are published to RabbitMQ; no worker consumes them here, so the queues are purged
at the end (all of the vhost's `notifications` and `reports` messages: pass another vhost with
--broker-url when something else uses the same RabbitMQ).

The exit code is 0 when every build ran and its document checked out, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# bench/common.py: run as `python bench/report_bench.py`, this script has bench/ first on sys.path.
# It imports only the standard library, so the child processes load nothing more for it.
from common import (
    BROKER_URL,
    REPO,
    BenchError,
    configure_environment,
    flush_redis,
    purge_queues,
    recreate_database,
    run_in_work_dir,
    run_migrations,
    say,
    setup_django,
)

DB_NAME = "bench_reports"
REDIS_URL = "redis://127.0.0.1:6379/4"

DEFAULT_SIZES = "10000,100000"
# Room for the largest default size twice over; a larger --sizes value raises it to that size.
EVENT_CAPACITY = 200_000
ADMIN_EMAIL = "admin@bench.example"
MIB = 1024 * 1024
VENV_PY_SPY = Path(sys.executable).parent / "py-spy"
BUILDERS = ("database", "python")
# The targets of issue 14 (benchmark figures, not timed tests): build time per size, and memory
# flat (the largest size's peak RSS no higher than the smallest's, within the tolerance: two
# fresh processes differ by a few hundred kB from run to run).
TIME_TARGETS = {1_000_000: 10.0, 100_000: 1.0}
MEMORY_TOLERANCE_MB = 2.0


# --- Options and environment ----------------------------------------------------------------------


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("sizes must be integers of at least 1")
    return sizes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=parse_sizes(DEFAULT_SIZES),
        help=f"participants of each report, comma-separated ({DEFAULT_SIZES})",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="builds per size, each a new report in a new process (3)"
    )
    parser.add_argument(
        "--builders",
        default="database",
        help="report builders to measure, comma-separated: database (PostgreSQL writes the JSON, what "
        "the reports worker uses on PostgreSQL), python (the ORM and the json module, SQLite's) (database)",
    )
    parser.add_argument(
        "--waitlist", type=int, default=1000, help="waiting-list entries of every event (1000)"
    )
    parser.add_argument(
        "--database", default=DB_NAME, help=f"throwaway database, dropped and created again ({DB_NAME})"
    )
    parser.add_argument("--redis-url", default=REDIS_URL, help=f"Redis database, flushed ({REDIS_URL})")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="run each build under py-spy (installed beside this Python) and write its collapsed "
        "stacks and a summary to DIR; the times are then the profiled ones",
    )
    parser.add_argument(
        "--broker-url",
        default=BROKER_URL,
        help=f"RabbitMQ to publish to and purge at the end; another vhost isolates the run ({BROKER_URL})",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    parser.add_argument("--keep-files", action="store_true", help="keep the work directory (documents, mail)")
    # The child processes: the same script, started by the parent with its environment.
    parser.add_argument("--build-one", type=int, metavar="REPORT_ID", help=argparse.SUPPRESS)
    parser.add_argument("--builder", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeat < 1 or args.waitlist < 0:
        parser.error("--repeat must be at least 1 and --waitlist at least 0")
    args.builders = [name.strip() for name in args.builders.split(",") if name.strip()]
    if not args.builders or set(args.builders) - set(BUILDERS):
        parser.error(f"--builders: choose among {', '.join(BUILDERS)}")
    return args


def configure_benchmark_environment(work_dir: Path, broker_url: str, db_name: str, redis_url: str) -> None:
    """The deployment's variables (bench/common.py); the stored documents go to the work directory."""
    configure_environment(
        work_dir,
        db_name=db_name,
        redis_url=redis_url,
        # Production: the build request and the report's emails go through the outbox to RabbitMQ.
        broker_url=broker_url,
        extra={"ALLOWED_HOSTS": "localhost", "MEDIA_ROOT": str(work_dir / "media")},
    )


# --- Backing services -----------------------------------------------------------------------------


def check_broker() -> str:
    """Fails fast when RabbitMQ is away (publishing would only log warnings); returns its version."""
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=5)
        properties = conn.connection.server_properties
        return str(properties.get("version", "?"))


# --- Seed data --------------------------------------------------------------------------------------


@dataclass
class Seed:
    admin_id: int
    admin_email: str
    event_ids: dict[int, int]  # size -> event id
    participant_ids: list[int]  # in enrollment order: the event of size n has the first n
    waitlist_ids: list[int]  # every event's waiting list, in order (after the largest event's)
    seconds: float


def seed(sizes: list[int], waitlist: int) -> Seed:
    """One admin, max(sizes) + waitlist participants, one event per size with that many enrollments
    and the same `waitlist` people waiting. Rows are made by PostgreSQL (generate_series, INSERT …
    SELECT): no Python object per row, about 40 s for a million instead of 3 minutes."""
    from django.db import connection, connections, transaction

    from events.models import Enrollment, Event, WaitlistEntry
    from participants.models import User

    started = time.monotonic()
    largest = max(sizes)
    quote = connection.ops.quote_name
    users, enrollments, entries = (quote(model._meta.db_table) for model in (User, Enrollment, WaitlistEntry))
    with transaction.atomic(), connection.cursor() as cursor:
        admin = User.objects.create(
            email=ADMIN_EMAIL, full_name="Bench Admin", password="!", is_staff=True, is_superuser=True
        )
        # "!" is an unusable password: no hashing per user, and nobody can sign in with it.
        cursor.execute(
            f"INSERT INTO {users} (password, is_superuser, email, full_name, phone, is_staff,"  # noqa: S608
            " is_active, created_at)"
            " SELECT '!', false, 'participant' || n || '@bench.example', 'Participant ' || n, '',"
            " false, true, now() FROM generate_series(0, %s - 1) AS n ORDER BY n",
            [largest + waitlist],
        )
        cursor.execute(f"SELECT id FROM {users} WHERE id <> %s ORDER BY id", [admin.pk])  # noqa: S608
        everyone = [row[0] for row in cursor.fetchall()]

        day = dt.date.today() + dt.timedelta(days=30)
        events = {
            size: Event(
                title=f"Report bench event of {size} participants",
                description="Seeded by bench/report_bench.py.",
                date=day + dt.timedelta(days=number),
                time=dt.time(9, 30),
                location=f"Hall {number + 1}",
                capacity=max(EVENT_CAPACITY, size),
                # Rows inserted behind the services' back: the counters are set to match them.
                enrolled_count=size,
                waitlist_count=waitlist,
            )
            for number, size in enumerate(sizes)
        }
        Event.objects.bulk_create(events.values())

        # Increasing timestamps, one millisecond apart: the enrollment order is the seeding order
        # (the participants' id order). The waiting list joins later, in id order too.
        first_enrolled = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
        for size, event in events.items():
            cursor.execute(
                f"INSERT INTO {enrollments} (event_id, participant_id, created_at)"  # noqa: S608
                " SELECT %s, id, %s + (rn - 1) * interval '1 millisecond'"
                f" FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM {users}"
                "  WHERE id <> %s ORDER BY id LIMIT %s) AS first",
                [event.pk, first_enrolled, admin.pk, size],
            )
            cursor.execute(
                f"INSERT INTO {entries} (event_id, participant_id, joined_at)"  # noqa: S608
                " SELECT %s, id, now() - interval '1 day' + rn * interval '1 millisecond'"
                f" FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM {users}"
                "  WHERE id <> %s ORDER BY id OFFSET %s LIMIT %s) AS waiting ORDER BY id",
                [event.pk, admin.pk, largest, waitlist],
            )
    # Planner statistics as a live database has them (and no autovacuum starting mid-measurement).
    with connections["default"].cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    connections.close_all()
    seconds = time.monotonic() - started
    say(
        f"seeded 1 admin, {largest + waitlist} participants, {len(sizes)} events, {sum(sizes)} "
        f"enrollments and {waitlist * len(sizes)} waiting-list entries in {seconds:.1f} s"
    )
    return Seed(
        admin.pk,
        admin.email,
        {size: event.pk for size, event in events.items()},
        everyone[:largest],
        everyone[largest:],
        seconds,
    )


# --- Child processes ----------------------------------------------------------------------------------
#
# Peak memory is read from /proc/self/status (VmHWM, the high-water mark of this process's own address
# space, which starts afresh at exec) and not from getrusage(RUSAGE_SELF).ru_maxrss: Linux keeps
# ru_maxrss across fork and execve, so a child started by this script would report at least this
# script's own peak (its seeding lists of 100 000 objects), whatever the child itself used.
# ru_maxrss is still reported, in the JSON, to show it.


def memory_kib() -> dict[str, int]:
    """VmHWM (peak RSS) and VmRSS (current RSS) of this process in KiB, plus getrusage's ru_maxrss."""
    status: dict[str, int] = {}
    with open("/proc/self/status") as lines:
        for line in lines:
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                status[name] = int(value.split()[0])  # "123456 kB"
    return {
        "peak": status["VmHWM"],
        "current": status["VmRSS"],
        # KiB on Linux; inherited from the parent across fork and execve (see above).
        "ru_maxrss": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
    }


def reset_peak() -> bool:
    """Resets VmHWM to the current RSS (Linux >= 4.0), so that the next peak is the build's own."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def child_baseline() -> int:
    """An idle worker-like process: Django set up and the reports services imported, nothing built."""
    setup_django()
    import reports.services  # noqa: F401  (the import is what is measured)

    memory = memory_kib()
    print(json.dumps({"peak_rss_kib": memory["peak"], "ru_maxrss_kib": memory["ru_maxrss"]}), flush=True)
    return 0


def child_build(report_id: int, builder: str | None) -> int:
    """Builds one report as the reports worker does, measuring the call from inside."""
    setup_django()
    from django.db import connection

    from reports import services

    if builder:  # the worker picks the builder of its database; the benchmark can compare both
        services.default_builder = lambda: builder

    queries = 0

    def count_query(execute: Any, sql_text: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal queries
        queries += 1
        return execute(sql_text, params, many, context)

    before = memory_kib()
    # The peak of django.setup() (transient import-time allocations) would otherwise hide a build
    # that stays below it; after the reset, VmHWM is the highest RSS reached during the build.
    was_reset = reset_peak()
    with connection.execute_wrapper(count_query):
        started = time.perf_counter()
        status = services.build(report_id=report_id)
        seconds = time.perf_counter() - started
    after = memory_kib()
    result = {
        "status": str(status),
        "seconds": seconds,
        # The whole process's peak, as if VmHWM had not been reset: the figure to compare to the baseline.
        "peak_rss_kib": max(before["peak"], after["peak"]),
        "rss_at_build_start_kib": before["current"],
        "build_peak_rss_kib": after["peak"] if was_reset else None,
        "ru_maxrss_kib": after["ru_maxrss"],
        "queries": queries,
        "builder": services.default_builder(),
    }
    print(json.dumps(result), flush=True)
    return 0


def run_child(arguments: list[str], prefix: list[str] | None = None) -> dict[str, Any]:
    """Runs this script as a child with the same environment; its last stdout line is its JSON."""
    started = time.monotonic()
    completed = subprocess.run(
        [*(prefix or []), sys.executable, str(Path(__file__).resolve()), *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    # The child's JSON line (under --profile, py-spy writes its own lines on stdout too).
    lines = [line for line in completed.stdout.strip().splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        raise BenchError(
            f"child {' '.join(arguments)} exited with code {completed.returncode}:\n"
            f"{completed.stderr.strip()[-3000:]}"
        )
    if completed.stderr.strip():
        # LOG_LEVEL is WARNING: anything here is worth seeing (a failed publish, a warning).
        say(f"child {' '.join(arguments)} wrote on stderr:\n{completed.stderr.strip()[-3000:]}")
    result = dict(json.loads(lines[-1]))
    result["process_seconds"] = time.monotonic() - started
    return result


# --- Measurements -------------------------------------------------------------------------------------


def mb(kib: float) -> float:
    return round(kib / 1024, 1)


@dataclass
class Baseline:
    peak_rss_kib: int  # median over the runs
    runs_kib: list[int]
    ru_maxrss_kib: list[int]

    @property
    def peak_rss_mb(self) -> float:
        return mb(self.peak_rss_kib)


def measure_baseline(repeat: int) -> Baseline:
    say(f"baseline: {repeat} fresh process(es) with Django set up and reports.services imported")
    runs = [run_child(["--baseline"]) for _ in range(repeat)]
    peaks = [int(run["peak_rss_kib"]) for run in runs]
    return Baseline(int(statistics.median(peaks)), peaks, [int(run["ru_maxrss_kib"]) for run in runs])


@dataclass
class Build:
    """One size: the median of its runs (each a new report built by a new process)."""

    participants: int
    builder: str
    event_id: int
    report_ids: list[int]
    build_seconds: float
    peak_rss_mb: float
    above_baseline_mb: float
    build_growth_mb: float | None  # highest RSS during the build minus the RSS when it started
    document_mb: float
    document_bytes: int
    gzip_mb: float
    gzip_bytes: int
    queries: int
    process_seconds: float  # the whole child: interpreter start, django.setup() and the build
    runs: list[dict[str, Any]]  # each child's own figures


def check_document(report_id: int, size: int, seeded: Seed) -> tuple[int, int]:
    """Asserts the report ended done with `size` participants in enrollment order and the seeded
    waiting list in order, and that its .json.gz holds the same bytes; the sizes of both files."""
    import zlib

    import orjson

    from reports.models import Report

    report = Report.objects.get(pk=report_id)
    if report.status != "done":
        raise BenchError(f"report {report_id} ended {report.status!r}, not 'done': {report.error}")
    if report.participant_count != size:
        raise BenchError(f"report {report_id}: participant_count {report.participant_count} != {size}")
    with report.document.open("rb") as stored:
        plain = stored.read()
    document = orjson.loads(plain)
    participants = document["participants"]
    if len(participants) != size or document["participant_count"] != size:
        raise BenchError(
            f"report {report_id}: the document lists {len(participants)} participants and says "
            f"{document['participant_count']}, expected {size}"
        )
    if [row["id"] for row in participants] != seeded.participant_ids[:size]:
        raise BenchError(f"report {report_id}: the participants are not in enrollment order")
    waiting = [(row["id"], row["position"]) for row in document["waitlist"]]
    if waiting != [(pk, n) for n, pk in enumerate(seeded.waitlist_ids, start=1)]:
        raise BenchError(f"report {report_id}: the waiting list is not the seeded one in order")
    del document, participants
    with report.document_gzip.open("rb") as stored:
        if zlib.decompress(stored.read(), wbits=31) != plain:
            raise BenchError(f"report {report_id}: the .json.gz does not hold the JSON document")
    return int(report.document.size), int(report.document_gzip.size)


def build_once(size: int, builder: str, seeded: Seed, profile_dir: Path | None) -> dict[str, Any]:
    """Requests a report as the API does and builds it in a fresh process; the child's figures."""
    from django.db import connections

    from reports import services

    report = services.request_report(
        event_id=seeded.event_ids[size], requested_by_id=seeded.admin_id, recipients=[seeded.admin_email]
    )
    # The child gets the database to itself: this process holds no connection meanwhile.
    connections.close_all()
    prefix = None
    if profile_dir is not None:
        stacks = profile_dir / f"build-{size}-{builder}-report-{report.pk}.txt"
        prefix = [
            str(VENV_PY_SPY),
            "record",
            "--format",
            "raw",
            "--rate",
            "250",
            "--idle",
            "--output",
            str(stacks),
            "--",
        ]
    child = run_child(["--build-one", str(report.pk), "--builder", builder], prefix)
    if child["status"] != "done":
        raise BenchError(f"build of report {report.pk} returned {child['status']!r}")
    child["report_id"] = report.pk
    child["document_bytes"], child["gzip_bytes"] = check_document(report.pk, size, seeded)
    connections.close_all()
    say(
        f"{size} participants ({builder}), report {report.pk}: {child['seconds']:.2f} s, "
        f"peak RSS {mb(child['peak_rss_kib'])} MB, document {child['document_bytes'] / MIB:.2f} MB, "
        f"gzip {child['gzip_bytes'] / MIB:.2f} MB"
    )
    if profile_dir is not None:
        summarise_profile(stacks)
    return child


def summarise_profile(stacks: Path, top: int = 12) -> None:
    """py-spy's collapsed stacks of the build() call (idle samples included: waiting for the
    database shows as the socket read): the share of samples in each function (self) and under it
    (total), written beside them as <name>.summary.txt and said on stderr."""
    own: dict[str, int] = {}
    under: dict[str, int] = {}
    total = compressing = 0
    for line in stacks.read_text().splitlines():
        frames_text, _, count_text = line.rpartition(" ")
        if not frames_text or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame.split(" (")[0] + " (" + frame.split(" (")[-1] for frame in frames_text.split(";")]
        if any(frame.startswith("_Compressor.run (reports/output.py") for frame in frames):
            # The gzip thread, beside the build: busy unless it waits for the next block.
            if not any(frame.startswith("Queue.get (") for frame in frames):
                compressing += count
            continue
        inside = [n for n, frame in enumerate(frames) if frame.startswith("build (reports/services.py")]
        if not inside:
            continue  # interpreter start, django.setup(): not the build
        frames = frames[inside[0] :]
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            under[frame] = under.get(frame, 0) + count
    if not total:
        return
    lines = [
        f"{stacks.name}: {total} samples in build(); the gzip thread beside it: {compressing} samples "
        f"busy ({100 * compressing / total:.1f} % of the build's)"
    ]
    lines.append("self:")
    for frame, count in sorted(own.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"  {100 * count / total:5.1f} %  {frame}")
    lines.append("total (the function and what it called):")
    for frame, count in sorted(under.items(), key=lambda item: -item[1])[: top * 2]:
        lines.append(f"  {100 * count / total:5.1f} %  {frame}")
    text = "\n".join(lines)
    stacks.with_suffix(".summary.txt").write_text(text + "\n")
    say(text)


def measure(
    size: int, builder: str, seeded: Seed, baseline: Baseline, repeat: int, profile_dir: Path | None
) -> Build:
    runs = [build_once(size, builder, seeded, profile_dir) for _ in range(repeat)]

    def median(key: str) -> float:
        return float(statistics.median(run[key] for run in runs))

    growths = [
        run["build_peak_rss_kib"] - run["rss_at_build_start_kib"]
        for run in runs
        if run["build_peak_rss_kib"] is not None
    ]
    peak_kib = median("peak_rss_kib")
    return Build(
        participants=size,
        builder=builder,
        event_id=seeded.event_ids[size],
        report_ids=[run["report_id"] for run in runs],
        build_seconds=round(median("seconds"), 3),
        peak_rss_mb=mb(peak_kib),
        above_baseline_mb=mb(peak_kib - baseline.peak_rss_kib),
        build_growth_mb=mb(statistics.median(growths)) if growths else None,
        document_mb=round(runs[-1]["document_bytes"] / MIB, 2),
        document_bytes=int(runs[-1]["document_bytes"]),
        gzip_mb=round(runs[-1]["gzip_bytes"] / MIB, 2),
        gzip_bytes=int(runs[-1]["gzip_bytes"]),
        queries=int(runs[-1]["queries"]),
        process_seconds=round(median("process_seconds"), 2),
        runs=runs,
    )


def verdicts(builds: list[Build]) -> list[tuple[str, bool]]:
    """PASS/FAIL of each target this run can judge, for the builder the worker uses on PostgreSQL."""
    results = []
    chosen = [build for build in builds if build.builder == "database"]
    for build in chosen:
        limit = TIME_TARGETS.get(build.participants)
        if limit is not None:
            results.append(
                (
                    f"{build.participants} participants build in under {limit:g} s: "
                    f"{build.build_seconds:.2f} s",
                    build.build_seconds < limit,
                )
            )
    if len(chosen) >= 2:
        small, large = chosen[0], chosen[-1]
        results.append(
            (
                f"memory flat: peak RSS at {large.participants} ({large.peak_rss_mb:.1f} MB) no higher "
                f"than at {small.participants} ({small.peak_rss_mb:.1f} MB), within "
                f"{MEMORY_TOLERANCE_MB:g} MB",
                large.peak_rss_mb <= small.peak_rss_mb + MEMORY_TOLERANCE_MB,
            )
        )
    return results


def ratios(builds: list[Build]) -> dict[str, Any]:
    """Largest size against smallest (of the first builder): build time and memory above baseline."""
    builds = [build for build in builds if build.builder == builds[0].builder] if builds else []
    if len(builds) < 2:
        return {}
    small, large = builds[0], builds[-1]

    def divide(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a is not None and b else None

    return {
        "builder": small.builder,
        "sizes": f"{large.participants}/{small.participants}",
        "participants": divide(large.participants, small.participants),
        "build_seconds": divide(large.build_seconds, small.build_seconds),
        "above_baseline_mb": divide(large.above_baseline_mb, small.above_baseline_mb),
        "build_growth_mb": divide(large.build_growth_mb, small.build_growth_mb),
        "document_mb": divide(large.document_bytes, small.document_bytes),
    }


# --- Report -------------------------------------------------------------------------------------------


def print_table(
    setup: dict[str, Any],
    baseline: Baseline,
    builds: list[Build],
    ratio: dict[str, Any],
    verdict: list[tuple[str, bool]],
) -> None:
    print()
    print("Setup: " + ", ".join(f"{key} {value}" for key, value in setup.items()))
    print(
        f"Baseline (a fresh process: django.setup() + reports.services imported, no build): "
        f"peak RSS {baseline.peak_rss_mb} MB"
    )
    print()
    columns = (
        "participants",
        "builder",
        "build s",
        "peak RSS MB",
        "above baseline MB",
        "build growth MB",
        "document MB",
        "gzip MB",
    )
    widths = [max(len(column), 8) for column in columns]
    header = "  ".join(f"{column:>{width}}" for column, width in zip(columns, widths, strict=True))
    print(header)
    print("-" * len(header))
    for build in builds:
        growth = "?" if build.build_growth_mb is None else f"{build.build_growth_mb:.1f}"
        values = (
            f"{build.participants}",
            build.builder,
            f"{build.build_seconds:.2f}",
            f"{build.peak_rss_mb:.1f}",
            f"{build.above_baseline_mb:.1f}",
            growth,
            f"{build.document_mb:.2f}",
            f"{build.gzip_mb:.2f}",
        )
        print("  ".join(f"{value:>{width}}" for value, width in zip(values, widths, strict=True)))
    if ratio:
        print()
        print(f"ratio {ratio['sizes']} ({ratio['builder']}; participants x{ratio['participants']}):")
        print(f"  build time              x{ratio['build_seconds']}")
        print(f"  memory above baseline   x{ratio['above_baseline_mb']}")
        print(f"  memory growth of build  x{ratio['build_growth_mb']}")
        print(f"  document size           x{ratio['document_mb']}")
    print()
    for build in builds:
        seconds = ", ".join(f"{run['seconds']:.2f}" for run in build.runs)
        print(
            f"{build.participants} ({build.builder}): build s of each run {seconds}; "
            f"{build.queries} queries per build; whole child process {build.process_seconds:.1f} s"
        )
    if verdict:
        print()
        print("Targets (issue 14, the database builder):")
        for text, passed in verdict:
            print(f"  {'PASS' if passed else 'FAIL'}  {text}")


# --- Main -----------------------------------------------------------------------------------------------


def run_benchmark(args: argparse.Namespace, work_dir: Path) -> int:
    configure_benchmark_environment(work_dir, args.broker_url, args.database, args.redis_url)
    say(f"recreating database {args.database} and flushing Redis {args.redis_url}")
    setup: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "PostgreSQL": recreate_database(args.database),
        "Redis": flush_redis(args.redis_url),
        "Python": platform.python_version(),
    }
    say("migrating")
    run_migrations()
    setup_django()
    from django.conf import settings

    from reports import services

    setup["RabbitMQ"] = check_broker()
    setup["chunk size"] = services.CHUNK_SIZE
    # A worker's environment is not DEBUG: no query log growing with the rows.
    if settings.DEBUG or settings.CELERY_TASK_ALWAYS_EAGER:
        raise BenchError("expected DEBUG off and a broker (CELERY_TASK_ALWAYS_EAGER off)")
    setup["runs per size"] = args.repeat
    profile_dir = Path(args.profile).resolve() if args.profile else None
    if profile_dir is not None:
        if not VENV_PY_SPY.exists():
            raise BenchError(f"--profile needs py-spy: {VENV_PY_SPY.parent}/pip install py-spy")
        profile_dir.mkdir(parents=True, exist_ok=True)
    try:
        seeded = seed(args.sizes, args.waitlist)
        setup["seeding s"] = round(seeded.seconds, 1)
        setup["waiting list"] = args.waitlist
        baseline = measure_baseline(args.repeat)
        builds = [
            measure(size, builder, seeded, baseline, args.repeat, profile_dir)
            for builder in args.builders
            for size in args.sizes
        ]
    finally:
        say("purging the benchmark's messages from RabbitMQ")
        purged = purge_queues()
        say(f"purged {purged} messages")

    ratio = ratios(builds)
    verdict = verdicts(builds)
    if args.json:
        data = {
            "setup": setup,
            "baseline": {"peak_rss_mb": baseline.peak_rss_mb, **asdict(baseline)},
            "builds": [asdict(build) for build in builds],
            "ratio": ratio,
            "targets": [{"target": text, "passed": passed} for text, passed in verdict],
        }
        print(json.dumps(data, indent=2))
    else:
        print_table(setup, baseline, builds, ratio, verdict)
    return 0


def main() -> int:
    args = parse_args()
    if args.baseline:
        return child_baseline()
    if args.build_one is not None:
        return child_build(args.build_one, args.builder)
    # Imported here, not at the top: the child processes load what the application loads, nothing more.
    import kombu.exceptions
    import psycopg
    import redis

    # The work directory is removed on the way out, also on Ctrl-C or a `kill`.
    return run_in_work_dir(
        lambda work_dir: run_benchmark(args, work_dir),
        prefix="report-bench-",
        keep_files=args.keep_files,
        errors=(psycopg.Error, redis.RedisError, kombu.exceptions.KombuError),
        say=say,
    )


if __name__ == "__main__":
    sys.exit(main())
