"""JWT authentication for hot read-only routes: a valid signature is enough, no database."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from django.utils.functional import cached_property
from rest_framework_simplejwt.authentication import AUTH_HEADER_TYPE_BYTES, JWTStatelessUserAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.models import TokenUser
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token


class AccountTokenUser(TokenUser):
    """A token's user whose `id` and `pk` are the account's own (an int: simplejwt keeps the claim as
    a string), as the request log line and the services expect them."""

    @cached_property
    def id(self) -> Any:  # type: ignore[override]
        claim = self.token[api_settings.USER_ID_CLAIM]
        return int(claim) if isinstance(claim, str) and claim.isdigit() else claim

    @cached_property
    def pk(self) -> Any:  # type: ignore[override]
        return self.id


class CachedStatelessJWTAuthentication(JWTStatelessUserAuthentication):
    """Trusts a signed, unexpired access token without loading its account.

    Clients send the same access token with every request for its whole lifetime, so each process
    remembers the tokens it has verified (bounded, least recently used first out) and only checks
    their expiry again. Used on reads only: an account deleted or deactivated can still read until
    its access token expires; every write loads the account.
    """

    MAX_REMEMBERED = 10_000
    _verified: OrderedDict[bytes, Token] = OrderedDict()
    _lock = threading.Lock()

    def get_validated_token(self, raw_token: bytes) -> Token:
        with self._lock:
            token = self._verified.get(raw_token)
            if token is not None:
                self._verified.move_to_end(raw_token)
        if token is not None and token.payload.get("exp", 0) > time.time():
            return token
        token = super().get_validated_token(raw_token)  # raises InvalidToken when bad or expired
        with self._lock:
            self._verified[raw_token] = token
            if len(self._verified) > self.MAX_REMEMBERED:
                self._verified.popitem(last=False)
        return token


_reader = CachedStatelessJWTAuthentication()


def stateless_user(authorization: str) -> Any | None:
    """The token user of an `Authorization` header, exactly when CachedStatelessJWTAuthentication
    would authenticate it (same header rules, same remembered tokens, same checks); else None.

    For views outside DRF (events/api/reads.py, the enrollment's fast path) that answer only the
    plain success case and leave every other case (no header, a bad or expired token) to the DRF
    view, which answers it with its usual problem+json error. The result is an `AccountTokenUser`:
    `pk` is the token's user id (the account is not loaded: whether it is still active is for the
    caller to know or check).
    """
    if not authorization:
        return None
    parts = authorization.encode("iso-8859-1", "replace").split()
    if len(parts) != 2 or parts[0] not in AUTH_HEADER_TYPE_BYTES:
        return None
    try:
        token = _reader.get_validated_token(parts[1])
    except InvalidToken:
        return None
    if api_settings.USER_ID_CLAIM not in token:
        return None
    return AccountTokenUser(token)
