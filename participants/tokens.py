"""The access token the API authenticates with: simplejwt's, decoded cheaply when the platform made it.

Every authenticated request decodes its access token, and a token seen for the first time (every
request of a rush: one per participant) went through PyJWT's general decoder: 25-30 us of CPU in
a loop and about 120 us between a request's other work (docs/architecture.md, Performance), a
seventh of an enrollment. Most of that is generality the platform's own tokens never use: any
header, any algorithm, the key prepared again, every registered claim looked at.

`OwnTokenBackend.decode` answers for a token exactly as simplejwt's backend does, and takes a
short path for the usual one: a token whose header is the one this backend writes, signed with
HS256 under its key, with no claim beyond those the platform sets. The short path accepts only
what PyJWT would accept, with the same payload; for anything else (a bad signature, an expired or
not yet valid token, another header, padding, claim or configuration) it steps aside and PyJWT
decides, so every refusal and its message stay the library's. tests/unit/test_tokens.py holds the
two to the same outcome on a corpus of good, bad and odd tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from typing import Any

import orjson
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from participants.models import User

_SEGMENT = re.compile(rb"[A-Za-z0-9_-]*")
# Claims PyJWT checks only when present; a token carrying one is left to PyJWT.
_CLAIMS_LEFT_TO_PYJWT = ("nbf", "aud", "iss", "sub")


def _segment(encoded: bytes) -> bytes | None:
    """A base64url segment's bytes when it is in the canonical form PyJWT accepts
    (unpadded alphabet, the shortest encoding of its bytes); else None."""
    if len(encoded) % 4 == 1 or _SEGMENT.fullmatch(encoded) is None:
        return None
    try:
        decoded = base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4))
    except binascii.Error:
        return None
    return decoded if base64.urlsafe_b64encode(decoded).rstrip(b"=") == encoded else None


class OwnTokenBackend(TokenBackend):
    """simplejwt's TokenBackend, with a short path through `decode` for the platform's own tokens."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._short_key: bytes | None = None
        try:
            key = self.prepared_signing_key if self.algorithm == "HS256" else None
        except Exception:  # noqa: BLE001  (a key PyJWT refuses: it says so at every decode, as before)
            key = None
        # Only where PyJWT would take the same path without a word: HS256, no audience, issuer or
        # JWK set, and a key long enough that PyJWT does not warn about it on every decode.
        if (
            isinstance(key, bytes)
            and len(key) >= hashlib.sha256().digest_size
            and self.audience is None
            and self.issuer is None
            and self.jwks_client is None
        ):
            self._short_key = key
            self._own_header = self.encode({}).encode("ascii").partition(b".")[0]
            self._leeway = self.get_leeway().total_seconds()

    def decode(self, token: Any, verify: bool = True) -> dict[str, Any]:
        if verify and self._short_key is not None:
            payload = self._own_token_payload(token, self._short_key)
            if payload is not None:
                return payload
        return super().decode(token, verify)

    def _own_token_payload(self, token: Any, key: bytes) -> dict[str, Any] | None:
        """The payload PyJWT would return for `token`, when it is a valid token of this backend's
        own making (signed with `key`); None when PyJWT must decide (which may still accept it)."""
        raw = token.encode("utf-8") if isinstance(token, str) else token
        if not isinstance(raw, bytes):
            return None
        parts = raw.split(b".")
        if len(parts) != 3 or parts[0] != self._own_header:
            return None
        signature = _segment(parts[2])
        payload_bytes = _segment(parts[1])
        if signature is None or payload_bytes is None:
            return None
        signed = hmac.new(key, raw[: len(parts[0]) + 1 + len(parts[1])], hashlib.sha256)
        if not hmac.compare_digest(signed.digest(), signature):
            return None
        try:
            payload = orjson.loads(payload_bytes)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(payload, dict) or any(claim in payload for claim in _CLAIMS_LEFT_TO_PYJWT):
            return None
        # PyJWT's checks of the claims it reads, where they pass; any doubt goes to PyJWT.
        exp, iat, jti = payload.get("exp"), payload.get("iat"), payload.get("jti", "")
        if type(exp) is not int or type(iat) is not int or type(jti) is not str:
            return None
        now = time.time()
        if exp <= now - self._leeway or iat > now + self._leeway:
            return None
        return payload


token_backend = OwnTokenBackend(
    api_settings.ALGORITHM,
    api_settings.SIGNING_KEY,
    api_settings.VERIFYING_KEY,
    api_settings.AUDIENCE,
    api_settings.ISSUER,
    api_settings.JWK_URL,
    api_settings.LEEWAY,
    api_settings.JSON_ENCODER,
)


class PlatformAccessToken(AccessToken):
    """simplejwt's access token, decoded by `OwnTokenBackend` (SIMPLE_JWT's AUTH_TOKEN_CLASSES).
    Its checks after decoding (expiry, id, type) are simplejwt's own."""

    def get_token_backend(self) -> TokenBackend:
        return token_backend


class RotatedOnceRefreshToken(RefreshToken):
    """A refresh token that is traded for a new pair once (rotation). simplejwt blacklists the old
    one with a get-or-create, after checking that it is not blacklisted yet: trades of the same
    token at the same moment all passed the check before any of them blacklisted it, and each got
    a new pair, one token becoming many sessions. Here only the trade whose blacklisting creates the
    row goes on (the row is unique per token); the others are refused as blacklisted.

    The trade also holds the account's row until it commits (RotatingRefreshSerializer's
    transaction), as a password change does until it has revoked the account's tokens
    (`User.save`): a change saved during a trade waits for it, and then revokes the new token too,
    where it used to find only the old one and let the new session go on with the old password;
    a trade during a change waits for it, and finds its token revoked. The account is checked
    again under that lock: one deactivated (or deleted) while the trade waited gets no new pair
    (simplejwt checked it before, unlocked)."""

    def blacklist(self) -> BlacklistedToken:
        user_id = self.payload.get(api_settings.USER_ID_CLAIM)
        if user_id is not None:
            # (NO KEY: rows referring to the account, a sign-in's outstanding token say, need not wait.)
            active = User.objects.select_for_update(no_key=True).filter(pk=user_id, is_active=True).exists()
            if not active:
                raise AuthenticationFailed(
                    str(_("No active account found for the given token.")), "no_active_account"
                )
        self.outstand()  # the token's row in the outstanding list, made if missing
        outstanding = OutstandingToken.objects.get(jti=self.payload[api_settings.JTI_CLAIM])
        try:
            with transaction.atomic():
                return BlacklistedToken.objects.create(token=outstanding)
        except IntegrityError as exc:  # blacklisted already, by a trade that came first
            raise TokenError(_("Token is blacklisted")) from exc


class RotatingRefreshSerializer(TokenRefreshSerializer):
    """simplejwt's refresh, with the token traded once (RotatedOnceRefreshToken), in one
    transaction: the old token blacklisted and the new one listed as outstanding together."""

    token_class = RotatedOnceRefreshToken

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        with transaction.atomic():
            return super().validate(attrs)
