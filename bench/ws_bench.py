"""WebSocket fan-out benchmark: how fast a committed enrollment reaches every watcher of the event.

From the root of a clean clone (after `make .venv/.dev-installed`):

    .venv/bin/python bench/ws_bench.py                  # progress on stderr, the table on stdout
    .venv/bin/python bench/ws_bench.py --sockets 1000   # more watchers
    .venv/bin/python bench/ws_bench.py --json           # the same figures as one JSON document

    .venv/bin/python bench/ws_bench.py --sockets 5000   # the rush target (below)

The production topology on this machine: PostgreSQL (the throwaway database `events_ha`, recreated),
Redis db 5 (channel layer and cache, flushed at start), RabbitMQ vhost `ha` (the tasks the
enrollments publish are purged at the end), HTTP served by gunicorn (`config.wsgi`, sync workers)
and WebSockets by uvicorn (`config.asgi`). The script seeds one event and participants with access
tokens, opens N sockets on `/ws/events/<id>/` from one asyncio process, then for each round POSTs
one enrollment to gunicorn and times, for every socket, the arrival of the `event.seats` message
with the new count. Then a burst: `--burst` enrollments at once (seat messages may merge: each
socket must end with the final count, within a second of the last change). Then every socket
closes at once (a disconnect storm) and what the server left in Redis is counted. bench/README.md
says what the figures mean.

Targets (one uvicorn process): p99 < 1 s from the POST to every socket having the count, the final
count on every socket, 0 errors (client side, and ERROR lines in the servers' logs), 0 group
memberships and 0 pub/sub subscriptions left in Redis after the sockets closed. The last line says
PASS or FAIL with the targets missed. `--layer core|pubsub` runs the servers with another
channel-layer backend (bench/ws_layer_settings.py), to compare.

The exit code is non-zero only when the benchmark could not run; a missed target is a finding
(printed: FAIL), not an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import importlib.metadata
import json
import math
import os
import platform
import resource
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
import redis.asyncio as aioredis
import websockets

# bench/common.py: run as `python bench/ws_bench.py`, this script has bench/ first on sys.path.
from common import (
    BROKER_URL,
    DEPLOYED_WEB_WORKERS,
    HOST,
    SERVER_UNDER_LOAD,
    VENV_BIN,
    BenchError,
    ServerLog,
    configure_environment,
    create_participants,
    flush_redis,
    fold_numbers,
    free_port,
    gunicorn_command,
    purge_queues,
    read_server_log,
    recreate_database,
    run_in_work_dir,
    run_migrations,
    running_server,
    setup_django,
)
from common import say as common_say
from websockets.exceptions import ConnectionClosed, InvalidHandshake

DB_NAME = "events_ha"
REDIS_DB = 5
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
# A RabbitMQ virtual host of this benchmark's own: the purge at the end touches nothing else.
BENCH_BROKER_URL = BROKER_URL.rstrip("/") + "/ha"

# The targets (module docstring).
TARGET_P99_MS = 1000.0
# From the last change of a burst to every socket having the final count (the contract's second).
TARGET_SETTLE_MS = 1000.0
# --layer: channel-layer backends to compare (bench/ws_layer_settings.py); "settings": as configured.
LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}

# Far above any run's enrollments: every round takes a seat, the event never fills.
EVENT_CAPACITY = 1_000_000


def say(message: str) -> None:
    common_say(message, tag="ws-bench")


# --- Options and environment ----------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sockets", type=int, default=500, help="WebSockets watching the event (500)")
    parser.add_argument("--rounds", type=int, default=5, help="measured enrollments, one per round (5)")
    parser.add_argument(
        "--warmup-rounds",
        type=int,
        default=2,
        help="enrollments before the measured rounds, shown but not counted (2)",
    )
    parser.add_argument(
        "--connect-concurrency", type=int, default=50, help="sockets being opened at the same time (50)"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds from the POST a socket has to get the count (10)"
    )
    parser.add_argument("--pause", type=float, default=1.0, help="seconds of quiet between rounds (1)")
    parser.add_argument(
        "--burst", type=int, default=20, help="enrollments at once after the rounds, 0 for none (20)"
    )
    parser.add_argument(
        "--layer",
        choices=["settings", *LAYERS],
        default="settings",
        help="channel-layer backend of the servers: as config/settings.py says (default), or another",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=DEPLOYED_WEB_WORKERS,
        help=f"gunicorn workers ({DEPLOYED_WEB_WORKERS}, as deployed)",
    )
    parser.add_argument(
        "--no-deflate",
        action="store_true",
        help="uvicorn with --ws-per-message-deflate false (compression costs CPU per socket and message)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    parser.add_argument("--keep-files", action="store_true", help="keep the work directory (server logs)")
    args = parser.parse_args()
    if min(args.sockets, args.rounds, args.connect_concurrency, args.workers) < 1:
        parser.error("--sockets, --rounds, --connect-concurrency and --workers must be at least 1")
    if args.warmup_rounds < 0 or args.timeout <= 0 or args.pause < 0 or args.burst < 0:
        parser.error("--warmup-rounds, --pause and --burst must not be negative, --timeout must be positive")
    return args


def configure_benchmark_environment(work_dir: Path, layer: str) -> None:
    """The deployment's variables (bench/common.py), as both servers are to read them."""
    configure_environment(
        work_dir,
        db_name=DB_NAME,
        # The channel layer and the cache: the web workers broadcast through it to uvicorn.
        redis_url=REDIS_URL,
        # Production publishes the enrollment's notification to RabbitMQ (no worker runs here;
        # the queues are purged at the end).
        broker_url=BENCH_BROKER_URL,
        extra=SERVER_UNDER_LOAD,
        # The pool is left to each server as deployed: gunicorn keeps persistent connections,
        # config/asgi.py turns psycopg's pool on for uvicorn. A value inherited from the shell
        # would change both.
        unset=[
            "JWT_SIGNING_KEY",
            "DB_POOL",
            "DB_POOL_MIN",
            "DB_POOL_MAX",
            "BROADCAST_TIMEOUT_SECONDS",
            "WS_BENCH_LAYER",
        ],
    )
    if layer in LAYERS:
        # config.settings with another backend (the servers run from the clone's root: `bench.` is
        # importable there as a namespace package).
        os.environ["DJANGO_SETTINGS_MODULE"] = "bench.ws_layer_settings"
        os.environ["WS_BENCH_LAYER"] = LAYERS[layer]


def raise_open_files_limit() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit (the servers inherit it); returns (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def layer_backend(layer: str) -> str:
    """The backend the servers run with (Django is set up in this process by then)."""
    if layer in LAYERS:
        return LAYERS[layer]
    from django.conf import settings

    return str(settings.CHANNEL_LAYERS["default"]["BACKEND"])


def version_of(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


# --- Seed data --------------------------------------------------------------------------------------


@dataclass
class Seed:
    event_id: int
    watcher_tokens: list[str]  # one per socket, each of a different participant
    enroller_tokens: list[str]  # one per round (warm-up first), participants distinct from watchers


def seed(watchers: int, enrollers: int) -> Seed:
    from django.db import connections
    from rest_framework_simplejwt.tokens import AccessToken

    from events.models import Event

    started = time.monotonic()
    event = Event.objects.create(
        title="Watched event",
        description="Seeded by bench/ws_bench.py.",
        date=dt.date.today() + dt.timedelta(days=30),
        time=dt.time(10, 0),
        location="Main hall",
        capacity=EVENT_CAPACITY,
    )
    users = create_participants(watchers + enrollers, "watcher")
    tokens = [str(AccessToken.for_user(user)) for user in users]
    # The servers have their own connections; this process keeps none open while it measures.
    connections.close_all()
    say(
        f"seeded event {event.pk} (capacity {EVENT_CAPACITY}) and {len(users)} participants with "
        f"tokens in {time.monotonic() - started:.1f} s"
    )
    return Seed(event.pk, tokens[:watchers], tokens[watchers:])


# --- The servers --------------------------------------------------------------------------------------


def uvicorn_command(port: int, deflate: bool = True) -> list[str]:
    """uvicorn as deployed (`deflate`: permessage-deflate offered to clients, uvicorn's default)."""
    return [
        str(VENV_BIN / "uvicorn"),
        "config.asgi:application",
        "--host",
        HOST,
        "--port",
        str(port),
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "10",
        "--log-level",
        "warning",
        *([] if deflate else ["--ws-per-message-deflate", "false"]),
    ]


# --- Measurement ----------------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    """Nearest rank: the smallest value with at least pct % of the values at or below it."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(math.ceil(pct / 100 * len(ordered)) - 1, 0)]


class Fanout:
    """The count the current round waits for, and how many sockets have received it."""

    def __init__(self) -> None:
        self.target: int | None = None
        self.expected = 0
        self.reached = 0
        self.done = asyncio.Event()

    def start(self, target: int, expected: int) -> None:
        self.target, self.expected, self.reached = target, expected, 0
        self.done = asyncio.Event()
        if expected == 0:
            self.done.set()

    def arrived(self, enrolled: int) -> None:
        if enrolled == self.target:
            self.reached += 1
            if self.reached >= self.expected:
                self.done.set()


@dataclass
class Watcher:
    """One socket: when each seat count first reached it."""

    index: int
    ws: Any = None
    connect_s: float | None = None  # handshake and initial message, once its turn to connect came
    initial: dict[str, Any] | None = None
    arrivals: dict[int, float] = field(default_factory=dict)  # enrolled -> perf_counter at arrival
    last: int | None = None  # the count of the newest message
    unexpected: int = 0  # messages that are not a well-formed event.seats of the watched event
    close_code: int | None = None  # set when the connection closed before the end of the run
    reader: asyncio.Task[None] | None = None
    got_initial: asyncio.Event = field(default_factory=asyncio.Event)


def seats_count(raw: str | bytes, event_id: int) -> int | None:
    """The `enrolled` of a well-formed event.seats message of the event, else None."""
    try:
        message = json.loads(raw)
        if message.get("type") != "event.seats" or message.get("event") != event_id:
            return None
        capacity, enrolled, left = message["capacity"], message["enrolled"], message["seats_left"]
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if not all(isinstance(value, int) for value in (capacity, enrolled, left)):
        return None
    return enrolled if left == max(capacity - enrolled, 0) else None


async def read_messages(watcher: Watcher, event_id: int, fanout: Fanout) -> None:
    try:
        async for raw in watcher.ws:
            arrived = time.perf_counter()  # before anything else: the parse is not the server's time
            enrolled = seats_count(raw, event_id)
            if enrolled is None:
                watcher.unexpected += 1
                continue
            if watcher.initial is None:
                watcher.initial = json.loads(raw)
                watcher.got_initial.set()
            watcher.last = enrolled
            if enrolled not in watcher.arrivals:
                watcher.arrivals[enrolled] = arrived
                fanout.arrived(enrolled)
    except ConnectionClosed:
        pass
    finally:
        watcher.close_code = watcher.ws.close_code if watcher.ws.close_code is not None else -1
        watcher.got_initial.set()  # wakes a connect still waiting: it sees the close


def ws_url(port: int, event_id: int, token: str) -> str:
    return f"ws://{HOST}:{port}/ws/events/{event_id}/?token={token}"


async def open_watcher(
    watcher: Watcher, url: str, event_id: int, fanout: Fanout, limit: asyncio.Semaphore, timeout: float
) -> str | None:
    """Opens the socket and waits for its initial count; returns why it failed, or None."""
    async with limit:
        started = time.perf_counter()
        try:
            # No client pings: browsers send none (uvicorn pings every 20 s, as deployed).
            watcher.ws = await websockets.connect(url, open_timeout=timeout, ping_interval=None)
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            return f"connect: {type(exc).__name__}: {exc}"
        watcher.reader = asyncio.create_task(read_messages(watcher, event_id, fanout))
        try:
            await asyncio.wait_for(watcher.got_initial.wait(), timeout)
        except TimeoutError:
            failure = f"no initial event.seats within {timeout:.0f} s"
        else:
            if watcher.initial is not None:
                watcher.connect_s = time.perf_counter() - started
                return None
            failure = f"closed before its initial event.seats (code {watcher.close_code})"
        # Out of the measurement: a socket that failed here must not count as a watcher later.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(watcher.ws.close(), timeout)
        return failure


async def close_watchers(watchers: list[Watcher]) -> dict[str, int]:
    """Closes every socket at once (a disconnect storm); the failures, by kind."""
    failures: Counter[str] = Counter()

    async def close(watcher: Watcher) -> None:
        if watcher.ws is not None:
            try:
                await asyncio.wait_for(watcher.ws.close(), 10)
            except Exception as exc:  # noqa: BLE001 - counted, the others still close
                failures[f"close: {type(exc).__name__}"] += 1
        if watcher.reader is not None:
            watcher.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher.reader

    await asyncio.gather(*(close(watcher) for watcher in watchers))
    return dict(failures)


@dataclass
class ConnectPhase:
    requested: int
    opened: int
    wall_s: float
    # Handshake plus initial message of each socket, from its turn to connect (not the queue).
    p50_ms: float
    p99_ms: float
    max_ms: float
    failures: dict[str, int]

    @property
    def per_second(self) -> float:
        return self.opened / self.wall_s if self.wall_s else 0.0


@dataclass
class Round:
    number: int
    enrolled: int  # the count the sockets waited for
    http_ms: float  # the enrollment POST, from t0 to the full answer
    latencies_ms: list[float]  # per socket that received the count within the timeout
    watching: int  # sockets opened (one closed by the server since then counts as a miss)

    @property
    def missed(self) -> int:
        return self.watching - len(self.latencies_ms)

    def summary(self) -> dict[str, Any]:
        values = self.latencies_ms
        return {
            "round": self.number,
            "enrolled": self.enrolled,
            "http_ms": round(self.http_ms, 2),
            "watching": self.watching,
            "received": len(values),
            "missed": self.missed,
            "first_ms": round(min(values), 2) if values else None,
            "p50_ms": round(percentile(values, 50), 2) if values else None,
            "p99_ms": round(percentile(values, 99), 2) if values else None,
            "max_ms": round(max(values), 2) if values else None,
        }


@dataclass
class Warmup:
    """Enrollments sent `workers` at a time, so that every gunicorn worker serves one before the
    measured rounds (a worker's first request pays for lazy imports and connections)."""

    batches: int
    concurrent: int
    http_ms: list[float]
    missed: int  # sockets without the last count of a batch within the timeout


@dataclass
class Measurement:
    connect: ConnectPhase
    warmup: Warmup
    rounds: list[Round]
    late: int  # counts that arrived after the timeout of their round
    unexpected_messages: int
    closed_early: dict[str, int]  # close code -> sockets closed by the server during the run
    burst: Burst | None
    final: FinalCheck
    redis_open: RedisFootprint  # with every socket open
    redis_closed: RedisFootprint | None = None  # once every socket is closed (should be all 0)
    close_failures: dict[str, int] = field(default_factory=dict)


@dataclass
class Burst:
    """`size` enrollments at once: seat messages may merge; every socket must end on the last."""

    size: int
    final: int  # the count after the burst
    http_ms: list[float]
    last_answer_ms: float  # from t0 to the last POST's answer (the last change is committed by then)
    latencies_ms: list[float]  # per socket: from t0 to the arrival of the final count
    watching: int

    @property
    def missed(self) -> int:
        return self.watching - len(self.latencies_ms)

    def summary(self) -> dict[str, Any]:
        values = self.latencies_ms
        settle = [value - self.last_answer_ms for value in values]
        return {
            "size": self.size,
            "final": self.final,
            "last_answer_ms": round(self.last_answer_ms, 2),
            "received": len(values),
            "missed": self.missed,
            "p50_ms": rounded(percentile(values, 50)),
            "p99_ms": rounded(percentile(values, 99)),
            "max_ms": rounded(max(values, default=math.nan)),
            # From the last answer: the contract's "within a second of the last change".
            "settle_max_ms": rounded(max(settle, default=math.nan)),
        }


@dataclass
class FinalCheck:
    """After the last change and a quiet second: which count each socket shows."""

    expected: int
    right: int
    wrong: dict[str, int]  # the count shown (or "closed") -> sockets


@dataclass
class RedisFootprint:
    """What the WebSocket side holds in Redis (db 5 is this benchmark's alone)."""

    group_members: int  # channels_redis core layer: members of the event's group (a sorted set)
    subscriptions: int  # pub/sub channels subscribed by the clients of db 5
    subscribers: int  # clients of db 5 subscribed to at least one channel
    event_group_subscribers: int  # subscribers of the event group's pub/sub channel (pub/sub layer)

    @property
    def leftovers(self) -> int:
        return self.group_members + self.subscriptions + self.event_group_subscribers


async def post_enrollment(client: httpx.AsyncClient, url: str, token: str) -> float:
    """POSTs one enrollment; its duration in seconds. Anything but 201 stops the benchmark."""
    started = time.perf_counter()
    response = await client.post(url, headers={"Authorization": f"Bearer {token}"})
    elapsed = time.perf_counter() - started
    if response.status_code != 201:
        raise BenchError(f"POST {url} answered {response.status_code}, not 201: {response.text[:500]}")
    return elapsed


async def wait_for_count(fanout: Fanout, t0: float, timeout: float) -> None:
    """Until every socket still open has the armed count, or `timeout` after t0."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(fanout.done.wait(), max(t0 + timeout - time.perf_counter(), 0))


def arm(fanout: Fanout, watchers: list[Watcher], target: int) -> None:
    fanout.start(target, sum(1 for watcher in watchers if watcher.close_code is None))


def layer_prefix() -> str:
    """The channel layer's prefix, as the servers' settings say (Django is set up here too)."""
    from django.conf import settings

    return str(settings.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("prefix", "asgi"))


def group_key(event_id: int) -> str:
    # channels_redis core layer's key of a group: "<prefix>:group:<name>".
    return f"{layer_prefix()}:group:event-seats-{event_id}"


def group_channel(event_id: int) -> str:
    # channels_redis pub/sub layer's channel of a group: "<prefix>__group__<name>".
    return f"{layer_prefix()}__group__event-seats-{event_id}"


async def redis_footprint(event_id: int) -> RedisFootprint:
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    try:
        members = int(await client.zcard(group_key(event_id)))
        # Pub/sub is not per database, but each client's line says which database it selected.
        clients = [c for c in await client.client_list() if str(c.get("db")) == str(REDIS_DB)]
        subscribed = [int(c.get("sub", 0)) + int(c.get("psub", 0)) for c in clients]
        numsub = dict(await client.pubsub_numsub(group_channel(event_id)))
        group_subscribers = int(next(iter(numsub.values()), 0))
    finally:
        await client.aclose()
    return RedisFootprint(
        group_members=members,
        subscriptions=sum(subscribed),
        subscribers=sum(1 for count in subscribed if count),
        event_group_subscribers=group_subscribers,
    )


async def settled_footprint(event_id: int, seconds: float = 10.0) -> RedisFootprint:
    """What is left once the server has handled the disconnects (nothing, or still after `seconds`:
    the server handles thousands of disconnects in a second or two)."""
    deadline = time.monotonic() + seconds
    while True:
        footprint = await redis_footprint(event_id)
        if footprint.leftovers == 0 or time.monotonic() > deadline:
            return footprint
        await asyncio.sleep(0.5)


async def open_all(
    args: argparse.Namespace, seeded: Seed, ws_port: int, watchers: list[Watcher], fanout: Fanout
) -> ConnectPhase:
    limit = asyncio.Semaphore(args.connect_concurrency)
    started = time.perf_counter()
    errors = await asyncio.gather(
        *(
            open_watcher(
                watcher,
                ws_url(ws_port, seeded.event_id, token),
                seeded.event_id,
                fanout,
                limit,
                args.timeout,
            )
            for watcher, token in zip(watchers, seeded.watcher_tokens, strict=True)
        )
    )
    wall_s = time.perf_counter() - started
    opened_ms = [watcher.connect_s * 1000 for watcher in watchers if watcher.connect_s is not None]
    return ConnectPhase(
        requested=len(watchers),
        opened=len(opened_ms),
        wall_s=wall_s,
        p50_ms=percentile(opened_ms, 50),
        p99_ms=percentile(opened_ms, 99),
        max_ms=max(opened_ms, default=math.nan),
        # Connect errors carry ports and addresses: folded, so that one cause is counted once.
        failures=dict(
            Counter(
                fold_numbers(error) if error.startswith("connect:") else error for error in errors if error
            )
        ),
    )


async def measure(args: argparse.Namespace, seeded: Seed, http_port: int, ws_port: int) -> Measurement:
    fanout = Fanout()
    watchers = [Watcher(index) for index in range(args.sockets)]
    url = f"http://{HOST}:{http_port}/api/v1/events/{seeded.event_id}/enrollments/"
    tokens = iter(seeded.enroller_tokens)
    measurement: Measurement | None = None
    close_failures: dict[str, int] = {}
    try:
        say(f"opening {args.sockets} sockets, {args.connect_concurrency} at a time")
        connect = await open_all(args, seeded, ws_port, watchers, fanout)
        rate = f"{connect.per_second:.0f}/s"
        say(f"{connect.opened} of {args.sockets} sockets open in {connect.wall_s:.1f} s ({rate})")
        opened = [watcher for watcher in watchers if watcher.connect_s is not None]
        if not opened:
            raise BenchError(f"no socket could be opened: {connect.failures}")
        initial = {watcher.initial["enrolled"] for watcher in opened if watcher.initial}
        if len(initial) != 1:
            raise BenchError(f"the sockets were told different initial counts: {sorted(initial)}")
        count = initial.pop()
        footprint_open = await redis_footprint(seeded.event_id)
        # The client stands for thousands of browsers: its own garbage collections (a full one
        # walks every socket's objects, hundreds of ms at 5,000) must not count as the server's
        # latency. Objects of the open sockets are frozen out of the collector, and it is off
        # while the enrollments are measured.
        gc.collect()
        gc.freeze()
        gc.disable()

        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as client:
            warmup = Warmup(args.warmup_rounds, args.workers, [], 0)
            for batch in range(1, args.warmup_rounds + 1):
                count += args.workers
                arm(fanout, opened, count)
                t0 = time.perf_counter()
                durations = await asyncio.gather(
                    *(post_enrollment(client, url, next(tokens)) for _ in range(args.workers))
                )
                await wait_for_count(fanout, t0, args.timeout)
                warmup.http_ms += [duration * 1000 for duration in durations]
                warmup.missed += sum(1 for watcher in opened if count not in watcher.arrivals)
                times = ", ".join(f"{duration * 1000:.0f}" for duration in durations)
                say(f"warm-up {batch}: {args.workers} enrollments at once, HTTP {times} ms")
                await asyncio.sleep(args.pause)

            rounds: list[Round] = []
            for number in range(1, args.rounds + 1):
                count += 1
                arm(fanout, opened, count)
                t0 = time.perf_counter()
                http_s = await post_enrollment(client, url, next(tokens))
                await wait_for_count(fanout, t0, args.timeout)
                latencies = [
                    (watcher.arrivals[count] - t0) * 1000
                    for watcher in opened
                    if count in watcher.arrivals and watcher.arrivals[count] - t0 <= args.timeout
                ]
                result = Round(number, count, http_s * 1000, latencies, len(opened))
                rounds.append(result)
                figures = result.summary()
                say(
                    f"round {number}: HTTP {figures['http_ms']} ms, p50 {figures['p50_ms']} ms, "
                    f"max {figures['max_ms']} ms, missed {result.missed}"
                )
                await asyncio.sleep(args.pause)

            burst = None
            if args.burst:
                count += args.burst
                burst = await run_burst(
                    args, client, url, [next(tokens) for _ in range(args.burst)], count, opened, fanout
                )
                figures = burst.summary()
                say(
                    f"burst of {args.burst}: last answer {figures['last_answer_ms']} ms, final count on "
                    f"every socket p50 {figures['p50_ms']} ms, max {figures['max_ms']} ms, "
                    f"missed {burst.missed}"
                )

        # A quiet second after the last change (the contract's bound), then what each socket shows.
        await asyncio.sleep(1.0)
        wrong = Counter(
            "closed" if watcher.close_code is not None else str(watcher.last)
            for watcher in opened
            if watcher.close_code is not None or watcher.last != count
        )
        final = FinalCheck(expected=count, right=len(opened) - sum(wrong.values()), wrong=dict(wrong))

        # A count that came after its round's timeout is late, not lost: told apart here.
        late = sum(
            max(
                sum(1 for watcher in opened if result.enrolled in watcher.arrivals)
                - len(result.latencies_ms),
                0,
            )
            for result in rounds
        )
        closed = Counter(str(watcher.close_code) for watcher in opened if watcher.close_code is not None)
        measurement = Measurement(
            connect=connect,
            warmup=warmup,
            rounds=rounds,
            late=late,
            unexpected_messages=sum(watcher.unexpected for watcher in watchers),
            closed_early=dict(closed),
            burst=burst,
            final=final,
            redis_open=footprint_open,
        )
    finally:
        gc.enable()
        say("closing every socket at once")
        close_failures = await close_watchers(watchers)
    # Each disconnect should leave nothing behind: no group member, no pub/sub subscription.
    assert measurement is not None
    measurement.close_failures = close_failures
    measurement.redis_closed = await settled_footprint(seeded.event_id)
    return measurement


async def run_burst(
    args: argparse.Namespace,
    client: httpx.AsyncClient,
    url: str,
    tokens: list[str],
    final: int,
    opened: list[Watcher],
    fanout: Fanout,
) -> Burst:
    """All enrollments at once; when each socket got the final count (intermediate ones may merge)."""
    arm(fanout, opened, final)
    t0 = time.perf_counter()
    answered: list[float] = []

    async def post(token: str) -> float:
        duration = await post_enrollment(client, url, token)
        answered.append(time.perf_counter())
        return duration

    durations = await asyncio.gather(*(post(token) for token in tokens))
    await wait_for_count(fanout, t0, args.timeout)
    latencies = [
        (watcher.arrivals[final] - t0) * 1000
        for watcher in opened
        if final in watcher.arrivals and watcher.arrivals[final] - t0 <= args.timeout
    ]
    return Burst(
        size=len(tokens),
        final=final,
        http_ms=[duration * 1000 for duration in durations],
        last_answer_ms=(max(answered) - t0) * 1000,
        latencies_ms=latencies,
        watching=len(opened),
    )


# --- Checks after the run -----------------------------------------------------------------------------


@dataclass
class SeatCheck:
    enrolled_count: int
    enrollment_rows: int
    posted: int  # 201 answers received (warm-up included)

    @property
    def passed(self) -> bool:
        return self.enrolled_count == self.enrollment_rows == self.posted


def check_seats(event_id: int, posted: int) -> SeatCheck:
    from events.models import Enrollment, Event

    event = Event.objects.get(pk=event_id)
    rows = Enrollment.objects.filter(event_id=event_id).count()
    return SeatCheck(event.enrolled_count, rows, posted)


# --- Report -------------------------------------------------------------------------------------------


def rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 2)


def totals(rounds: list[Round]) -> dict[str, Any]:
    latencies = [value for result in rounds for value in result.latencies_ms]
    http_ms = [result.http_ms for result in rounds]
    return {
        "rounds": len(rounds),
        "messages": len(latencies),
        "missed": sum(result.missed for result in rounds),
        "p50_ms": rounded(percentile(latencies, 50)),
        "p99_ms": rounded(percentile(latencies, 99)),
        "max_ms": rounded(max(latencies, default=math.nan)),
        "http_p50_ms": rounded(percentile(http_ms, 50)),
        "http_max_ms": rounded(max(http_ms, default=math.nan)),
    }


def report_data(
    measurement: Measurement, seats: SeatCheck, logs: dict[str, ServerLog], setup: dict[str, Any]
) -> dict[str, Any]:
    connect, warmup = measurement.connect, measurement.warmup
    return {
        "setup": setup,
        "connect": {
            **asdict(connect),
            "p50_ms": rounded(connect.p50_ms),
            "p99_ms": rounded(connect.p99_ms),
            "max_ms": rounded(connect.max_ms),
            "wall_s": round(connect.wall_s, 3),
            "per_second": round(connect.per_second, 1),
        },
        "warmup": {**asdict(warmup), "http_ms": [round(value, 2) for value in warmup.http_ms]},
        "rounds": [result.summary() for result in measurement.rounds],
        "totals": totals(measurement.rounds),
        "late": measurement.late,
        "unexpected_messages": measurement.unexpected_messages,
        "closed_early": measurement.closed_early,
        "burst": measurement.burst.summary() if measurement.burst else None,
        "final": asdict(measurement.final),
        "redis": {
            "sockets_open": asdict(measurement.redis_open),
            "after_close": asdict(measurement.redis_closed) if measurement.redis_closed else None,
            "left_after_close": measurement.redis_closed.leftovers if measurement.redis_closed else None,
        },
        "close_failures": measurement.close_failures,
        "errors": errors(measurement, logs),
        "seats": {**asdict(seats), "passed": seats.passed},
        "server_logs": {name: asdict(log) for name, log in logs.items()},
    }


def errors(measurement: Measurement, logs: dict[str, ServerLog]) -> dict[str, int]:
    """Every error of the run, client side and in the servers' logs (all of them should be 0)."""
    return {
        "connect failures": sum(measurement.connect.failures.values()),
        "sockets closed by the server": sum(measurement.closed_early.values()),
        "unexpected messages": measurement.unexpected_messages,
        "close failures": sum(measurement.close_failures.values()),
        **{
            f"{name} log ERROR lines": log.lines_by_level.get("ERROR", 0)
            + log.lines_by_level.get("CRITICAL", 0)
            for name, log in logs.items()
        },
    }


def verdict(data: dict[str, Any]) -> list[str]:
    """The targets missed (empty: all met)."""
    missed = []
    total, burst, final = data["totals"], data["burst"], data["final"]
    if total["p99_ms"] is None or total["p99_ms"] >= TARGET_P99_MS:
        missed.append(f"p99 {total['p99_ms']} ms, not < {TARGET_P99_MS:.0f} ms")
    if total["missed"] or data["warmup"]["missed"]:
        missed.append(f"sockets without a count: {total['missed']} (warm-up {data['warmup']['missed']})")
    if burst is not None:
        if burst["missed"]:
            missed.append(f"burst: {burst['missed']} sockets never got the final count")
        elif burst["settle_max_ms"] is None or burst["settle_max_ms"] >= TARGET_SETTLE_MS:
            missed.append(f"burst: final count {burst['settle_max_ms']} ms after the last answer, not < 1 s")
    if final["wrong"]:
        missed.append(f"final count {final['expected']} not on {sum(final['wrong'].values())} sockets")
    if data["connect"]["opened"] < data["connect"]["requested"]:
        missed.append(f"{data['connect']['requested'] - data['connect']['opened']} sockets could not open")
    if sum(data["errors"].values()):
        missed.append("errors: " + ", ".join(f"{k} {v}" for k, v in data["errors"].items() if v))
    if data["redis"]["left_after_close"] != 0:
        missed.append(f"left in Redis after close: {data['redis']['after_close']}")
    if not data["seats"]["passed"]:
        missed.append("seat counter does not match the enrollments")
    return missed


def cell(value: Any, width: int = 9) -> str:
    if value is None:
        return f"{'-':>{width}}"
    if isinstance(value, float):
        return f"{value:>{width}.2f}"
    return f"{value!s:>{width}}"


def print_table(data: dict[str, Any]) -> None:
    setup, connect, warmup, total = data["setup"], data["connect"], data["warmup"], data["totals"]
    print()
    print("Setup: " + ", ".join(f"{key} {value}" for key, value in setup.items()))
    print()
    print(
        f"Connect: {connect['opened']} of {connect['requested']} sockets open with their initial "
        f"event.seats in {connect['wall_s']:.2f} s ({connect['per_second']:.0f}/s, "
        f"{setup['connect concurrency']} at a time); per socket p50 {connect['p50_ms']} ms, "
        f"p99 {connect['p99_ms']} ms, max {connect['max_ms']} ms"
    )
    for reason, count in connect["failures"].items():
        print(f"  {count:>6} x {reason}")
    print(
        f"Warm-up (not counted): {warmup['batches']} x {warmup['concurrent']} enrollments at once, "
        f"HTTP ms {', '.join(f'{value:.0f}' for value in warmup['http_ms']) or '-'}; "
        f"sockets without the count: {warmup['missed']}"
    )
    print()
    print("Latency from just before the enrollment POST to each socket's message with the new count:")
    columns = ("enrolled", "HTTP ms", "first ms", "p50 ms", "p99 ms", "max ms", "received", "missed")
    keys = ("enrolled", "http_ms", "first_ms", "p50_ms", "p99_ms", "max_ms", "received", "missed")
    header = f"{'round':<6}" + "".join(f"{column:>10}" for column in columns)
    print(header)
    print("-" * len(header))
    for row in data["rounds"]:
        print(f"{row['round']!s:<6}" + "".join(" " + cell(row[key]) for key in keys))
    print()
    print(
        f"All {total['rounds']} rounds ({total['messages']} messages): p50 {total['p50_ms']} ms, "
        f"p99 {total['p99_ms']} ms, max {total['max_ms']} ms"
    )
    closed = data["closed_early"]
    print(
        f"Missed within {setup['timeout s']} s: {total['missed']} (arrived later: {data['late']}); "
        f"unexpected messages: {data['unexpected_messages']}; sockets closed by the server: "
        f"{sum(closed.values())}" + (f" (close codes {closed})" if closed else "")
    )
    print(f"Enrollment POST (201): p50 {total['http_p50_ms']} ms, max {total['http_max_ms']} ms")
    burst = data["burst"]
    if burst:
        print(
            f"Burst of {burst['size']} enrollments at once (last answer after {burst['last_answer_ms']} ms): "
            f"final count {burst['final']} on {burst['received']} sockets, p50 {burst['p50_ms']} ms, "
            f"p99 {burst['p99_ms']} ms, max {burst['max_ms']} ms from the first POST; at most "
            f"{burst['settle_max_ms']} ms after the last answer; missed {burst['missed']}"
        )
    final = data["final"]
    print(
        f"Final count {final['expected']} after a quiet second: right on {final['right']} sockets"
        + (f", wrong on {final['wrong']}" if final["wrong"] else "")
    )
    redis_data = data["redis"]
    for when in ("sockets_open", "after_close"):
        footprint = redis_data[when]
        if footprint:
            print(
                f"Redis, {when.replace('_', ' ')}: {footprint['group_members']} members of the event's "
                f"group (core layer), {footprint['subscriptions']} pub/sub subscriptions of db {REDIS_DB} "
                f"({footprint['subscribers']} subscribed connections), "
                f"{footprint['event_group_subscribers']} subscribers of the event group's channel"
            )
    print(f"Left in Redis after every socket closed: {redis_data['left_after_close']} (should be 0)")
    print("Errors: " + ", ".join(f"{name} {count}" for name, count in data["errors"].items()))
    seats = data["seats"]
    print(
        f"Seats: enrolled_count {seats['enrolled_count']}, rows {seats['enrollment_rows']}, "
        f"201 answers {seats['posted']}: {'PASS' if seats['passed'] else 'FAIL'}"
    )
    print()
    for name, log in data["server_logs"].items():
        levels = ", ".join(f"{level} {count}" for level, count in sorted(log["lines_by_level"].items()))
        print(f"{name} log ({log['path']}): {levels or 'empty'}")
        for count, message in log["notable"]:
            print(f"  {count:>6} x {message}")
    print()
    missed = data["verdict"]
    if missed:
        print("FAIL: " + "; ".join(missed))
    else:
        print(
            f"PASS: p99 < {TARGET_P99_MS:.0f} ms, final count on every socket, 0 errors, "
            "nothing left in Redis after close"
        )


# --- Main -----------------------------------------------------------------------------------------------


def run_benchmark(args: argparse.Namespace, work_dir: Path) -> int:
    configure_benchmark_environment(work_dir, args.layer)
    soft, hard = raise_open_files_limit()
    if soft < args.sockets * 2 + 100:  # the client's sockets plus uvicorn's, both inherit this limit
        raise BenchError(f"RLIMIT_NOFILE {soft} is too low for {args.sockets} sockets (hard limit {hard})")
    say(f"recreating database {DB_NAME} and flushing Redis db {REDIS_DB}")
    setup: dict[str, Any] = {
        "sockets": args.sockets,
        "rounds": args.rounds,
        "connect concurrency": args.connect_concurrency,
        "timeout s": args.timeout,
        "HTTP": f"gunicorn {version_of('gunicorn')} config.wsgi, {args.workers} sync workers",
        "WebSockets": f"uvicorn {version_of('uvicorn')} config.asgi, 1 process"
        + (", no permessage-deflate" if args.no_deflate else ""),
        "channel layer": f"channels_redis {version_of('channels_redis')} on {REDIS_URL}",
        "client": f"one asyncio process, websockets {version_of('websockets')}, httpx {version_of('httpx')}",
        "PostgreSQL": recreate_database(DB_NAME),
        "Redis": flush_redis(REDIS_URL),
        "Python": platform.python_version(),
        "cpus": os.cpu_count(),
        "RLIMIT_NOFILE": soft,
    }
    say("migrating")
    run_migrations()
    setup_django()
    setup["channel layer"] = f"{layer_backend(args.layer)}, " + setup["channel layer"]
    seeded = seed(args.sockets, args.warmup_rounds * args.workers + args.rounds + args.burst)

    http_port, ws_port = free_port(), free_port()
    logs = {"gunicorn": work_dir / "gunicorn.log", "uvicorn": work_dir / "uvicorn.log"}
    say(f"starting gunicorn ({args.workers} workers) on {HOST}:{http_port}, log in {logs['gunicorn']}")
    say(f"starting uvicorn on {HOST}:{ws_port}, log in {logs['uvicorn']}")
    try:
        with contextlib.ExitStack() as servers:
            servers.enter_context(
                running_server(
                    "gunicorn", gunicorn_command(http_port, args.workers), http_port, logs["gunicorn"]
                )
            )
            servers.enter_context(
                running_server(
                    "uvicorn", uvicorn_command(ws_port, deflate=not args.no_deflate), ws_port, logs["uvicorn"]
                )
            )
            measurement = asyncio.run(measure(args, seeded, http_port, ws_port))
            say("stopping the servers")
    finally:
        # Also after a failure: the enrollments made so far have published their notifications.
        say("servers stopped; purging the benchmark's messages from RabbitMQ")
        try:
            say(f"purged {purge_queues()} messages")
        except Exception as exc:  # noqa: BLE001 - a purge failure must not hide the run's own error
            say(f"could not purge the queues: {type(exc).__name__}: {exc}")
    posted = (
        len(measurement.warmup.http_ms)
        + len(measurement.rounds)
        + (measurement.burst.size if measurement.burst else 0)
    )
    seats = check_seats(seeded.event_id, posted)
    server_logs = {name: read_server_log(path) for name, path in logs.items()}
    if not args.keep_files:
        for log in server_logs.values():
            log.path += ", removed at exit: --keep-files keeps it"

    data = report_data(measurement, seats, server_logs, setup)
    data["verdict"] = verdict(data)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print_table(data)
    return 0


def main() -> int:
    args = parse_args()
    # The sockets and servers are closed on the way out, also on Ctrl-C or a `kill`.
    return run_in_work_dir(
        lambda work_dir: run_benchmark(args, work_dir),
        prefix="ws-bench-",
        keep_files=args.keep_files,
        errors=(psycopg.Error, redis.RedisError, httpx.HTTPError),
        say=say,
    )


if __name__ == "__main__":
    sys.exit(main())
