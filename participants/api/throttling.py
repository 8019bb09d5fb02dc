"""Sign-in throttling aimed at abuse: repeated failures against one account.

Per-address limits (ScopedRateThrottle, scope "auth") sit far above what an office behind one NAT
address produces at an event launch; this guard counts failed sign-ins per account instead.
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


def check_not_locked(email: str, address: str = "") -> None:
    """Raises Throttled while the account (from `address`, when given) has too many recent
    failures. Counting per account and address lets nobody lock an account out from elsewhere."""
    count_key, since_key = _keys(email, address)
    if (cache.get(count_key) or 0) < settings.LOGIN_FAILURE_LIMIT:
        return
    since = cache.get(since_key) or time.time()
    wait = settings.LOGIN_FAILURE_WINDOW_SECONDS - (time.time() - since)
    raise Throttled(
        wait=max(1, math.ceil(wait)),
        detail="Too many failed sign-ins for this account. Try again later.",
    )


def record_failure(email: str, address: str = "") -> None:
    count_key, since_key = _keys(email, address)
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    cache.add(since_key, time.time(), timeout=window)
    cache.add(count_key, 0, timeout=window)
    try:
        cache.incr(count_key)
    except ValueError:  # expired between add and incr
        cache.set(count_key, 1, timeout=window)


def clear_failures(email: str, address: str = "") -> None:
    cache.delete_many(list(_keys(email, address)))
