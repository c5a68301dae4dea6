"""``middleware.http.bearer``: require a JWT signed by the issuer's keys (OIDC).

The JWKS comes from ``jwksURL`` or, without it, from the issuer's OpenID
discovery document (whose ``issuer`` must equal the configured one exactly).
It is fetched at boot and again when a token names an unknown key id, at
most once a minute. A token is accepted only with an asymmetric algorithm
(``none`` and HMAC are refused, so a public key can never act as a shared
secret), a matching key (RSA keys under 2048 bits are refused), the
configured ``iss`` and ``aud``, and an ``exp`` still valid within ``leeway``. Any failure answers 401; a JWKS that cannot
be fetched when it is needed answers 500.
"""
from __future__ import annotations

import asyncio
import logging
import time
import warnings
from dataclasses import dataclass
from typing import Any

from pydapr import hookimpl
from pydapr.errors import ConfigError
from pydapr.metadata import Duration, meta
from pydapr.registry import MiddlewareType
from pydapr.server.request import Request, Response

from ._base import CallNext, HTTPMiddleware, UpstreamError, check_url, fetch_json, register

__all__ = ["BearerMiddleware", "BearerMetadata", "ALGORITHMS"]

log = logging.getLogger("pydapr.middleware.bearer")

#: algorithm -> JWK key type it needs
ALGORITHMS = {"RS256": "RSA", "RS384": "RSA", "RS512": "RSA", "PS256": "RSA", "PS384": "RSA",
              "PS512": "RSA", "ES256": "EC", "ES384": "EC", "ES512": "EC", "EdDSA": "OKP"}
_REFRESH_EVERY = 60.0
_MIN_RSA_BITS = 2048
_DENIED = Response(401, b"missing or invalid bearer token", [("www-authenticate", "Bearer")],
                   "text/plain; charset=utf-8")
_NO_KEYS = Response.text(500, "the identity provider's keys (JWKS) could not be fetched")


@dataclass(frozen=True)
class BearerMetadata:
    issuer: str = meta(name=("issuer", "issuerURL"), doc="expected iss claim (and OIDC issuer)")
    audience: str = meta(name=("audience", "clientID"), doc="expected aud claim")
    jwks_url: str = meta("", name="jwksURL", doc="JWKS address; default: from OIDC discovery")
    leeway: Duration = meta(Duration(60.0), doc="clock skew tolerated on exp/nbf/iat")


class BearerMiddleware(HTTPMiddleware):
    metadata_type = BearerMetadata
    #: in the httpPipeline the JWT is the caller's credential to *its* sidecar: service
    #: invocation never forwards it to another app (it would be replayable there)
    credential_headers = frozenset({"authorization"})

    async def init(self) -> None:
        md = self.md
        if not md.issuer or not md.audience:
            raise ConfigError(f"{self.where}: 'issuer' and 'audience' are required")
        self.jwks_url = md.jwks_url
        if self.jwks_url:
            check_url(self.jwks_url, f"{self.where}: field jwksURL")
        else:
            self.jwks_url = await self._discover()
        self.keys: list[tuple[dict[str, Any], Any]] = []
        self.fetched = 0.0
        self._lock = asyncio.Lock()
        await self._refresh()

    async def _discover(self) -> str:
        url = check_url(self.md.issuer.rstrip("/") + "/.well-known/openid-configuration",
                        f"{self.where}: field issuer")
        status, doc = await fetch_json(url)
        if status != 200 or not isinstance(doc, dict):
            raise UpstreamError(f"OpenID discovery at {url} answered {status}")
        if doc.get("issuer") != self.md.issuer:
            raise ConfigError(f"{self.where}: the discovery document names issuer "
                              f"{doc.get('issuer')!r}, not {self.md.issuer!r}")
        jwks = doc.get("jwks_uri")
        if not isinstance(jwks, str) or not jwks:
            raise UpstreamError(f"the discovery document at {url} has no jwks_uri")
        return check_url(jwks, f"{self.where}: jwks_uri of the discovery document")

    async def _refresh(self) -> None:
        import jwt
        status, doc = await fetch_json(self.jwks_url)
        if status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise UpstreamError(f"JWKS at {self.jwks_url} answered {status} without a key set")
        keys = []
        for jwk in doc["keys"]:
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
                continue
            try:  # malformed key material must not take the middleware down
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # weak keys are refused below, not warned
                    key = jwt.PyJWK(jwk).key
                if jwk.get("kty") == "RSA" and key.key_size < _MIN_RSA_BITS:
                    raise ValueError(f"RSA key of {key.key_size} bits")
                keys.append((jwk, key))
            except (jwt.PyJWTError, ValueError, TypeError, KeyError, AttributeError) as exc:
                log.warning("%s: skipping an unusable JWKS key (kid %r): %s", self.where,
                            jwk.get("kid"), exc)  # public key material only, never a secret
        if not keys:
            raise UpstreamError(f"JWKS at {self.jwks_url} holds no usable signing key")
        self.keys, self.fetched = keys, time.monotonic()

    def _candidates(self, kid: Any, alg: str) -> list[Any]:
        kty = ALGORITHMS[alg]
        return [key for jwk, key in self.keys
                if jwk.get("kty") == kty and jwk.get("alg", alg) == alg
                and (kid is None or jwk.get("kid") == kid)]

    async def _keys_for(self, kid: Any, alg: str) -> list[Any]:
        found = self._candidates(kid, alg)
        if found or kid is None or time.monotonic() - self.fetched < _REFRESH_EVERY:
            return found
        async with self._lock:
            if time.monotonic() - self.fetched >= _REFRESH_EVERY:
                await self._refresh()
        return self._candidates(kid, alg)

    async def __call__(self, request: Request, call_next: CallNext) -> Response:
        import jwt
        scheme, _, raw = request.headers.get("authorization", "").partition(" ")
        raw = raw.strip()
        if scheme.lower() != "bearer" or len(raw) < 10:
            return _DENIED
        try:
            header = jwt.get_unverified_header(raw)
        except jwt.PyJWTError:
            return _DENIED
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            return _DENIED
        try:
            keys = await self._keys_for(header.get("kid"), alg)
        except UpstreamError as exc:
            log.error("%s: %s", self.where, exc)
            return _NO_KEYS
        md = self.md
        for key in keys:
            try:
                jwt.decode(raw, key, algorithms=[alg], audience=md.audience, issuer=md.issuer,
                           leeway=float(md.leeway), options={"require": ["exp", "iss", "aud"]})
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError:
                return _DENIED
            return await call_next(request)
        return _DENIED


@hookimpl
def pydapr_middleware_types() -> list[MiddlewareType]:
    return [register("middleware.http.bearer", BearerMiddleware)]
