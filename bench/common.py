"""What the benchmarks in bench/ share: the environment, the backing services, the servers, the logs.

The scripts import it as a sibling module (`from common import ...`): they are run as
`.venv/bin/python bench/<script>.py`, which puts bench/ first on sys.path.

Only the standard library is imported here at module level: report_bench.py's child processes
measure their own memory and must load what the application loads, nothing more. psycopg and
redis are imported inside the functions that use them.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import runpy
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# The interpreter's own directory: gunicorn and uvicorn are installed next to it in the virtualenv.
VENV_BIN = Path(sys.executable).parent

HOST = "127.0.0.1"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"
# The deployed web worker count: config/gunicorn.conf.py's (WEB_WORKERS when set), each benchmark's
# default for the server under test and the bare app alike.
DEPLOYED_WEB_WORKERS = int(runpy.run_path(str(REPO / "config" / "gunicorn.conf.py"))["workers"])


class BenchError(Exception):
    """The benchmark could not run (or its figures are invalid); the message says why."""


def say(message: str, tag: str = "bench") -> None:
    """A progress line on stderr, so that stdout carries only the table or the JSON."""
    print(f"[{tag}] {message}", file=sys.stderr, flush=True)


# --- Running a benchmark ----------------------------------------------------------------------------


def run_in_work_dir(
    benchmark: Callable[[Path], int],
    *,
    prefix: str,
    keep_files: bool,
    errors: tuple[type[BaseException], ...],
    say: Callable[[str], None],
) -> int:
    """Runs `benchmark(work_dir)` in a new temporary directory and returns its exit code.

    A `kill` (SIGTERM) unwinds like Ctrl-C, so the benchmark's own clean-up (servers, sockets) runs.
    BenchError, OSError, subprocess errors and `errors` are reported with `say` and give 1. The
    directory is removed at the end unless `keep_files`.
    """
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    work_dir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        return benchmark(work_dir)
    except (BenchError, OSError, subprocess.SubprocessError, *errors) as exc:  # type: ignore[misc]
        say(f"the benchmark could not run: {type(exc).__name__}: {exc}")
        return 1
    finally:
        if keep_files:
            say(f"work files kept in {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


# What a server under a benchmark's load needs, whichever benchmark drives it: the load comes from
# one address with access tokens minted before the server starts, which must outlive the run
# (and are signed with SECRET_KEY: a JWT_SIGNING_KEY inherited from the shell is to be unset).
SERVER_UNDER_LOAD = {
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "AUTH_THROTTLE_RATE": "1000000/min",
    "JWT_ACCESS_MINUTES": "120",
}


def configure_environment(
    work_dir: Path,
    *,
    db_name: str,
    redis_url: str,
    broker_url: str,
    extra: dict[str, str],
    unset: Iterable[str] = (),
) -> None:
    """Sets the deployment's variables in this process (Django here and every child process read them).

    Production configuration on the benchmark's database, Redis db and broker, a random SECRET_KEY,
    WARNING logs, no e-mail server and VAR_DIR in the work directory; then `extra`, and the variables
    in `unset` removed (a value inherited from the shell would change the run).
    """
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": f"postgres://postgres@{HOST}:5432/{db_name}",
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": broker_url,
            "SECRET_KEY": secrets.token_urlsafe(64),
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",
            # The per-request INFO line would otherwise be a large share of each request's work.
            "LOG_LEVEL": "WARNING",
            "EMAIL_URL": "",
            # Mail files and the like go to the work directory, not to the clone's var/.
            "VAR_DIR": str(work_dir / "var"),
            **extra,
        }
    )
    for name in unset:
        os.environ.pop(name, None)
    # The API serves no static files; the directory exists so that WhiteNoise does not warn about it.
    (work_dir / "var" / "static").mkdir(parents=True, exist_ok=True)


# --- Backing services -----------------------------------------------------------------------------


def recreate_database(db_name: str) -> str:
    """Drops and creates the throwaway database; returns the PostgreSQL server version."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        name = sql.Identifier(db_name)
        # FORCE: a previous run interrupted mid-way may have left connections behind.
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
        row = conn.execute("SELECT current_setting('server_version')").fetchone()
    return str(row[0]) if row else "?"


def flush_redis(redis_url: str) -> str:
    """Empties the benchmark's Redis database (that db only); returns the Redis server version."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=5)
    try:
        client.flushdb()
        return str(client.info("server").get("redis_version", "?"))
    finally:
        client.close()


def purge_queues() -> int:
    """Drops the tasks the run published (no worker consumes them here). Returns how many."""
    from config.celery import app

    return int(app.control.purge() or 0)


def run_migrations() -> None:
    """`manage.py migrate` in a child process, on the database of the environment."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"], cwd=REPO, check=True
    )


def setup_django() -> None:
    """Makes the project importable and sets Django up in this process."""
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


# --- Servers ------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port of HOST that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def http_get(port: int, path: str, token: str = "") -> tuple[int, bytes]:
    """GET on HOST:port, with a bearer token when given; the status and the body."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file ("" when there is none yet)."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def gunicorn_command(port: int, workers: int, config_file: str | None = None) -> list[str]:
    """gunicorn serving config.wsgi on HOST:port with sync workers, its log on stderr."""
    config = ["--config", config_file] if config_file else []
    return [
        str(VENV_BIN / "gunicorn"),
        *config,
        "config.wsgi",
        "--workers",
        str(workers),
        "--bind",
        f"{HOST}:{port}",
        "--no-control-socket",
        "--error-logfile",
        "-",
    ]


# The HTTP servers a benchmark can put the platform (and the bare reference app) behind.
SERVERS = ("gunicorn-sync", "gunicorn-gthread", "granian")


def server_command(server: str, app: str, port: int, workers: int, threads: int) -> list[str]:
    """The command serving the WSGI `app` ("module:attribute") on HOST:port with `server`.

    gunicorn runs with the deployment's config/gunicorn.conf.py, the worker class and counts given
    here overriding it; `threads` is gthread's threads per worker, granian's blocking threads per
    worker, and is ignored by sync workers. Every server logs to stderr.
    """
    if server in ("gunicorn-sync", "gunicorn-gthread"):
        module, _, attribute = app.partition(":")
        worker = ["--worker-class", "sync"] if server == "gunicorn-sync" else [
            "--worker-class", "gthread", "--threads", str(threads)
        ]  # fmt: skip
        return [
            str(VENV_BIN / "gunicorn"),
            "--config",
            "config/gunicorn.conf.py",
            f"{module}:{attribute or 'application'}",
            "--workers",
            str(workers),
            *worker,
            "--bind",
            f"{HOST}:{port}",
            "--no-control-socket",
            "--error-logfile",
            "-",
        ]
    if server == "granian":
        return [
            str(VENV_BIN / "granian"),
            "--interface",
            "wsgi",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--blocking-threads",
            str(threads),
            "--no-ws",
            "--http",
            "1",
            app if ":" in app else f"{app}:application",
        ]
    raise BenchError(f"unknown server {server!r}; one of {', '.join(SERVERS)}")


def wait_until_live(
    name: str, process: subprocess.Popen[bytes], port: int, log_path: Path, timeout: float = 30
) -> None:
    """Polls /health/live until it answers 200; BenchError when the server exits, errs or is too slow."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{name} exited with code {process.returncode}:\n{tail(log_path)}")
        try:
            status, body = http_get(port, "/health/live")
        except OSError:  # not listening yet
            time.sleep(0.2)
            continue
        if status == 200:
            return
        # Any answer comes from Django itself: an error now will not go away by waiting.
        raise BenchError(f"{name}: /health/live answered {status}: {body[:300]!r}\n{tail(log_path)}")
    raise BenchError(f"{name} did not answer /health/live within {timeout:.0f} s:\n{tail(log_path)}")


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
def running_server(
    name: str,
    command: list[str],
    port: int,
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
) -> Iterator[subprocess.Popen[bytes]]:
    """Starts a server, waits for /health/live, and stops it on the way out whatever happened.

    `env`: variables set for this server on top of this process's environment. `cwd`: the source
    tree it serves (this clone unless said otherwise). Yields the process (the leader of a session
    of its own: see `session_cpu_seconds`).
    """
    with log_path.open("wb") as log:
        # A session of its own: Ctrl-C reaches this script only, which then stops the server in order.
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **env} if env else None,
        )
        try:
            wait_until_live(name, process, port, log_path)
            yield process
        finally:
            stop(process)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def session_cpu_seconds(session_id: int) -> float:
    """CPU time (user + system) used so far by the live processes of a session (Linux /proc).

    A server started by `running_server` leads a session of its own, so this is the server's
    master and workers. Taken before and after a run, the difference is that run's CPU, which
    the machine's other load does not inflate the way it does wall-clock throughput.
    """
    processes = CpuSnapshot.take().processes.values()
    return sum(ticks for session, _, ticks, _ in processes if session == session_id) / _CLOCK_TICKS


_PF_KTHREAD = 0x00200000  # proc(5) stat's flags: a kernel thread


@dataclass
class CpuSnapshot:
    """Every live process's CPU ticks (user + system) and the machine's idle ticks, at one moment
    (Linux /proc): two of them give what each process used in between."""

    taken: float  # time.monotonic()
    # pid: (session, command name, ticks, start time); "[name]": a kernel thread's
    processes: dict[int, tuple[int, str, int, int]]
    idle: int  # idle and I/O wait, all CPUs

    @classmethod
    def take(cls) -> CpuSnapshot:
        processes: dict[int, tuple[int, str, int, int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[6]) & _PF_KTHREAD:
                name = f"[{name}]"  # a kernel thread, named as ps(1) shows one
            # proc(5)'s fields 6 (session), 14 and 15 (user and system time), 22 (start time)
            session, ticks, start = int(fields[3]), int(fields[11]) + int(fields[12]), int(fields[19])
            processes[int(entry.name)] = (session, name, ticks, start)
        # The first line: "cpu user nice system idle iowait ...", in ticks of all CPUs.
        cpu = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return cls(time.monotonic(), processes, int(cpu[4]) + int(cpu[5]))


def cpu_split(
    before: CpuSnapshot, after: CpuSnapshot, role: Callable[[int, int, str], str]
) -> dict[str, float]:
    """What each role used between two snapshots, in percent of one core (200 is both cores of a
    2-core machine), "idle" included. `role(pid, session, command name)` names a process's role;
    a process that ended meanwhile is not counted, one that started is counted whole."""
    seconds = after.taken - before.taken
    if seconds <= 0:
        return {}
    used: dict[str, int] = {}
    for pid, (session, name, ticks, start) in after.processes.items():
        earlier = before.processes.get(pid)
        # (A kernel worker's name changes with its work: the start time tells the same process.)
        spent = ticks - earlier[2] if earlier and earlier[3] == start else ticks
        if spent > 0:
            key = role(pid, session, name)
            used[key] = used.get(key, 0) + spent
    used["idle"] = after.idle - before.idle
    return {key: round(100 * ticks / _CLOCK_TICKS / seconds, 1) for key, ticks in used.items()}


# --- Server logs ----------------------------------------------------------------------------------------


@dataclass
class ServerLog:
    path: str
    lines_by_level: dict[str, int] = field(default_factory=dict)
    # The most frequent distinct messages above INFO, with how often each came: [count, message].
    notable: list[tuple[int, str]] = field(default_factory=list)


_GUNICORN_LINE = re.compile(r"^\[[^\]]+\] \[\d+\] \[([A-Z]+)\] (.*)$")
_UVICORN_LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL):\s+(.*)$")
_NUMBER = re.compile(r"\d+")
# The last line of a traceback ("ValueError: ...") or a Python warning ("file:1: UserWarning: ...").
_EXCEPTION_LINE = re.compile(r"^(\S+: )?[A-Za-z_.]*(Error|Exception|Warning|Exit|Interrupt)\b.*")


def fold_numbers(text: str) -> str:
    """Numbers (ids, pids, ports) replaced by N, so that one problem repeated reads the same."""
    return _NUMBER.sub("N", text)


def classify_log_line(line: str) -> tuple[str, str | None]:
    """The line's level and, when it is worth showing, its message without timestamp and pid."""
    with contextlib.suppress(ValueError, AttributeError):
        record = json.loads(line)  # the app's JSON lines (config.logging)
        level = str(record.get("level", "OTHER"))
        message = f"[{level}] {record.get('logger', '')}: {record.get('msg', '')}"
        if record.get("exc"):
            message += " | " + str(record["exc"]).strip().splitlines()[-1]
        return level, message
    for pattern in (_GUNICORN_LINE, _UVICORN_LINE):
        if match := pattern.match(line):
            return match.group(1), f"[{match.group(1)}] {match.group(2)}"
    # Anything else is a traceback or a warning printed by Python: only its headline is worth showing.
    return "OTHER", line.strip() if _EXCEPTION_LINE.match(line.strip()) else None


def read_server_log(path: Path, keep: int = 10) -> ServerLog:
    """Counts the log's lines per level and its `keep` most frequent distinct messages above INFO."""
    levels: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            level, message = classify_log_line(line)
            levels[level] += 1
            if message and level not in ("DEBUG", "INFO"):
                # Grouped without their numbers, the same problem is counted once instead of
                # filling the list.
                messages[fold_numbers(message)[:300]] += 1
    notable = [(count, message) for message, count in messages.most_common(keep)]
    return ServerLog(str(path), dict(levels), notable)


# --- Seed data --------------------------------------------------------------------------------------


def create_participants(count: int, email_prefix: str) -> list[Any]:
    """Bulk-creates `count` participants (<email_prefix>000000@bench.example, ...); the User objects."""
    from django.contrib.auth.hashers import make_password

    from participants.models import User

    # One unusable password for all: no hashing per user, and nobody can sign in with it.
    unusable = make_password(None)
    users = [
        User(
            email=f"{email_prefix}{number:06d}@bench.example",
            full_name=f"Participant {number}",
            password=unusable,
        )
        for number in range(count)
    ]
    User.objects.bulk_create(users, batch_size=5000)
    return users
