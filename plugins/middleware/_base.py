"""What the HTTP middleware plugins share: the base class and careful outbound HTTP.

A middleware is built once at boot by :class:`pydapr.registry.MiddlewareType`'s
factory, ``factory(info, properties, runtime)``; the base class decodes the
typed metadata there. ``async init()`` does the network work (OIDC discovery,
JWKS), ``async __call__(request, call_next)`` runs per request.

Outbound calls (discovery, JWKS, token endpoints) use verified TLS, follow no
redirects, cap the response size, and refuse plain ``http`` except to a
loopback host: a token endpoint reached in clear text would leak the client
secret.
"""
from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any, Awaitable, Callable, ClassVar

from pydapr.errors import ConfigError
from pydapr.metadata import decode
from pydapr.registry import MiddlewareType

if TYPE_CHECKING:
    from pydapr.kinds import ComponentInfo
    from pydapr.runtime import Runtime
    from pydapr.server.request import Request, Response

__all__ = ["HTTPMiddleware", "CallNext", "UpstreamError", "check_url", "fetch_json",
           "token_request", "compile_rule", "register"]

CallNext = Callable[["Request"], Awaitable["Response"]]

_MAX_RESPONSE = 1 << 20


class UpstreamError(Exception):
    """An identity provider or token endpoint could not be used (the message is safe to log)."""


class HTTPMiddleware:
    """Base of the built-in middleware: ``metadata_type`` is decoded into ``self.md``."""

    metadata_type: ClassVar[type]
    #: headers that carry the caller's credential to its own sidecar (httpPipeline only);
    #: service invocation drops them rather than forward them to another app
    credential_headers: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, info: ComponentInfo, properties: dict[str, str], runtime: Runtime) -> None:
        self.info = info
        self.runtime = runtime
        self.where = f"{info.resource.source if info.resource else 'component'}: middleware " \
                     f"{info.name} ({info.type})"
        self.md = decode(self.metadata_type, properties, self.where)

    async def init(self) -> None:
        """Network set-up at boot; raise to stop start-up."""

    async def close(self) -> None:
        """Release what :meth:`init` took."""

    async def __call__(self, request: Request, call_next: CallNext) -> Response:
        raise NotImplementedError


def register(name: str, cls: type) -> MiddlewareType:
    return MiddlewareType(name, "v1", cls)


def compile_rule(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{where}: invalid regular expression {pattern!r}: {exc}") from None


def check_url(url: str, where: str) -> str:
    """Accept ``https`` URLs, and ``http`` only to a loopback host.

    :raises ConfigError: naming the field otherwise.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and host:
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return url
        raise ConfigError(f"{where}: {url!r} uses plain http to a non-loopback host; use https")
    raise ConfigError(f"{where}: {url!r} is not an http(s) URL")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def _fetch(url: str, data: bytes | None, headers: dict[str, str], timeout: float
           ) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers={"accept": "application/json", **headers})
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.read(_MAX_RESPONSE + 1)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read(_MAX_RESPONSE + 1)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise UpstreamError(f"cannot reach {_origin(url)}: {reason}") from None


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"  # never the query (it may hold secrets)


async def fetch_json(url: str, *, form: dict[str, str] | None = None,
                     headers: dict[str, str] | None = None, timeout: float = 10.0
                     ) -> tuple[int, Any]:
    """GET (or POST ``form``) and decode a JSON answer; returns ``(status, document)``.

    :raises UpstreamError: unreachable, too large or not JSON.
    """
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    hdrs = dict(headers or {})
    if data is not None:
        hdrs["content-type"] = "application/x-www-form-urlencoded"
    status, body = await asyncio.to_thread(_fetch, url, data, hdrs, timeout)
    if len(body) > _MAX_RESPONSE:
        raise UpstreamError(f"{_origin(url)} answered more than {_MAX_RESPONSE} bytes")
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        raise UpstreamError(f"{_origin(url)} answered {status} with a body that is not "
                            "JSON") from None


async def token_request(token_url: str, params: dict[str, str], client_id: str,
                        client_secret: str, auth_style: int = 0) -> dict[str, Any]:
    """POST to an OAuth2 token endpoint; returns the token document.

    :param auth_style: 0 tries HTTP Basic and then the form body, 1 puts the client
        credentials in the form body, 2 in an HTTP Basic header (golang.org/x/oauth2).
    :raises UpstreamError: when no usable access token comes back.
    """
    status, doc = 0, None
    for style in ((2, 1) if auth_style == 0 else (auth_style,)):
        form, headers = dict(params), {}
        if style == 2:
            pair = f"{urllib.parse.quote(client_id)}:{urllib.parse.quote(client_secret)}"
            headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form.update(client_id=client_id, client_secret=client_secret)
        status, doc = await fetch_json(token_url, form=form, headers=headers)
        if 200 <= status < 300 and isinstance(doc, dict) and doc.get("access_token"):
            return doc
    error = doc.get("error", "") if isinstance(doc, dict) else ""
    raise UpstreamError(f"token endpoint {_origin(token_url)} answered {status}"
                        f"{' (' + str(error)[:100] + ')' if error else ''} without an access token")
