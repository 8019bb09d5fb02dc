"""Read-through cache of the event API's answers (list and detail), as rendered JSON.

Every write that changes what those answers show calls `invalidate()` after its commit. Rather than
finding and deleting keys, it replaces a generation token that is part of every key, so all earlier
answers become unreachable at once. The token is random, never a counter: a counter lost to eviction
would restart and resurrect old answers. Cache errors never fail a request: with Redis down, reads
go to the database (django-redis IGNORE_EXCEPTIONS) and TTL bounds what a lost invalidation could
leave behind.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.core.cache import cache, caches

GENERATION_KEY = "events:generation"
TTL_SECONDS = 60


def _generation() -> str:
    current = cache.get(GENERATION_KEY)
    if current is None:
        cache.add(GENERATION_KEY, uuid.uuid4().hex, timeout=None)
        current = cache.get(GENERATION_KEY) or "uncached"
    return str(current)


def invalidate() -> None:
    """Replaces the generation (every write that changes an event's answers calls it after its
    commit, before it answers: a read after the write must not find the old answers). On Redis one
    SET through the fast connection (in a rush it follows every enrollment); on any failure there,
    through django-redis, as before."""
    generation = uuid.uuid4().hex
    writer = _fast_connection()
    if writer is None or not writer.set_forever(GENERATION_KEY, generation):
        cache.set(GENERATION_KEY, generation, timeout=None)


def _answer_key(generation: str, identity: str) -> str:
    return "events:answer:" + generation + ":" + hashlib.sha256(identity.encode()).hexdigest()


# The generation this process saw last: a hit then costs one round trip (generation and answer
# fetched together) instead of two.
_last_generation = ""


def cached_answer(identity: str) -> bytes | None:
    """The stored answer for `identity` when one round trip finds it under the current generation.

    The hit half of `read_through`, for a caller that has a slower way of its own to build (and
    store) the answer on a miss: None then, and nothing is stored or looked up further. On Redis
    (django-redis) it reads through a connection of its own (see `_FastConnection`); any error is a
    miss, and the caller's slower way meets django-redis's usual error handling.
    """
    if not _last_generation:
        return None  # this process's first read goes through read_through
    guessed_key = _answer_key(_last_generation, identity)
    fast = _fast_connection()
    if fast is not None:
        found = fast.get_two(GENERATION_KEY, guessed_key)
        if found is None or found[0] != _last_generation or found[1] is None:
            return None
        return bytes(found[1])
    values = cache.get_many([GENERATION_KEY, guessed_key])
    if values.get(GENERATION_KEY) == _last_generation and guessed_key in values:
        return bytes(values[guessed_key])
    return None


class _FastConnection:
    """One MGET (or the generation's SET) on a Redis connection of its own, outside redis-py's pool
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

    def __init__(self, backend: Any):
        self._client = backend.client  # django-redis's DefaultClient
        pool = self._client.get_client(write=False).connection_pool
        self._connection = pool.connection_class(**pool.connection_kwargs)
        self._paused_until = 0.0

    def get_two(self, first: str, second: str) -> tuple[Any, Any] | None:
        make_key, decode = self._client.make_key, self._client.decode
        values = self._round_trip("MGET", make_key(first), make_key(second))
        if values is _FAILED:
            return None  # a miss: the caller's slower path reads (or degrades)
        if not isinstance(values, list) or len(values) != 2:
            self._connection.disconnect()
            return None
        return (
            None if values[0] is None else decode(values[0]),
            None if values[1] is None else decode(values[1]),
        )

    def set_forever(self, key: str, value: Any) -> bool:
        """SET without expiry, as django-redis's `set(..., timeout=None)` stores it. False when it
        failed (the caller then goes through django-redis)."""
        answer = self._round_trip("SET", self._client.make_key(key), self._client.encode(value))
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


_connection_state = threading.local()


def _fast_connection() -> _FastConnection | None:
    """This thread's fast connection when the default cache is django-redis's (None otherwise: locmem)."""
    backend = caches["default"]
    if getattr(_connection_state, "backend", None) is not backend:
        # This thread's first read, or a new cache object (settings changed, e.g. in tests).
        if getattr(_connection_state, "connection", None) is not None:
            _connection_state.connection._connection.disconnect()
        _connection_state.connection = _FastConnection(backend) if _is_django_redis(backend) else None
        _connection_state.backend = backend
    return _connection_state.connection  # type: ignore[no-any-return]


def _is_django_redis(backend: Any) -> bool:
    client = getattr(backend, "client", None)
    return client is not None and hasattr(client, "get_client") and hasattr(client, "decode")


def read_through(identity: str, build: Callable[[], bytes]) -> bytes:
    """The cached bytes for `identity` (host + full path of the request), built when missing.

    The generation is read before the database: an answer built from data older than a concurrent
    write is stored under the old generation, where nobody will look for it.
    """
    global _last_generation
    generation = None
    if _last_generation:
        guessed_key = _answer_key(_last_generation, identity)
        found = cache.get_many([GENERATION_KEY, guessed_key])
        generation = found.get(GENERATION_KEY)
        if generation == _last_generation and guessed_key in found:
            return bytes(found[guessed_key])
    if generation is None:
        generation = _generation()
    if generation == "uncached":
        return build()
    _last_generation = str(generation)
    key = _answer_key(_last_generation, identity)
    hit = cache.get(key)
    if hit is not None:
        return bytes(hit)
    body = build()
    cache.set(key, body, timeout=TTL_SECONDS)
    return body
