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
import uuid
from collections.abc import Callable

from django.core.cache import cache

GENERATION_KEY = "events:generation"
TTL_SECONDS = 60


def _generation() -> str:
    current = cache.get(GENERATION_KEY)
    if current is None:
        cache.add(GENERATION_KEY, uuid.uuid4().hex, timeout=None)
        current = cache.get(GENERATION_KEY) or "uncached"
    return str(current)


def invalidate() -> None:
    cache.set(GENERATION_KEY, uuid.uuid4().hex, timeout=None)


def _answer_key(generation: str, identity: str) -> str:
    return "events:answer:" + generation + ":" + hashlib.sha256(identity.encode()).hexdigest()


# The generation this process saw last: a hit then costs one round trip (generation and answer
# fetched together) instead of two.
_last_generation = ""


def cached_answer(identity: str) -> bytes | None:
    """The stored answer for `identity` when one round trip finds it under the current generation.

    The hit half of `read_through`, for a caller that has a slower way of its own to build (and
    store) the answer on a miss: None then, and nothing is stored or looked up further.
    """
    if not _last_generation:
        return None  # this process's first read goes through read_through
    guessed_key = _answer_key(_last_generation, identity)
    found = cache.get_many([GENERATION_KEY, guessed_key])
    if found.get(GENERATION_KEY) == _last_generation and guessed_key in found:
        return bytes(found[guessed_key])
    return None


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
