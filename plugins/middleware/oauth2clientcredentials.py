"""``middleware.http.oauth2clientcredentials``: add a token from the client-credentials grant.

The token is fetched from ``tokenURL`` and cached until shortly before it
expires; concurrent requests share one fetch. It is *set* as
``<headerName>: <token type> <access token>``, replacing any copy the caller
sent. When no token can be had the request is not forwarded: daprd then
answers an empty 200, pydapr a 502 that says why (details in the log).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

from pydapr import hookimpl
from pydapr.errors import ConfigError
from pydapr.metadata import meta
from pydapr.registry import MiddlewareType
from pydapr.server.request import Request, Response

from ._base import (CallNext, HTTPMiddleware, UpstreamError, check_url, compile_rule, register,
                    token_request)

__all__ = ["ClientCredentialsMiddleware", "ClientCredentialsMetadata"]

log = logging.getLogger("pydapr.middleware.oauth2clientcredentials")

_EARLY = 10.0  # renew this many seconds before expiry
_DEFAULT_TTL = 300.0
_FAILED = Response.text(502, "could not obtain an OAuth2 token for this request; "
                             "see the sidecar log")


@dataclass(frozen=True)
class ClientCredentialsMetadata:
    client_id: str = meta(name="clientID")
    client_secret: str = meta(name="clientSecret", sensitive=True)
    token_url: str = meta(name="tokenURL")
    header_name: str = meta(doc="header that carries the token")
    scopes: list[str] = meta(default_factory=list, doc="comma-separated scopes")
    endpoint_params_query: str = meta("", doc="extra token request parameters, a=b&c=d")
    auth_style: int = meta(0, doc="0 auto-detect, 1 credentials in the body, 2 HTTP Basic")
    path_filter: str = meta("", doc="regular expression: only matching paths get a token")


class ClientCredentialsMiddleware(HTTPMiddleware):
    metadata_type = ClientCredentialsMetadata

    async def init(self) -> None:
        md = self.md
        if not (md.client_id and md.client_secret and md.header_name):
            raise ConfigError(f"{self.where}: clientID, clientSecret and headerName are required")
        if md.auth_style not in (0, 1, 2):
            raise ConfigError(f"{self.where}: field authStyle: must be 0, 1 or 2")
        check_url(md.token_url, f"{self.where}: field tokenURL")
        self.filter = compile_rule(md.path_filter, f"{self.where}: field pathFilter") \
            if md.path_filter else None
        self.params = {"grant_type": "client_credentials",
                       **dict(parse_qsl(md.endpoint_params_query))}
        if md.scopes:
            self.params["scope"] = " ".join(md.scopes)
        self.header = md.header_name.lower()
        self.token = ""
        self.expires = 0.0
        self._lock = asyncio.Lock()

    async def _current(self) -> str:
        if self.token and time.monotonic() < self.expires:
            return self.token
        async with self._lock:
            if not self.token or time.monotonic() >= self.expires:
                md = self.md
                doc = await token_request(md.token_url, self.params, md.client_id, md.client_secret,
                                          md.auth_style)
                ttl = doc.get("expires_in")
                ttl = float(ttl) if isinstance(ttl, (int, float)) else _DEFAULT_TTL
                self.token = f"{doc.get('token_type') or 'Bearer'} {doc['access_token']}"
                self.expires = time.monotonic() + max(ttl - _EARLY, 1.0)
        return self.token

    async def __call__(self, request: Request, call_next: CallNext) -> Response:
        if self.filter is not None and not self.filter.search(unquote(request.path)):
            return await call_next(request)
        try:
            token = await self._current()
        except UpstreamError as exc:
            log.error("%s: %s", self.where, exc)
            return _FAILED
        request.headers[self.header] = token  # replaces every caller copy
        return await call_next(request)


@hookimpl
def pydapr_middleware_types() -> list[MiddlewareType]:
    return [register("middleware.http.oauth2clientcredentials", ClientCredentialsMiddleware)]
