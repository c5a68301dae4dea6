"""``middleware.http.oauth2``: the OAuth2 authorization-code flow for browser callers.

Without a token in its session the caller is redirected to ``authURL`` with a
fresh ``state``; the provider sends it back with ``state`` and ``code``; the
code is exchanged at ``tokenURL`` and the caller is redirected to the URL it
first asked for. From then on its requests go on with the header
``authHeaderName: <type> <token>``. That header is *set*: any copy the caller
sent itself is dropped (Dapr adds it, so a forged copy would arrive first).

Sessions live in memory (bounded, expiring) behind an HttpOnly, SameSite=Lax
cookie (Secure with ``forceHTTPS``); the state is compared in constant time.
"""
from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import unquote, urlencode

from pydapr import hookimpl
from pydapr.errors import ConfigError
from pydapr.metadata import meta
from pydapr.registry import MiddlewareType
from pydapr.server.request import Request, Response

from ._base import (CallNext, HTTPMiddleware, UpstreamError, check_url, compile_rule, register,
                    token_request)

__all__ = ["OAuth2Middleware", "OAuth2Metadata"]

log = logging.getLogger("pydapr.middleware.oauth2")

_MAX_SESSIONS = 10_000
_PENDING_TTL = 600.0
_DEFAULT_TOKEN_TTL = 3600.0


@dataclass(frozen=True)
class OAuth2Metadata:
    client_id: str = meta(name="clientID")
    client_secret: str = meta(name="clientSecret", sensitive=True)
    auth_url: str = meta(name="authURL", doc="the provider's authorization endpoint")
    token_url: str = meta(name="tokenURL", doc="the provider's token endpoint")
    redirect_url: str = meta("", name="redirectURL",
                             doc="callback URL registered with the provider")
    scopes: list[str] = meta(default_factory=list, doc="comma-separated scopes")
    auth_header_name: str = meta("Authorization", doc="header that carries the token to the app")
    force_https: bool = meta(False, name="forceHTTPS", doc="https redirects and Secure cookies")
    path_filter: str = meta("", doc="regular expression: only matching paths are protected")


@dataclass
class _Session:
    expires: float
    state: str = ""
    redirect: str = "/"
    token: str = field(default="", repr=False)


class OAuth2Middleware(HTTPMiddleware):
    metadata_type = OAuth2Metadata

    async def init(self) -> None:
        md = self.md
        missing = [n for n, v in (("clientID", md.client_id), ("clientSecret", md.client_secret),
                                  ("authURL", md.auth_url), ("tokenURL", md.token_url)) if not v]
        if missing:
            raise ConfigError(f"{self.where}: required field(s) missing: {', '.join(missing)}")
        check_url(md.auth_url, f"{self.where}: field authURL")
        check_url(md.token_url, f"{self.where}: field tokenURL")
        self.filter = compile_rule(md.path_filter, f"{self.where}: field pathFilter") \
            if md.path_filter else None
        self.header = md.auth_header_name.lower()
        self.cookie = "pydapr-oauth2-" + "".join(c if c.isalnum() else "-" for c in self.info.name)
        self.sessions: OrderedDict[str, _Session] = OrderedDict()

    def _session(self, req: Request) -> _Session | None:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(req.headers.get("cookie", ""))
        except Exception:
            return None
        morsel = jar.get(self.cookie)
        sid = morsel.value if morsel is not None else ""
        found = self.sessions.get(sid)
        if found is not None and found.expires < time.monotonic():
            del self.sessions[sid]
            found = None
        return found

    def _new_session(self, session: _Session) -> str:
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = session
        while len(self.sessions) > _MAX_SESSIONS:
            self.sessions.popitem(last=False)
        return sid

    def _set_cookie(self, sid: str) -> tuple[str, str]:
        secure = "; Secure" if self.md.force_https else ""
        return ("set-cookie", f"{self.cookie}={sid}; Path=/; HttpOnly; SameSite=Lax{secure}")

    def _original_url(self, req: Request) -> str:
        path = "/" + req.path.lstrip("/")  # "//evil.example" would be an open redirect
        url = f"{path}?{req.query_string}" if req.query_string else path
        host = req.headers.get("host")
        return f"https://{host}{url}" if self.md.force_https and host else url

    async def __call__(self, request: Request, call_next: CallNext) -> Response:
        if self.filter is not None and not self.filter.search(unquote(request.path)):
            return await call_next(request)
        session = self._session(request)
        if session is not None and session.token:
            request.headers[self.header] = session.token  # replaces every caller copy
            return await call_next(request)
        state = request.query_first("state")
        if not state:
            return self._start(request)
        if session is None or not session.state or not hmac.compare_digest(
                state.encode(), session.state.encode()):
            return Response.text(400, "invalid state: restart the sign-in from the original page")
        code = request.query_first("code")
        if not code:
            return Response.text(400, "code not found in the provider's callback")
        md = self.md
        params = {"grant_type": "authorization_code", "code": code}
        if md.redirect_url:
            params["redirect_uri"] = md.redirect_url
        try:
            doc = await token_request(md.token_url, params, md.client_id, md.client_secret)
        except UpstreamError as exc:
            log.error("%s: exchanging the authorization code failed: %s", self.where, exc)
            return Response.text(500, "error exchanging token")
        ttl = doc.get("expires_in")
        session.token = f"{doc.get('token_type') or 'Bearer'} {doc['access_token']}"
        session.state = ""
        session.expires = time.monotonic() + (float(ttl) if isinstance(ttl, (int, float))
                                              else _DEFAULT_TOKEN_TTL)
        return Response(302, b"", [("location", session.redirect)])

    def _start(self, request: Request) -> Response:
        md = self.md
        state = secrets.token_urlsafe(24)
        sid = self._new_session(_Session(time.monotonic() + _PENDING_TTL, state,
                                         self._original_url(request)))
        query = {"response_type": "code", "client_id": md.client_id, "state": state,
                 "access_type": "offline"}
        if md.redirect_url:
            query["redirect_uri"] = md.redirect_url
        if md.scopes:
            query["scope"] = " ".join(md.scopes)
        location = md.auth_url + ("&" if "?" in md.auth_url else "?") + urlencode(query)
        return Response(302, b"", [("location", location), self._set_cookie(sid)])


@hookimpl
def pydapr_middleware_types() -> list[MiddlewareType]:
    return [register("middleware.http.oauth2", OAuth2Middleware)]
