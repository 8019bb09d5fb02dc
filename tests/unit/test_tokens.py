"""The access token's short decoding path (participants/tokens.py) against simplejwt's own.

The short path may only accept what PyJWT accepts, with the same payload, and must leave everything
else to PyJWT, so that `PlatformAccessToken` and simplejwt's `AccessToken` come to the same outcome
(the payload, or the same error and message) for every token.
"""

import base64
import hashlib
import hmac
import json
import time
import warnings
from datetime import timedelta
from unittest import mock

import jwt
import pytest
from rest_framework_simplejwt import backends
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from participants.tokens import OwnTokenBackend, PlatformAccessToken, token_backend

KEY = api_settings.SIGNING_KEY
OWN_HEADER = {"alg": "HS256", "typ": "JWT"}
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(payload, header=OWN_HEADER, key=KEY, digest=hashlib.sha256) -> str:
    """A token of any header and payload (a dict, or the payload's bytes as they are), signed."""

    def compact(part):
        return part if isinstance(part, bytes) else json.dumps(part, separators=(",", ":")).encode()

    signing_input = f"{b64(compact(header))}.{b64(compact(payload))}"
    signature = hmac.new(key.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def claims(**changes):
    now = int(time.time())
    payload = {"token_type": "access", "exp": now + 300, "iat": now, "jti": "a" * 32, "user_id": "7"}
    payload.update(changes)
    return {name: value for name, value in payload.items() if value is not None}


def outcome(token_class, raw):
    try:
        return "accepted", token_class(raw).payload
    except TokenError as exc:
        return "refused", str(exc)
    except Exception as exc:  # simplejwt's own failure on claims only a signer could put there
        return "raised", type(exc).__name__, str(exc)


def valid() -> str:
    token = AccessToken()
    token["user_id"] = "42"
    return str(token)


def with_last_char(token: str, char: str) -> str:
    return token[:-1] + char


def odd_tokens():
    now = int(time.time())
    good = valid()
    head, body, signature = good.split(".")
    # The signature's last character carries 4 bits and 2 unused ones, 0 in the canonical form:
    # setting one decodes to the same bytes, a non-canonical encoding PyJWT refuses.
    same_bits = ALPHABET[ALPHABET.index(signature[-1]) | 1]
    alg_none = b64(b'{"alg":"none","typ":"JWT"}')
    return {
        "valid": good,
        "valid, as bytes": good.encode(),
        "expired": signed(claims(exp=now - 5, iat=now - 305)),
        "issued in the future": signed(claims(iat=now + 60)),
        "no exp": signed(claims(exp=None)),
        "exp a float": signed(claims(exp=now + 300.5)),
        "exp a string": signed(claims(exp=str(now + 300))),
        "exp true": signed(claims(exp=True)),
        "exp beyond 64 bits": signed(claims(exp=2**70)),
        "iat a float": signed(claims(iat=now + 0.5)),
        "iat a string": signed(claims(iat="now")),
        "no iat": signed(claims(iat=None)),
        "no jti": signed(claims(jti=None)),
        "jti a number": signed(claims(jti=12)),
        "no user id": signed(claims(user_id=None)),
        "a refresh token": signed(claims(token_type="refresh")),
        "no token type": signed(claims(token_type=None)),
        "nbf in the future": signed(claims(nbf=now + 60)),
        "nbf in the past": signed(claims(nbf=now - 60)),
        "an audience": signed(claims(aud="somebody")),
        "an issuer": signed(claims(iss="somebody")),
        "sub a number": signed(claims(sub=5)),
        "sub a string": signed(claims(sub="5")),
        "a payload list": signed(b"[1, 2]"),
        "a payload not JSON": signed(b"not json"),
        "a payload with NaN": signed(json.dumps(claims(extra=float("nan"))).encode()),
        "a payload with spaces": signed(json.dumps(claims()).encode()),
        "a bad signature": with_last_char(good, "A" if good[-1] != "A" else "B"),
        "a non-canonical signature": with_last_char(good, same_bits),
        "a padded signature": good + "=",
        "another key": signed(claims(), key="another key, long enough for HS256 to take it"),
        "HS512": signed(claims(), header={"alg": "HS512", "typ": "JWT"}, digest=hashlib.sha512),
        "alg none": f"{alg_none}.{body}.",
        "a key id": signed(claims(), header={"alg": "HS256", "typ": "JWT", "kid": "1"}),
        "a header with spaces": signed(claims(), header=b'{"alg": "HS256", "typ": "JWT"}'),
        "two segments": f"{head}.{body}",
        "four segments": f"{good}.{signature}",
        "a payload with junk": f"{head}.{body}!.{signature}",
        "a payload with padding": f"{head}.{body}{'=' * (-len(body) % 4)}.{signature}",
        "empty": "",
        "not ASCII": good + "é",
    }


@pytest.mark.parametrize("name", sorted(odd_tokens()))
def test_the_platform_token_decodes_every_token_as_simplejwt_does(name):
    raw = odd_tokens()[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert outcome(PlatformAccessToken, raw) == outcome(AccessToken, raw)


def test_the_corpus_has_both_outcomes():
    outcomes = [outcome(AccessToken, raw)[0] for raw in odd_tokens().values()]
    assert outcomes.count("accepted") >= 10 and outcomes.count("refused") >= 20, outcomes


@pytest.fixture
def pyjwt_calls():
    """Counts the decodes PyJWT does for simplejwt's backends."""
    with mock.patch.object(backends.jwt, "decode", wraps=jwt.decode) as decode:
        yield decode


def test_a_platform_token_is_decoded_without_pyjwt(pyjwt_calls):
    token = PlatformAccessToken(valid())
    assert token["user_id"] == "42" and token["token_type"] == "access"
    assert pyjwt_calls.call_count == 0


@pytest.mark.parametrize("name", ["expired", "a bad signature", "a key id", "nbf in the past", "exp a float"])
def test_other_tokens_are_decoded_by_pyjwt(pyjwt_calls, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outcome(PlatformAccessToken, odd_tokens()[name])
    assert pyjwt_calls.call_count == 1


def backend(**changes):
    options = {
        "algorithm": "HS256",
        "signing_key": KEY,
        "verifying_key": "",
        "audience": None,
        "issuer": None,
        "jwk_url": None,
        "leeway": None,
        "json_encoder": None,
    }
    options.update(changes)
    return OwnTokenBackend(**options)


@pytest.mark.parametrize(
    "changes",
    [
        {"signing_key": "short"},  # PyJWT warns about it at every decode
        {"audience": "somebody"},
        {"issuer": "somebody"},
        {"algorithm": "HS512"},
    ],
)
def test_other_configurations_decode_through_pyjwt(pyjwt_calls, changes):
    other = backend(**changes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        payload = other.decode(other.encode(claims(aud=changes.get("audience"), iss=changes.get("issuer"))))
    assert payload["user_id"] == "7"
    assert pyjwt_calls.call_count == 1


def test_the_leeway_counts_as_pyjwt_counts_it(pyjwt_calls):
    lenient = backend(leeway=timedelta(seconds=30))
    now = int(time.time())
    just_expired = lenient.encode(claims(exp=now - 10, iat=now - 310))
    assert lenient.decode(just_expired)["exp"] == now - 10
    assert pyjwt_calls.call_count == 0
    with pytest.raises(backends.TokenBackendExpiredToken):
        lenient.decode(lenient.encode(claims(exp=now - 60, iat=now - 360)))


def test_a_decode_without_verification_is_pyjwts(pyjwt_calls):
    assert token_backend.decode(signed(claims(), key="another key, long enough for HS256"), verify=False)
    assert pyjwt_calls.call_count == 1


def test_the_api_authenticates_with_the_platform_token():
    assert list(api_settings.AUTH_TOKEN_CLASSES) == [PlatformAccessToken]
    validated = JWTAuthentication().get_validated_token(valid().encode())
    assert isinstance(validated, PlatformAccessToken)
    refresh = str(RefreshToken())
    with pytest.raises(InvalidToken):  # a refresh token is not an access token
        JWTAuthentication().get_validated_token(refresh.encode())
