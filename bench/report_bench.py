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
    parser.add_argument("--batch-size", type=int, default=5000, help="rows per bulk_create batch (5000)")
    parser.add_argument(
        "--broker-url",
        default=BROKER_URL,
        help=f"RabbitMQ to publish to and purge at the end; another vhost isolates the run ({BROKER_URL})",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    parser.add_argument("--keep-files", action="store_true", help="keep the work directory (documents, mail)")
    # The child processes: the same script, started by the parent with its environment.
    parser.add_argument("--build-one", type=int, metavar="REPORT_ID", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.batch_size < 1 or args.repeat < 1:
        parser.error("--batch-size and --repeat must be at least 1")
    return args


def configure_benchmark_environment(work_dir: Path, broker_url: str) -> None:
    """The deployment's variables (bench/common.py); the stored documents go to the work directory."""
    configure_environment(
        work_dir,
        db_name=DB_NAME,
        redis_url=REDIS_URL,
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


def seed(sizes: list[int], batch_size: int) -> Seed:
    """One admin, max(sizes) participants, one event per size with that many enrollments."""
    from django.db import connections, transaction

    from events.models import Enrollment, Event
    from participants.models import User

    started = time.monotonic()
    largest = max(sizes)
    with transaction.atomic():
        admin = User.objects.create(
            email=ADMIN_EMAIL, full_name="Bench Admin", password="!", is_staff=True, is_superuser=True
        )
        # "!" is an unusable password: no hashing per user, and nobody can sign in with it.
        users = [
            User(
                email=f"participant{number:06d}@bench.example",
                full_name=f"Participant {number}",
                password="!",
            )
            for number in range(largest)
        ]
        User.objects.bulk_create(users, batch_size=batch_size)
        participant_ids = [user.pk for user in users]
        del users

        day = dt.date.today() + dt.timedelta(days=30)
        events = {
            size: Event(
                title=f"Report bench event of {size} participants",
                description="Seeded by bench/report_bench.py.",
                date=day + dt.timedelta(days=number),
                time=dt.time(9, 30),
                location=f"Hall {number + 1}",
                capacity=max(EVENT_CAPACITY, size),
            )
            for number, size in enumerate(sizes)
        }
        Event.objects.bulk_create(events.values())

        # Increasing timestamps, one millisecond apart: the enrollment order is the seeding order.
        first_enrolled = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
        for size, event in events.items():
            for start in range(0, size, batch_size):
                Enrollment.objects.bulk_create(
                    [
                        Enrollment(
                            event_id=event.pk,
                            participant_id=participant_ids[index],
                            created_at=first_enrolled + dt.timedelta(milliseconds=index),
                        )
                        for index in range(start, min(start + batch_size, size))
                    ]
                )
            # Rows inserted behind the services' back: the seat counter is set to match them.
            Event.objects.filter(pk=event.pk).update(enrolled_count=size)
    # Planner statistics as a live database has them (and no autovacuum starting mid-measurement).
    with connections["default"].cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    connections.close_all()
    say(
        f"seeded 1 admin, {largest} participants, {len(sizes)} events and {sum(sizes)} enrollments "
        f"in {time.monotonic() - started:.1f} s"
    )
    return Seed(admin.pk, admin.email, {size: event.pk for size, event in events.items()}, participant_ids)


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


def child_build(report_id: int) -> int:
    """Builds one report as the reports worker does, measuring the call from inside."""
    setup_django()
    from django.db import connection

    from reports import services

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
    }
    print(json.dumps(result), flush=True)
    return 0


def run_child(arguments: list[str]) -> dict[str, Any]:
    """Runs this script as a child with the same environment; its last stdout line is its JSON."""
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    lines = completed.stdout.strip().splitlines()
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
    event_id: int
    report_ids: list[int]
    build_seconds: float
    peak_rss_mb: float
    above_baseline_mb: float
    build_growth_mb: float | None  # highest RSS during the build minus the RSS when it started
    document_mb: float
    document_bytes: int
    queries: int
    process_seconds: float  # the whole child: interpreter start, django.setup() and the build
    runs: list[dict[str, Any]]  # each child's own figures


def check_document(report_id: int, size: int, expected_ids: list[int]) -> int:
    """Asserts the report ended done with `size` participants in enrollment order; its size in bytes."""
    from reports.models import Report

    report = Report.objects.get(pk=report_id)
    if report.status != "done":
        raise BenchError(f"report {report_id} ended {report.status!r}, not 'done': {report.error}")
    if report.participant_count != size:
        raise BenchError(f"report {report_id}: participant_count {report.participant_count} != {size}")
    with report.document.open("rb") as stored:
        document = json.load(stored)
    participants = document["participants"]
    if len(participants) != size or document["participant_count"] != size:
        raise BenchError(
            f"report {report_id}: the document lists {len(participants)} participants and says "
            f"{document['participant_count']}, expected {size}"
        )
    if [row["id"] for row in participants] != expected_ids:
        raise BenchError(f"report {report_id}: the participants are not in enrollment order")
    return int(report.document.size)


def build_once(size: int, seeded: Seed) -> dict[str, Any]:
    """Requests a report as the API does and builds it in a fresh process; the child's figures."""
    from django.db import connections

    from reports import services

    report = services.request_report(
        event_id=seeded.event_ids[size], requested_by_id=seeded.admin_id, recipients=[seeded.admin_email]
    )
    # The child gets the database to itself: this process holds no connection meanwhile.
    connections.close_all()
    child = run_child(["--build-one", str(report.pk)])
    if child["status"] != "done":
        raise BenchError(f"build of report {report.pk} returned {child['status']!r}")
    child["report_id"] = report.pk
    child["document_bytes"] = check_document(report.pk, size, seeded.participant_ids[:size])
    connections.close_all()
    say(
        f"{size} participants, report {report.pk}: {child['seconds']:.2f} s, "
        f"peak RSS {mb(child['peak_rss_kib'])} MB, document {child['document_bytes'] / MIB:.2f} MB"
    )
    return child


def measure(size: int, seeded: Seed, baseline: Baseline, repeat: int) -> Build:
    runs = [build_once(size, seeded) for _ in range(repeat)]

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
        event_id=seeded.event_ids[size],
        report_ids=[run["report_id"] for run in runs],
        build_seconds=round(median("seconds"), 3),
        peak_rss_mb=mb(peak_kib),
        above_baseline_mb=mb(peak_kib - baseline.peak_rss_kib),
        build_growth_mb=mb(statistics.median(growths)) if growths else None,
        document_mb=round(runs[-1]["document_bytes"] / MIB, 2),
        document_bytes=int(runs[-1]["document_bytes"]),
        queries=int(runs[-1]["queries"]),
        process_seconds=round(median("process_seconds"), 2),
        runs=runs,
    )


def ratios(builds: list[Build]) -> dict[str, Any]:
    """Largest size against smallest: build time and memory above baseline."""
    if len(builds) < 2:
        return {}
    small, large = builds[0], builds[-1]

    def divide(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a is not None and b else None

    return {
        "sizes": f"{large.participants}/{small.participants}",
        "participants": divide(large.participants, small.participants),
        "build_seconds": divide(large.build_seconds, small.build_seconds),
        "above_baseline_mb": divide(large.above_baseline_mb, small.above_baseline_mb),
        "build_growth_mb": divide(large.build_growth_mb, small.build_growth_mb),
        "document_mb": divide(large.document_bytes, small.document_bytes),
    }


# --- Report -------------------------------------------------------------------------------------------


def print_table(
    setup: dict[str, Any], baseline: Baseline, builds: list[Build], ratio: dict[str, Any]
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
        "build s",
        "peak RSS MB",
        "above baseline MB",
        "build growth MB",
        "document MB",
    )
    widths = [max(len(column), 8) for column in columns]
    header = "  ".join(f"{column:>{width}}" for column, width in zip(columns, widths, strict=True))
    print(header)
    print("-" * len(header))
    for build in builds:
        growth = "?" if build.build_growth_mb is None else f"{build.build_growth_mb:.1f}"
        values = (
            f"{build.participants}",
            f"{build.build_seconds:.2f}",
            f"{build.peak_rss_mb:.1f}",
            f"{build.above_baseline_mb:.1f}",
            growth,
            f"{build.document_mb:.2f}",
        )
        print("  ".join(f"{value:>{width}}" for value, width in zip(values, widths, strict=True)))
    if ratio:
        print()
        print(f"ratio {ratio['sizes']} (participants x{ratio['participants']}):")
        print(f"  build time              x{ratio['build_seconds']}")
        print(f"  memory above baseline   x{ratio['above_baseline_mb']}")
        print(f"  memory growth of build  x{ratio['build_growth_mb']}")
        print(f"  document size           x{ratio['document_mb']}")
    print()
    for build in builds:
        seconds = ", ".join(f"{run['seconds']:.2f}" for run in build.runs)
        print(
            f"{build.participants}: build s of each run {seconds}; {build.queries} queries per build; "
            f"whole child process {build.process_seconds:.1f} s"
        )


# --- Main -----------------------------------------------------------------------------------------------


def run_benchmark(args: argparse.Namespace, work_dir: Path) -> int:
    configure_benchmark_environment(work_dir, args.broker_url)
    say(f"recreating database {DB_NAME} and flushing Redis db 4")
    setup: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "PostgreSQL": recreate_database(DB_NAME),
        "Redis": flush_redis(REDIS_URL),
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
    try:
        seeded = seed(args.sizes, args.batch_size)
        baseline = measure_baseline(args.repeat)
        builds = [measure(size, seeded, baseline, args.repeat) for size in args.sizes]
    finally:
        say("purging the benchmark's messages from RabbitMQ")
        purged = purge_queues()
        say(f"purged {purged} messages")

    ratio = ratios(builds)
    if args.json:
        data = {
            "setup": setup,
            "baseline": {"peak_rss_mb": baseline.peak_rss_mb, **asdict(baseline)},
            "builds": [asdict(build) for build in builds],
            "ratio": ratio,
        }
        print(json.dumps(data, indent=2))
    else:
        print_table(setup, baseline, builds, ratio)
    return 0


def main() -> int:
    args = parse_args()
    if args.baseline:
        return child_baseline()
    if args.build_one is not None:
        return child_build(args.build_one)
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
