"""``bindings.http``: call an HTTP endpoint; the operation is the verb (``create`` is POST).

Request metadata ``path`` is appended to the configured ``url``; the other
metadata keys become request headers. The response status, reason and
headers come back as metadata (``statusCode``, ``status``, header names), the
body as data, capped at ``maxResponseBodySize``. HTTPS servers are verified
against the system trust store (plus ``caCertificate`` when given); unlike
the app channel, this binding talks to hosts outside the machine.
"""
from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from pydapr import hookimpl
from pydapr.errors import ComponentError, ConfigError
from pydapr.kinds.bindings import InvokeRequest, InvokeResponse, OutputBinding
from pydapr.metadata import Duration, meta
from pydapr.registry import ComponentType

__all__ = ["HTTPBinding", "HTTPBindingMetadata"]

_VERBS = {"create": "POST", "get": "GET", "post": "POST", "put": "PUT", "patch": "PATCH",
          "delete": "DELETE", "options": "OPTIONS"}
# never sent from request metadata: framing is the client's, the rest is sidecar-internal
_SKIP = {"path", "host", "content-length", "transfer-encoding", "connection", "dapr-api-token"}
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


@dataclass(frozen=True)
class HTTPBindingMetadata:
    url: str = meta(doc="base URL (http:// or https://)")
    max_response_body_size: int = meta(100 << 20, doc="largest response body read, in bytes")
    response_timeout: Duration = meta(Duration(60.0), doc="time allowed for one call")
    error_if_not_2xx: bool = meta(True, name="errorIfNot2XX",
                                  doc="a status outside 2xx fails the invocation")
    security_token: str = meta("", sensitive=True, doc="value of securityTokenHeader on each call")
    security_token_header: str = meta("", doc="header that carries securityToken")
    ca_certificate: str = meta("", name=("caCertificate", "caCert"), doc="extra trusted CA (PEM)")


class HTTPBinding(OutputBinding):
    metadata_type = HTTPBindingMetadata

    def __init__(self, info: Any) -> None:
        super().__init__(info)
        self.md: HTTPBindingMetadata | None = None
        self.pool: Any = None
        self.base_path = ""
        self.query = ""

    async def init(self, metadata: HTTPBindingMetadata) -> None:
        from pydapr.server.httpclient import HTTPClientPool
        parts = urlsplit(metadata.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"url {metadata.url!r} must be an http:// or https:// URL "
                              "with a host")
        if bool(metadata.security_token) != bool(metadata.security_token_header):
            raise ConfigError("securityToken and securityTokenHeader must be set together")
        self.md = metadata
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self.pool = HTTPClientPool(parts.hostname, port, max_body=metadata.max_response_body_size,
                                   timeout=metadata.response_timeout)
        if parts.scheme == "https":
            ctx = ssl.create_default_context()
            if metadata.ca_certificate:
                ctx.load_verify_locations(cadata=metadata.ca_certificate)
            self.pool.ssl = ctx  # verified, unlike the pool's app-channel default
        self.base_path = parts.path.rstrip("/")
        self.query = parts.query

    async def close(self) -> None:
        if self.pool is not None:
            self.pool.close()

    def operations(self) -> list[str]:
        return list(_VERBS)

    async def invoke(self, request: InvokeRequest) -> InvokeResponse | None:
        md = self.md
        path = next((v for k, v in request.metadata.items() if k.lower() == "path"), "")
        if any(c in path for c in "\r\n ") or "://" in path:
            raise ComponentError("metadata path must be a URL path, without spaces or a scheme")
        target = self.base_path + ("/" + path.lstrip("/") if path else "") or "/"
        if self.query:
            target += ("&" if "?" in target else "?") + self.query
        headers = [(k, v) for k, v in request.metadata.items()
                   if k.lower() not in _SKIP and _TOKEN.match(k)]
        if md.security_token_header:
            headers = [(k, v) for k, v in headers if k.lower() != md.security_token_header.lower()]
            headers.append((md.security_token_header, md.security_token))
        try:
            resp = await self.pool.request(_VERBS[request.operation], target, headers, request.data,
                                           md.response_timeout)
        except TimeoutError:
            raise ComponentError(f"no response within {md.response_timeout:g}s") from None
        except ConnectionError as exc:
            raise ComponentError(str(exc)) from None
        if md.error_if_not_2xx and not 200 <= resp.status < 300:
            raise ComponentError(f"received status code {resp.status}")
        meta_out: dict[str, str] = {}
        for k, v in resp.headers:
            meta_out[k] = f"{meta_out[k]}, {v}" if k in meta_out else v
        try:
            phrase = HTTPStatus(resp.status).phrase
        except ValueError:
            phrase = ""
        meta_out["statusCode"] = str(resp.status)
        meta_out["status"] = f"{resp.status} {phrase}".strip()
        return InvokeResponse(resp.body, meta_out, resp.header("content-type"))


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("bindings.http", "v1", HTTPBinding)]
