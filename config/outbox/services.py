"""The transactional outbox: side effects recorded with the change they follow, published after.

After commit, the process that committed publishes at once. In the embedded default (tasks run
in-process) it runs the task there and then, outside any transaction, as a worker would (see
`_run_here`). With a broker, it hands the message ids to its
publisher thread, which publishes in batches over publisher confirms: no request ever waits for
RabbitMQ (a confirmed publish is a large share of a lean request: docs/architecture.md,
"Measurements behind design choices"), and
a batch needs one transaction however many messages it holds. A busy publisher publishes at most
every PUBLISH_INTERVAL_SECONDS (an idle one at once), gathering what commits meanwhile. The
relay (`manage.py relay_outbox`) publishes whatever is still pending: messages of a process that
died, or of a broker outage.

Batched tasks: a task declared with `@shared_task(..., batched=True)` (Celery makes the option an
attribute of the task class) takes `items`, a list of the keyword arguments its messages were
enqueued with, in outbox id order. The pending messages of such a task that one publish picks up
travel as ONE broker message, `kwargs={"items": [kwargs1, kwargs2, ...]}` (at most the task's
`batch_max_items` per message, when it declares one), and are marked published together; in the
embedded default the task is called in-process the same way. A batched task always gets a list,
even of one item. Its publishing process must know it is batched: register it in every process
(import its module in the app's `AppConfig.ready`, as `notifications` does).
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone
from prometheus_client import Counter

from config.celery import app as celery_app
from config.outbox.models import OutboxMessage
from config.process_threads import ProcessThread

log = logging.getLogger(__name__)

PUBLISHED = Counter("outbox_published", "Outbox messages published (by web processes or the relay).")

# Monotonic time before which this process leaves publishing to the relay (after a failed publish):
# with the broker away, the publisher does not pile up failed attempts.
_inline_paused_until = 0.0
# The most messages one transaction publishes.
BATCH_SIZE = 200
# In-process, how long a publish claims the messages of the task it is about to run: longer than
# any one task takes (a report of a million participants builds in a few seconds). A process that
# dies running it leaves it to the relay once the claim has lapsed.
IN_PROCESS_CLAIM_SECONDS = 300
# In-process, how long a task that could not be run waits before the relay tries it again: a
# message of a task this process does not know fails every time, and the relay's rounds come
# every second.
IN_PROCESS_RETRY_SECONDS = 60
# A publisher thread idle this long closes its database connection.
PUBLISHER_IDLE_SECONDS = 5.0
# How long a publish waits for RabbitMQ to take the message (the socket write) and to confirm it
# before it counts as failed. A broker under a memory or disk alarm stops reading and answering its
# publishers; unbounded, the publisher thread, the relay and the admission waker waited for the alarm
# to clear, and publish() held its transaction, with the row locks of up to BATCH_SIZE messages, all
# the while. Bounded, the messages stay pending for the relay (publishing one again is safe: tasks
# are idempotent, and a confirm that was only late means one duplicate). Not the connect timeout
# (CELERY_BROKER_CONNECTION_TIMEOUT, 2 s): a healthy but busy broker confirms only once the message
# is written to disk (and, on a quorum queue, to a majority of the cluster), which can take longer
# than opening a connection, and each spurious timeout is a duplicate task.
PUBLISH_TIMEOUT_SECONDS = 5.0
# A publisher thread publishes at most once per this interval: an idle one publishes a message at
# once, a busy one gathers what commits meanwhile into its next batch, so that under load one
# broker message of a batched task carries many items (and the workers run fewer, bigger tasks).
PUBLISH_INTERVAL_SECONDS = 0.1


# What else the relay does in its loop, registered by the apps (config imports no app): each takes no
# argument and returns a count of what it did, named by its label in the relay's report.
SWEEPERS: dict[str, Callable[[], int]] = {}


def register_sweeper(label: str, sweep: Callable[[], int]) -> None:
    SWEEPERS[label] = sweep


def enqueue(task: str, **kwargs: Any) -> OutboxMessage:
    """Records a task in the current transaction; it is published once that transaction commits."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("enqueue() belongs inside the transaction of the change it follows")
    message = OutboxMessage.objects.create(task=task, kwargs=kwargs)
    transaction.on_commit(lambda: publish_after_commit(message.pk))
    return message


def insert_statement(
    task: str, *, kwargs_sql: str, kwargs_params: Sequence[Any], select_from: str
) -> tuple[str, list[Any]]:
    """enqueue() as SQL (PostgreSQL), for a change written as ONE statement (a data-modifying CTE)
    whose message must commit with it: an INSERT of one message per row of `select_from` (a relation
    of the statement), whose kwargs are `kwargs_sql`, a jsonb expression over that relation taking
    `kwargs_params`. Returns the INSERT ... RETURNING id and its parameters; the caller hands the id
    to publish_after_commit once the statement has committed."""
    table = connection.ops.quote_name(OutboxMessage._meta.db_table)
    sql = (
        f"INSERT INTO {table} (task, kwargs, created_at, attempts, last_error)"  # noqa: S608
        f" SELECT %s, {kwargs_sql}, %s, 0, '' FROM {select_from} RETURNING id"
    )
    return sql, [task, *kwargs_params, timezone.now()]


def publish_after_commit(message_id: int) -> None:
    """The committing process's attempt. Never raises: the relay is the safety net."""
    if time.monotonic() < _inline_paused_until:
        return
    if settings.CELERY_TASK_ALWAYS_EAGER:
        _attempt([message_id])
    else:
        _Publisher.instance().submit(message_id)


def _attempt(message_ids: Sequence[int]) -> None:
    global _inline_paused_until
    try:
        publish(message_ids)
    except Exception:
        _inline_paused_until = time.monotonic() + settings.OUTBOX_INLINE_BACKOFF_SECONDS
        log.warning("outbox: publishing %s failed; the relay will retry", list(message_ids), exc_info=True)


def publish_pending(*, limit: int = BATCH_SIZE) -> int:
    """Publishes up to `limit` pending messages, oldest first. Returns how many were published."""
    ids = (
        OutboxMessage.objects.filter(published_at__isnull=True)
        .exclude(claimed_until__gt=timezone.now())
        .order_by("id")
        .values_list("id", flat=True)
    )
    return publish(list(ids[:limit]))


def relay_round(
    on_error: Callable[[str | None, Exception], None], *, stopping: Callable[[], bool] = lambda: False
) -> tuple[int, dict[str, int]]:
    """One round of the relay: publishes what is pending, batch after batch until nothing is
    left (or `stopping()`), then runs the sweepers. Returns how many messages it published and what
    each sweeper did. An error is handed to `on_error` (with the sweeper's label, or None for
    publishing) and ends that part of the round: the next round tries again."""
    published = 0
    while not stopping():
        try:
            batch = publish_pending()
        except Exception as exc:  # broker or database away
            on_error(None, exc)
            break
        if not batch:
            break
        published += batch
    swept = dict.fromkeys(SWEEPERS, 0)
    for label, sweep in SWEEPERS.items():
        if stopping():
            break
        try:
            swept[label] = sweep()
        except Exception as exc:
            on_error(label, exc)
    return published, swept


def publish(message_ids: Sequence[int]) -> int:
    """Publishes those of the messages that are pending and not being published by someone else
    (in the embedded default: runs their tasks, `_run_here`).

    The row locks (SKIP LOCKED) let the web processes and any number of relays work side by side
    without publishing a message twice. Messages of one batched task go out as one broker message
    (see the module's docstring). Returns how many outbox messages were published. When the broker
    refuses a broker message, the outbox messages sent before it are recorded as published; those
    it carried and the rest stay pending (each refused one counts a failed attempt), and the error
    is raised.
    """
    if not message_ids:
        return 0
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return _run_here(message_ids)
    published: list[int] = []
    failure: Exception | None = None
    with transaction.atomic():
        messages = _lock_pending(message_ids)
        for task, group in _broker_messages(messages):
            try:
                _dispatch(task, group)
            except Exception as exc:
                # Recorded in this (committing) transaction; raised once it has committed.
                _count_failed_attempt([m.pk for m in group], exc)
                failure = exc
                break
            published.extend(message.pk for message in group)
        if published:
            _mark_published(published)
            transaction.on_commit(lambda: PUBLISHED.inc(len(published)))
    if failure is not None:
        raise failure
    return len(published)


def _run_here(message_ids: Sequence[int]) -> int:
    """The embedded default's publish: runs, in this process, the tasks of those of the messages
    that are pending and not claimed by another. Returns how many messages it ran.

    Each task runs as on a worker, outside any transaction, so that its own transactions commit
    on their own (run inside the transaction that locked its messages, they were savepoints of it,
    held every row they wrote to its end, and deadlocked with an event's deletion:
    docs/architecture.md, "Messaging"). Each broker message's worth is claimed just before its
    task runs and marked published after, whatever the task did (its failures are its own
    business, as on a worker). A task that cannot be run (its name unknown here, say) has the
    attempt and the error counted and is logged, and the others still run; the relay tries it
    again once IN_PROCESS_RETRY_SECONDS have passed. A process that dies meanwhile leaves its
    claim to lapse, and the relay runs the task then: in-process as on a broker, a task runs at
    least once.
    """
    if connection.in_atomic_block:
        raise RuntimeError("in-process, publishing runs tasks, which belong after the commit, outside it")
    ran = 0
    for task, group in _broker_messages(_lock_pending(message_ids)):
        claimed_set = _claim([message.pk for message in group], seconds=IN_PROCESS_CLAIM_SECONDS)
        group = [message for message in group if message.pk in claimed_set]
        if not group:
            continue  # another process took them meanwhile
        claimed = sorted(claimed_set)
        try:
            celery_app.tasks[task].apply(kwargs=_task_kwargs(group, batched=is_batched(task)))
        except Exception as exc:
            retry_at = timezone.now() + dt.timedelta(seconds=IN_PROCESS_RETRY_SECONDS)
            _count_failed_attempt(claimed, exc, claimed_until=retry_at)
            log.exception("outbox: the task of %s could not be run; the relay tries again later", claimed)
            continue
        _mark_published(claimed)
        PUBLISHED.inc(len(group))
        ran += len(group)
    return ran


class _Pending(NamedTuple):
    """A pending outbox message, as publishing it needs it."""

    pk: int
    task: str
    kwargs: dict[str, Any]


# publish()'s two statements are written out: a busy web process publishes hundreds of messages a
# second, and through the ORM their model instances and its IN lookups, which look at every id, were
# most of the CPU of publishing them (docs/architecture.md, Performance).


def _lock_pending(message_ids: Sequence[int]) -> list[_Pending]:
    """The pending, unclaimed ones of these messages, oldest first, locked for this transaction
    (outside one, for the statement only); those another publisher holds are skipped, in either
    case (where the database has SKIP LOCKED: not SQLite, whose writers take turns anyway)."""
    table = connection.ops.quote_name(OutboxMessage._meta.db_table)
    lock = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    kwargs_field = OutboxMessage._meta.get_field("kwargs")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, task, kwargs FROM {table} WHERE published_at IS NULL"  # noqa: S608
            " AND (claimed_until IS NULL OR claimed_until <= %s)"
            f" AND id IN ({', '.join(['%s'] * len(message_ids))}) ORDER BY id{lock}",
            [connection.ops.adapt_datetimefield_value(timezone.now()), *message_ids],
        )
        rows = cursor.fetchall()
    # The kwargs as the ORM reads them: its JSON field's own conversion (of a plain column, no expression).
    return [
        _Pending(pk, task, kwargs_field.from_db_value(kwargs, None, connection))  # type: ignore[arg-type]
        for pk, task, kwargs in rows
    ]


def _count_failed_attempt(message_ids: Sequence[int], exc: Exception, **also: Any) -> None:
    """The messages' attempt that failed, counted with its error (and `also`'s columns set)."""
    OutboxMessage.objects.filter(pk__in=message_ids).update(
        attempts=F("attempts") + 1, last_error=f"{type(exc).__name__}: {exc}"[:2000], **also
    )


def _claim(message_ids: Sequence[int], *, seconds: float) -> set[int]:
    """Those of the messages that are still pending and unclaimed, claimed for this process for
    `seconds` (one statement: of two processes or threads claiming one message, one gets it;
    RETURNING needs SQLite 3.35 or newer, which Python's images and Debian 12 have)."""
    table = connection.ops.quote_name(OutboxMessage._meta.db_table)
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET claimed_until = %s"  # noqa: S608
            " WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until <= %s)"
            f" AND id IN ({', '.join(['%s'] * len(message_ids))}) RETURNING id",
            [
                connection.ops.adapt_datetimefield_value(now + dt.timedelta(seconds=seconds)),
                connection.ops.adapt_datetimefield_value(now),
                *message_ids,
            ],
        )
        return {row[0] for row in cursor.fetchall()}


def _mark_published(message_ids: Sequence[int]) -> None:
    table = connection.ops.quote_name(OutboxMessage._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET published_at = %s"  # noqa: S608
            f" WHERE id IN ({', '.join(['%s'] * len(message_ids))})",
            [connection.ops.adapt_datetimefield_value(timezone.now()), *message_ids],
        )


def is_batched(task_name: str) -> bool:
    """Whether the task takes its messages as one list of `items` (declared `batched=True`)."""
    task = celery_app.tasks.get(task_name)
    return bool(getattr(task, "batched", False))


def _broker_messages(messages: Sequence[_Pending]) -> list[tuple[str, list[_Pending]]]:
    """The broker messages that carry these outbox messages: one per message of an ordinary task,
    one per batched task (up to its batch_max_items), in the order of their first outbox message."""
    units: list[tuple[str, list[_Pending]]] = []
    open_groups: dict[str, list[_Pending]] = {}
    # Each task's items per broker message (None: not batched), looked up once per task: Celery's
    # registry is dear to ask, and a publish carries many messages of few tasks.
    limits: dict[str, int | None] = {}
    for message in messages:
        if message.task not in limits:
            limits[message.task] = _items_per_message(message.task, at_most=len(messages))
        limit = limits[message.task]
        if limit is None:
            units.append((message.task, [message]))
            continue
        group = open_groups.get(message.task)
        if group is None or len(group) >= limit:
            group = open_groups[message.task] = []
            units.append((message.task, group))
        group.append(message)
    return units


def _items_per_message(task_name: str, *, at_most: int) -> int | None:
    """How many outbox messages of the task one broker message carries (its batch_max_items, else
    `at_most`); None for a task that is not batched."""
    if not is_batched(task_name):
        return None
    return getattr(celery_app.tasks[task_name], "batch_max_items", None) or at_most


def _task_kwargs(messages: Sequence[_Pending], *, batched: bool) -> dict[str, Any]:
    """What the task is called with: a batched task's items, an ordinary task's one message's kwargs."""
    if batched:
        return {"items": [message.kwargs for message in messages]}
    [message] = messages
    return message.kwargs


def _dispatch(task: str, messages: Sequence[_Pending]) -> None:
    batched = is_batched(task)
    # Celery's own kwargsrepr (None) is a bounded repr of the kwargs; a batch's names its ids.
    kwargs_repr = batch_repr(messages) if batched else None
    send_task(task, kwargs=_task_kwargs(messages, batched=batched), kwargsrepr=kwargs_repr)


def send_task(name: str, **options: Any) -> None:
    """Celery's send_task, failing instead of waiting: at once when the broker is away (no retry),
    after PUBLISH_TIMEOUT_SECONDS when it neither takes nor confirms the message (raised as kombu's
    OperationalError, from TimeoutError). The outbox's publishes and the admission wake-ups go
    through here.

    A connection whose publish failed is dropped without a word to the broker: kombu replaces a
    pooled connection after an error, but by closing it with AMQP's closing handshake, which a
    blocked broker never answers, so the publisher would hang there instead. (Kept, it would be
    worse: py-amqp still takes it for connected, and its late confirm would be taken for the next
    publish's, since py-amqp does not match delivery tags.) The next publish connects afresh, within
    the connect timeout."""
    with celery_app.producer_or_acquire() as producer:
        try:
            celery_app.send_task(
                name,
                producer=producer,
                retry=False,
                timeout=PUBLISH_TIMEOUT_SECONDS,
                confirm_timeout=PUBLISH_TIMEOUT_SECONDS,
                **options,
            )
        except Exception:
            # Closes the socket at once: kombu's replacement of the pooled connection then says nothing.
            producer.connection.collect()
            raise


def batch_repr(messages: Sequence[_Pending]) -> str:
    """What a batched task's message shows of its kwargs (Celery's `kwargsrepr` header, seen in
    monitoring and the worker's logs): the outbox ids it carries, not the items. Celery's default,
    a repr of the items cut at 1 KB, showed their check-in codes to whoever reads the headers, and
    made send_task cost 67 rather than 49 us of the web process's CPU per enrollment."""
    return f"{{'items': <{len(messages)} outbox messages {messages[0].pk}..{messages[-1].pk}>}}"


def flush_publisher(timeout: float = 10.0) -> bool:
    """Waits until this process's publisher has attempted everything handed to it so far.
    True when it has (or there is no publisher). For tests, and for a process about to exit."""
    publisher = _Publisher.running_here()
    if publisher is None:
        return True
    done = threading.Event()
    publisher.queue.put(done)
    return done.wait(timeout)


class _Publisher(ProcessThread):
    """One daemon thread per process publishing the messages its transactions committed."""

    thread_name = "outbox-publisher"
    _instance = None

    def __init__(self) -> None:
        # Message ids, and the events of flush_publisher() calls waiting for what came before them.
        self.queue: queue.SimpleQueue[int | threading.Event] = queue.SimpleQueue()
        super().__init__()

    def submit(self, message_id: int) -> None:
        self.queue.put(message_id)

    def _run(self) -> None:
        while True:
            try:
                item = self.queue.get(timeout=PUBLISHER_IDLE_SECONDS)
            except queue.Empty:
                self._guarded(connection.close)  # idle: give the connection back (and free test databases)
                continue
            batch: list[int] = []
            flushed: list[threading.Event] = []
            while True:
                if isinstance(item, threading.Event):
                    flushed.append(item)
                else:
                    batch.append(item)
                if len(batch) >= BATCH_SIZE:
                    break
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
            started = time.monotonic()
            if batch and started >= _inline_paused_until:  # while paused, the relay takes them
                self._guarded(self._publish, batch)
            for done in flushed:
                done.set()
            if batch:
                interval = getattr(settings, "OUTBOX_PUBLISH_INTERVAL_SECONDS", PUBLISH_INTERVAL_SECONDS)
                time.sleep(max(0.0, started + interval - time.monotonic()))

    @staticmethod
    def _publish(batch: list[int]) -> None:
        close_old_connections()  # a connection the database dropped, or past its age
        _attempt(batch)

    @staticmethod
    def _guarded(work: Any, *args: Any) -> None:
        """The thread must outlive any error: its later messages would otherwise wait for the relay."""
        try:
            work(*args)
        except Exception:
            log.exception("outbox publisher: unexpected error; the relay will publish what is left")
