"""Read-through cache of the event API's answers (list and detail), as rendered JSON.

Every write that changes what those answers show replaces a token after its commit, rather than
finding and deleting keys:
- an event's own write (created, edited, deleted) calls `invalidate()`, which replaces the
  generation, a token that is part of every answer's key: all earlier answers become unreachable
  at once;
- a change of seats only (an enrollment, a cancellation, the waiting list: `enrolled_count`,
  `seats_left` and `waitlist_count` change, nothing else) calls `seats_changed()`, which replaces
  the seats token. Every stored answer begins with the seats token it was built under; an answer
  under another one is still right but for its seat fields, so the reader's `refresh` sets those
  from the database (one query) instead of building the whole answer (events/api/reads.py).
  In a rush, when every enrollment changes seats, that keeps the reads beside it cheap.
Both tokens are random, never counters: a counter lost to eviction would restart and resurrect old
answers. Each is read before the database, so an answer built from data older than a concurrent
write is stored under the older token, which no reader takes for current. Cache errors never fail a
request: with Redis down, reads go to the database (django-redis IGNORE_EXCEPTIONS), and a token
replacement Redis did not take is tried again every second until it lands, or the TTL has passed
(`_OwedReplacements`; the TTL also bounds what a process that dies meanwhile leaves behind).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import pickle
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache, caches

GENERATION_KEY = "events:generation"
SEATS_KEY = "events:seats"
TTL_SECONDS = 60
# What `_token` answers when the cache keeps nothing (Redis away): the answer is built, not stored.
UNCACHED = "uncached"


def _new_token() -> str:
    return uuid.uuid4().hex


# Every token's length: a stored answer begins with the seats token it was built under.
_TOKEN_LENGTH = len(_new_token())


def _token(key: str) -> str:
    current = cache.get(key)
    if current is None:
        cache.add(key, _new_token(), timeout=None)
        current = cache.get(key) or UNCACHED
    return str(current)


def _generation() -> str:
    return _token(GENERATION_KEY)


def invalidate() -> None:
    """Replaces the generation: every event write calls it after its commit, before it answers (a
    read after the write must not find the old answers)."""
    _replace(GENERATION_KEY)


def seats_changed() -> None:
    """Replaces the seats token: every change of seats only (enrolled, waiting) calls it after its
    commit, before it answers (a read after it must not show the old seats). In a rush it follows
    every enrollment."""
    _replace(SEATS_KEY)


def _replace(key: str) -> None:
    if not _set(key, _new_token(), timeout=None):
        _owed.add(key)


def _set(key: str, value: Any, timeout: int | None) -> bool:
    """On Redis one SET through the fast connection; on any failure there, through django-redis.
    False when Redis did not take it (django-redis ignores its errors: it answers None)."""
    fast = _fast_connection()
    if fast is not None and fast.set(key, value, timeout):
        return True
    backend: Any = cache  # django-redis's set answers True, or None for an error it ignored
    stored = backend.set(key, value, timeout=timeout)
    return fast is None or stored is True  # (other backends answer None, and raise on failure)


class _OwedReplacements:
    """Tokens whose replacement Redis did not take (an invalidation lost in a blip): replaced again
    every RETRY_SECONDS by one thread of this process (keeping its connection from try to try),
    until Redis takes them or TTL_SECONDS after the last failure, by when every answer stored under
    the old token has expired anyway. A lost invalidation then leaves stale answers for as long as
    Redis is away, not for the TTL after it is back."""

    RETRY_SECONDS = 1.0

    def __init__(self) -> None:
        self._forget()
        # A process forked from this one has none of its threads: it starts with nothing owed.
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._owed: dict[str, tuple[int, float]] = {}  # key: (which failure, give up at)
        self._failures = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, key: str) -> None:
        with self._lock:
            self._owed[key] = (next(self._failures), time.monotonic() + TTL_SECONDS)
            if self._thread is None:
                self._thread = threading.Thread(target=self._retry, name="events-cache-owed", daemon=True)
                self._thread.start()

    def _retry(self) -> None:
        try:
            while True:
                time.sleep(self.RETRY_SECONDS)
                with self._lock:
                    owed = dict(self._owed)
                for key, (failure, until) in owed.items():
                    if _set(key, _new_token(), timeout=None) or time.monotonic() >= until:
                        with self._lock:
                            if self._owed.get(key, (None,))[0] == failure:  # (not failed again since)
                                del self._owed[key]
                with self._lock:
                    if not self._owed:
                        self._thread = None
                        return
        except BaseException:
            with self._lock:  # the next failure starts a thread again
                self._thread = None
            raise

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._owed


_owed = _OwedReplacements()


def _get_many(*keys: str, fall_back: bool = True) -> list[Any] | None:
    """The keys' values (None for a missing one): on Redis one MGET through the fast connection; on
    any failure there, through django-redis with `fall_back`, else None."""
    fast = _fast_connection()
    found = None if fast is None else fast.get_many(*keys)
    if found is None and (fast is None or fall_back):
        values = cache.get_many(keys)
        found = [values.get(key) for key in keys]
    return found


def _answer_key(generation: str, identity: str) -> str:
    # "answer2": values with the header below (the values of "answer" had none).
    return "events:answer2:" + generation + ":" + hashlib.sha256(identity.encode()).hexdigest()


# A stored answer's header: the seats token it was built (or last refreshed) under, then when its
# build began (epoch seconds, 10 digits). A refresh keeps the build's time and expiry: the fields
# it does not refresh are as old as the build, and TTL_SECONDS bounds how long they outlive a lost
# invalidation.
_HEADER_LENGTH = _TOKEN_LENGTH + 10


def _stored_value(seats: str, built_at: int, body: bytes) -> bytes:
    return b"%s%010d%s" % (seats.encode(), built_at, body)


def _now() -> int:
    return int(time.time())


def _current(stored: Any, seats: Any) -> bytes | None:
    """The answer in `stored` when it was built under the seats token `seats`, else None."""
    if stored is None or seats is None:
        return None
    stored = bytes(stored)
    if stored[:_TOKEN_LENGTH] != str(seats).encode():
        return None
    return stored[_HEADER_LENGTH:]


# The generation this process saw last: a hit then costs one round trip (generation and answer
# fetched together) instead of two.
_last_generation = ""


@dataclass(frozen=True)
class Lookup:
    """What one round trip found for `identity`'s answer: the tokens, and the value stored under the
    generation this process had seen last (`under`). A caller that gets no answer from it and
    builds one hands it to `read_through`, which goes on from it instead of asking again."""

    identity: str
    under: str
    generation: Any
    seats: Any
    stored: Any

    @property
    def answer(self) -> bytes | None:
        """The stored answer when it is current (the generation and the seats token), else None."""
        if self.generation != self.under:
            return None
        return _current(self.stored, self.seats)


def look_up(identity: str, *, fall_back: bool = False) -> Lookup | None:
    """One round trip for `identity`'s answer, under the generation this process saw last; None when
    none was made (this process's first read) or it failed.

    The hit half of `read_through`, for a caller with a way of its own to answer a hit, and a slower
    one on a miss. On Redis (django-redis) it reads through a connection of its own (see
    `_FastConnection`); an error there is a miss, and the caller's slower way meets django-redis's
    usual error handling (`fall_back`: through django-redis at once).
    """
    last = _last_generation  # (read once: another thread may replace it meanwhile)
    if not last:
        return None  # this process's first read goes through read_through
    found = _get_many(GENERATION_KEY, SEATS_KEY, _answer_key(last, identity), fall_back=fall_back)
    return None if found is None else Lookup(identity, last, *found)


class _FastConnection:
    """One MGET or SET on a Redis connection of its own, outside redis-py's pool
    and retry wrapper.

    A cache hit is the event API's most frequent request, and the pool's bookkeeping (a lock and a
    readiness poll on every checkout, a retry wrapper) cost more CPU than the round trip itself.
    Keys and values are django-redis's (its key function, its serializer); the connection's
    settings are its pool's (address, database, password, timeouts). One connection per thread, like
    Django's cache objects. Any error drops the connection (nothing half-read can leak into the
    next command) and reports a miss; the next call connects again.
    """

    # After a failure, this long without trying: with Redis away, requests must not wait for two
    # connection timeouts (this one's and then django-redis's) instead of one.
    PAUSE_SECONDS = 2.0

    def __init__(self, backend: Any, options: dict[str, Any]):
        self._client = backend.client  # django-redis's DefaultClient
        pool = self._client.get_client(write=False).connection_pool
        self._connection = pool.connection_class(**pool.connection_kwargs)
        self._paused_until = 0.0
        self._plain_pickles = _stores_plain_pickles(options)

    def get_many(self, *keys: str) -> list[Any] | None:
        """The keys' values (None for a missing one), or None when the round trip failed."""
        values = self._round_trip("MGET", *map(self._client.make_key, keys))
        if values is _FAILED:
            return None  # a miss: the caller's slower path reads (or degrades)
        if not isinstance(values, list) or len(values) != len(keys):
            self._connection.disconnect()
            return None
        return [None if value is None else self._decode(value) for value in values]

    def _decode(self, value: bytes) -> Any:
        """The value as django-redis's `decode` gives it. That tries `int()` first, and its failure on
        a pickle, as every answer and token is, cost a hit 14 us of its 230 in place. A value that
        begins with pickle's PROTO opcode is no integer's digits: where the cache stores plain
        pickles (django-redis's default serializer, no compressor), it is unpickled at once."""
        if self._plain_pickles and value[:1] == _PICKLE_PROTO:
            return pickle.loads(value)  # noqa: S301  (the cache's own values, as its serializer loads them)
        return self._client.decode(value)

    def set(self, key: str, value: Any, timeout: int | None = None) -> bool:
        """SET, as django-redis's `set(key, value, timeout)` stores it (None: no expiry). False when
        it failed (the caller then goes through django-redis)."""
        command: list[Any] = ["SET", self._client.make_key(key), self._client.encode(value)]
        if timeout is not None:
            command += ["EX", timeout]
        answer = self._round_trip(*command)
        if answer is _FAILED:
            return False
        if answer not in (b"OK", "OK", True):
            self._connection.disconnect()
            return False
        return True

    def _round_trip(self, *command: Any) -> Any:
        """The command's answer, or _FAILED: while paused, or on any error (which drops the
        connection and pauses this one for PAUSE_SECONDS)."""
        if self._paused_until and time.monotonic() < self._paused_until:
            return _FAILED
        connection = self._connection
        try:
            connection.send_command(*command)
            answer = connection.read_response()
        except Exception:
            connection.disconnect()
            self._paused_until = time.monotonic() + self.PAUSE_SECONDS
            return _FAILED
        self._paused_until = 0.0
        return answer


# _FastConnection._round_trip's failure (None is an answer: a missing key).
_FAILED = object()

# The first byte of every pickle of protocol 2 or later (django-redis pickles with the highest).
_PICKLE_PROTO = pickle.PROTO
# django-redis's serializer and compressor options, with their defaults: values pickled, not compressed.
_PLAIN_PICKLE_OPTIONS = {
    "SERIALIZER": "django_redis.serializers.pickle.PickleSerializer",
    "COMPRESSOR": "django_redis.compressors.identity.IdentityCompressor",
}


def _stores_plain_pickles(options: dict[str, Any]) -> bool:
    """Whether a django-redis cache with these OPTIONS stores its values as plain pickles."""
    return all(options.get(name, default) == default for name, default in _PLAIN_PICKLE_OPTIONS.items())


_connection_state = threading.local()


def _fast_connection() -> _FastConnection | None:
    """This thread's fast connection when the default cache is django-redis's (None otherwise: locmem)."""
    backend = caches["default"]
    if getattr(_connection_state, "backend", None) is not backend:
        # This thread's first read, or a new cache object (settings changed, e.g. in tests).
        if getattr(_connection_state, "connection", None) is not None:
            _connection_state.connection._connection.disconnect()
        _connection_state.connection = (
            _FastConnection(backend, settings.CACHES["default"].get("OPTIONS", {}))
            if _is_django_redis(backend)
            else None
        )
        _connection_state.backend = backend
    return _connection_state.connection  # type: ignore[no-any-return]


def _is_django_redis(backend: Any) -> bool:
    client = getattr(backend, "client", None)
    return client is not None and hasattr(client, "get_client") and hasattr(client, "decode")


def read_through(
    identity: str,
    build: Callable[[], bytes],
    refresh: Callable[[bytes], bytes | None] | None = None,
    looked_up: Lookup | None = None,
) -> bytes:
    """The cached bytes for `identity` (events.api.reads.answer_identity: what the answer depends on
    besides the database), built when missing.

    `refresh(answer)`: `answer` with its seat fields as the database has them now, or None when it
    cannot tell (then `build` runs). It is given an answer stored under the current generation but
    an older seats token, instead of building the whole answer again, unless the answer was built
    TTL_SECONDS ago or longer.

    `looked_up`: this request's `look_up` of `identity`, which found no answer: its round trip is
    not made again.

    The generation and the seats token are read before the database: an answer built (or
    refreshed) from data older than a concurrent write is stored under the older token, where no
    reader takes it for current.
    """
    global _last_generation
    if looked_up is not None and looked_up.identity == identity:
        found: Lookup | None = looked_up
    else:
        found = look_up(identity, fall_back=True)
    last: str | None = None
    generation = seats = stored = None
    if found is not None:
        hit = found.answer
        if hit is not None:
            return hit
        last, generation, seats = found.under, found.generation, found.seats
        if generation == last:
            stored = found.stored  # (under another generation than the current one it is no use)
    generation = str(_generation() if generation is None else generation)
    seats = str(_token(SEATS_KEY) if seats is None else seats)
    if UNCACHED in (generation, seats):
        return build()
    key = _answer_key(generation, identity)
    if generation != last:
        _last_generation = generation
        stored = cache.get(key)
        hit = _current(stored, seats)
        if hit is not None:
            return hit
    now = _now()
    if stored is not None and refresh is not None:
        stored = bytes(stored)
        built_at = stored[_TOKEN_LENGTH:_HEADER_LENGTH]
        age = now - int(built_at) if built_at.isdigit() else TTL_SECONDS
        if 0 <= age < TTL_SECONDS:
            body = refresh(stored[_HEADER_LENGTH:])
            if body is not None:
                _set(key, _stored_value(seats, int(built_at), body), timeout=TTL_SECONDS - age)
                return body
    body = build()
    _set(key, _stored_value(seats, now, body), timeout=TTL_SECONDS)
    return body
