"""Sign-in throttling aimed at abuse: repeated failures against one account.

Per-address limits (ScopedRateThrottle, scope "auth") sit far above what an office behind one NAT
address produces at an event launch; this guard counts failed sign-ins per account instead (each
attempt is counted as it starts, and a success clears the count).
"""

from __future__ import annotations

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.exceptions import Throttled


def _keys(email: str, address: str = "") -> tuple[str, str]:
    # No email or address in cache keys or logs. (Lone surrogates cannot be UTF-8: such an email is
    # refused as invalid later, but the throttle runs first and must not fail on it.)
    digest = hashlib.sha256(f"{email}|{address}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"auth:failures:{digest}", f"auth:failures-since:{digest}"


def claim_attempt(email: str, address: str = "") -> None:
    """Counts a sign-in attempt on the account (from `address`, when given) before its password is
    checked, and raises Throttled once the window's attempts are past LOGIN_FAILURE_LIMIT. A success
    clears the count (clear_failures), so what stays counted are the failures. Checked before and
    counted after the password, attempts sent at the same moment were all tried: as many guesses
    as could be sent at once, whatever the limit."""
    count_key, since_key = _keys(email, address)
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    cache.add(since_key, time.time(), timeout=window)
    cache.add(count_key, 0, timeout=window)
    try:
        count = cache.incr(count_key)
    except ValueError:  # expired between add and incr
        cache.set(count_key, 1, timeout=window)
        count = 1
    if count is None or count <= settings.LOGIN_FAILURE_LIMIT:  # (None: the cache is away)
        return
    since = cache.get(since_key) or time.time()
    wait = window - (time.time() - since)
    raise Throttled(
        wait=max(1, math.ceil(wait)),
        detail="Too many failed sign-ins for this account. Try again later.",
    )


def clear_failures(email: str, address: str = "") -> None:
    cache.delete_many(list(_keys(email, address)))
