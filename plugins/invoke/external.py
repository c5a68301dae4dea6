"""Non-Dapr targets: ``HTTPEndpoint`` resources and full ``http(s)://`` URLs (spec 9.5).

A call to ``/v1.0/invoke/<endpoint>/method/<path>`` goes to the endpoint's
``baseUrl`` + ``/`` + path, with the endpoint's headers (values or secrets)
set on top. A full URL as the target is accepted only when its origin
(scheme, host, port) is the origin of an ``HTTPEndpoint`` in scope (security
decision 15): the sidecar is never an open proxy, and it follows no redirect.
HTTPS endpoints are verified against the system roots, or ``clientTLS.rootCA``
when given; ``clientTLS.certificate``/``privateKey`` present a client
certificate.
"""
from __future__ import annotations

import os
import ssl
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from pydapr.errors import APIError, StartupError
from pydapr.server.httpclient import HTTPClientError, HTTPClientPool

from .headers import response_headers
from .method import dispatch_path
from .wire import Result

if TYPE_CHECKING:
    from pydapr.resources import HTTPEndpoint
    from pydapr.runtime import Runtime

__all__ = ["ExternalTargets", "Endpoint", "is_url", "origin_of"]


def is_url(target: str) -> bool:
    if target[:4] != "http" and target[:4].lower() != "http":
        return False
    low = target[:8].lower()
    return low.startswith("http://") or low.startswith("https://") or \
        low.startswith("http%3a") or low.startswith("https%3a")


def origin_of(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


@dataclass
class Endpoint:
    name: str
    base_url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    pool: HTTPClientPool | None = None

    @property
    def origin(self) -> tuple[str, str, int]:
        return origin_of(self.base_url)


class ExternalTargets:
    def __init__(self, runtime: Runtime, max_body: int) -> None:
        self.rt = runtime
        self.max_body = max_body
        self.endpoints: dict[str, Endpoint] = {}
        for res in runtime.resources.http_endpoints:
            scheme, host, _ = origin_of(res.base_url)
            if scheme not in ("http", "https") or not host:
                raise StartupError(f"{res.source}: field spec.baseUrl: {res.base_url!r} is not an "
                                   "http(s) URL")
            self.endpoints[res.name] = Endpoint(res.name, res.base_url.rstrip("/"))

    async def start(self) -> None:
        resources = {r.name: r for r in self.rt.resources.http_endpoints}
        for ep in self.endpoints.values():
            res = resources[ep.name]
            ep.headers = [(k.lower(), v) for k, v in await self._values(res, res.headers)]
            scheme, host, port = ep.origin
            ep.pool = HTTPClientPool(host, port, use_tls=scheme == "https", max_body=self.max_body)
            if scheme == "https":
                ep.pool.ssl = await self._tls(res)

    async def _values(self, res: HTTPEndpoint, items: list) -> list[tuple[str, str]]:
        out = []
        for item in items:
            if item.secret_ref is not None:
                if not res.secret_store or self.rt.secret_resolver is None:
                    raise StartupError(f"{res.source}: HTTPEndpoint {res.name}: secretKeyRef needs "
                                       "auth.secretStore naming a loaded secret store")
                value = await self.rt.secret_resolver(res.secret_store, *item.secret_ref,
                                                      res.namespace or self.rt.namespace)
            else:
                value = item.value or ""
            out.append((item.name, value))
        return out

    async def _tls(self, res: HTTPEndpoint) -> ssl.SSLContext:
        tls = res.client_tls or {}

        async def value(key: str) -> str:
            node = tls.get(key) or {}
            if not isinstance(node, dict):
                return str(node)
            if node.get("secretKeyRef"):
                ref = node["secretKeyRef"]
                if not res.secret_store or self.rt.secret_resolver is None:
                    raise StartupError(f"{res.source}: clientTLS.{key}: secretKeyRef needs "
                                       "auth.secretStore")
                return await self.rt.secret_resolver(res.secret_store, ref.get("name", ""),
                                                     ref.get("key") or ref.get("name", ""),
                                                     res.namespace or self.rt.namespace)
            return str(node.get("value") or "")

        ctx = ssl.create_default_context()
        root = await value("rootCA")
        if root:
            ctx = ssl.create_default_context(cadata=root)
        cert, key = await value("certificate"), await value("privateKey")
        if cert and key:
            _load_chain(ctx, cert, key)
        return ctx

    def find(self, target: str) -> tuple[Endpoint, str] | None:
        """The endpoint for a target name or URL, and the URL path prefix to use."""
        ep = self.endpoints.get(target)
        if ep is not None:
            return ep, urlsplit(ep.base_url).path.rstrip("/")
        if not is_url(target):
            return None
        url = unquote(target) if "%" in target[:8] else target
        origin = origin_of(url)
        for ep in self.endpoints.values():
            if ep.origin == origin:
                return ep, urlsplit(url).path.rstrip("/")
        raise APIError("ERR_DIRECT_INVOKE",
                       f"calls to {origin[0]}://{origin[1]}:{origin[2]} are refused: the sidecar "
                       "is not an open proxy; declare an HTTPEndpoint resource for that origin",
                       http_status=403, grpc_code="PERMISSION_DENIED")

    async def call(self, ep: Endpoint, prefix: str, method: str, verb: str, query: str,
                   headers: list[tuple[str, str]], body: bytes) -> Result:
        target = prefix + dispatch_path(method) + (f"?{query}" if query else "")
        own = {k for k, _ in ep.headers}
        sent = [(k, v) for k, v in headers if k not in own] + ep.headers
        assert ep.pool is not None
        try:
            resp = await ep.pool.request(verb or "POST", target, sent, body)
        except HTTPClientError as exc:
            raise APIError("ERR_DIRECT_INVOKE", f"failed to invoke, id: {ep.name}, err: {exc}",
                           http_status=500, grpc_code="UNAVAILABLE") from None
        return Result(resp.status, response_headers(resp.headers), resp.body)

    def close(self) -> None:
        for ep in self.endpoints.values():
            if ep.pool is not None:
                ep.pool.close()


def _load_chain(ctx: ssl.SSLContext, cert: str, key: str) -> None:
    """``load_cert_chain`` reads files only: write both to a private file, load, delete."""
    fd, path = tempfile.mkstemp(prefix="pydapr-ep-", suffix=".pem")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(cert.strip() + "\n" + key.strip() + "\n")
        ctx.load_cert_chain(path)
    finally:
        os.unlink(path)
