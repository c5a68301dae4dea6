"""Token validators: how the sentry attests who is asking before it signs (checks C3, C4).

* ``insecure``: no attestation; the common checks only. Dapr's self-hosted
  default. pydapr allows it only while the sentry listens on loopback, and
  disables it as soon as a real validator is configured.
* ``jwks``: the request carries a JWT signed by a key of a JWKS (a file,
  re-read when it changes, or an ``https://`` URL, cached); ``aud`` must be the
  sentry's SPIFFE ID, ``sub`` the SPIFFE ID requested; ``exp`` is required;
  5 minutes of leeway for clock skew, as in Dapr.
* ``join-token``: a YAML file maps ``<app-id>`` (any namespace) or
  ``<namespace>/<app-id>`` (that namespace only, checked first) to a secret
  token; the request's token is compared in constant time. The file is
  re-read when it changes, so tokens can be added or revoked without a restart.

Tokens are never logged and never echoed in replies.
"""
from __future__ import annotations

import hmac
import logging
import time
import urllib.request
from pathlib import Path
from typing import Any, Protocol

import grpc
import yaml

from pydapr.identity.pem import FileWatch
from pydapr.identity.protocol import SignRequest
from pydapr.identity.spiffe import SpiffeID

__all__ = ["SignError", "Validator", "InsecureValidator", "JoinTokenValidator", "JWKSValidator",
           "MIN_JOIN_TOKEN"]

log = logging.getLogger("pydapr.sentry")

#: shortest join token accepted in the tokens file
MIN_JOIN_TOKEN = 16
_JWT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                   "EdDSA")
_MAX_JWKS = 1 << 20


class SignError(Exception):
    """A request is refused: ``status`` is the gRPC code, ``message`` what the caller can fix."""

    def __init__(self, status: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _denied(message: str) -> SignError:
    return SignError(grpc.StatusCode.PERMISSION_DENIED, message)


class Validator(Protocol):
    name: str

    def validate(self, req: SignRequest, spiffe_id: SpiffeID) -> None:
        """Return if the caller is attested as ``spiffe_id``; else raise :class:`SignError`."""


class InsecureValidator:
    """Signs any well-formed request (the common checks run before any validator)."""

    name = "insecure"

    def validate(self, req: SignRequest, spiffe_id: SpiffeID) -> None:
        return None


class JoinTokenValidator:
    """Per-app secret tokens from a YAML mapping file; constant-time comparison."""

    name = "join-token"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._watch = FileWatch(self.path)
        self._tokens = self._load()

    def _load(self) -> dict[str, str]:
        try:
            data = yaml.safe_load(self.path.read_text())
        except OSError as exc:
            raise ValueError(f"{self.path}: cannot read the join tokens ({exc.strerror})") from None
        except yaml.YAMLError:
            raise ValueError(f"{self.path}: the join tokens file is not valid YAML") from None
        if not isinstance(data, dict) or not data:
            raise ValueError(f"{self.path}: expected a mapping of app id (or namespace/app-id) to token")
        tokens = {}
        for key, value in data.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError(f"{self.path}: entry {key!r}: app id and token must be strings")
            if len(value) < MIN_JOIN_TOKEN:
                raise ValueError(f"{self.path}: entry {key!r}: the token is shorter than "
                                 f"{MIN_JOIN_TOKEN} characters")
            tokens[key] = value
        return tokens

    def _refresh(self) -> None:
        if self._watch.changed():
            try:
                self._tokens = self._load()
                log.info("join tokens reloaded from %s (%d entries)", self.path, len(self._tokens))
            except ValueError as exc:
                self._tokens = {}
                log.error("join tokens unusable, every join-token request is refused: %s", exc)

    def validate(self, req: SignRequest, spiffe_id: SpiffeID) -> None:
        self._refresh()
        if not req.token:
            raise _denied("a join token is required (DAPR_SENTRY_TOKEN_FILE)")
        expected = (self._tokens.get(f"{spiffe_id.namespace}/{spiffe_id.app_id}")
                    or self._tokens.get(spiffe_id.app_id))
        # compare even when there is no entry, so timing does not reveal which app ids exist
        match = hmac.compare_digest(req.token.encode(), (expected or "\0" * 32).encode())
        if expected is None or not match:
            raise _denied(f"the join token is not valid for app id {spiffe_id.app_id!r} in "
                          f"namespace {spiffe_id.namespace!r}")


class JWKSValidator:
    """JWTs signed by a key of a JWKS file or URL.

    :param source: a file path or an ``http(s)://`` URL of the JWKS.
    :param audience: the required ``aud`` (the sentry's SPIFFE ID).
    :param leeway: seconds of clock skew tolerated on ``exp``/``nbf``.
    """

    name = "jwks"

    def __init__(self, source: str, audience: str, leeway: float = 300.0,
                 refresh_interval: float = 300.0) -> None:
        import jwt  # PyJWT: only needed when this validator is configured
        self._jwt = jwt
        self.source = source
        self.audience = audience
        self.leeway = leeway
        self.refresh_interval = refresh_interval
        self.is_url = source.startswith(("https://", "http://"))
        self._watch = None if self.is_url else FileWatch(source)
        self._fetched = 0.0
        self._keys = self._load()

    def _load(self) -> Any:
        if self.is_url:
            with urllib.request.urlopen(self.source, timeout=5) as resp:  # noqa: S310 - operator URL
                data = resp.read(_MAX_JWKS + 1)
            if len(data) > _MAX_JWKS:
                raise ValueError(f"{self.source}: the JWKS is larger than {_MAX_JWKS} bytes")
            self._fetched = time.monotonic()
        else:
            try:
                data = Path(self.source).read_bytes()
            except OSError as exc:
                raise ValueError(f"{self.source}: cannot read the JWKS ({exc.strerror})") from None
        try:
            return self._jwt.PyJWKSet.from_json(data.decode())
        except Exception:
            raise ValueError(f"{self.source}: not a JWKS with at least one usable key") from None

    def _refresh(self, force: bool = False) -> None:
        due = (self._watch.changed() if self._watch is not None
               else time.monotonic() - self._fetched > (30.0 if force else self.refresh_interval))
        if due:
            try:
                self._keys = self._load()
            except Exception as exc:
                log.error("JWKS refresh failed, keeping the previous keys: %s", exc)

    def _key(self, kid: str | None) -> Any:
        keys = self._keys.keys
        if kid is None:
            return keys[0] if len(keys) == 1 else None
        return next((k for k in keys if k.key_id == kid), None)

    def validate(self, req: SignRequest, spiffe_id: SpiffeID) -> None:
        jwt = self._jwt
        if not req.token:
            raise _denied("a JWT is required by the jwks validator (DAPR_SENTRY_TOKEN_FILE)")
        try:
            header = jwt.get_unverified_header(req.token)
        except jwt.PyJWTError:
            raise _denied("the token is not a JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in _JWT_ALGORITHMS:
            raise _denied(f"JWT algorithm {alg!r} is not accepted")
        self._refresh()
        key = self._key(kid)
        if key is None:
            self._refresh(force=True)
            key = self._key(kid)
        if key is None:
            raise _denied("the JWT is not signed by a key of the configured JWKS")
        if key.algorithm_name and key.algorithm_name != alg:
            raise _denied(f"the JWT algorithm {alg!r} does not match its key")
        try:
            claims = jwt.decode(req.token, key.key, algorithms=[alg], audience=self.audience,
                                leeway=self.leeway, options={"require": ["exp", "sub", "aud"]})
        except jwt.ExpiredSignatureError:
            raise _denied("the JWT has expired") from None
        except jwt.ImmatureSignatureError:
            raise _denied("the JWT is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise _denied(f"the JWT audience is not this sentry ({self.audience})") from None
        except jwt.PyJWTError as exc:
            raise _denied(f"the JWT is not valid: {type(exc).__name__}") from None
        if claims.get("sub") != spiffe_id.uri:
            raise _denied(f"the JWT subject does not match the requested identity {spiffe_id}")
