"""api.security: what stands between a caller and the Dapr API, on HTTP and gRPC.

In order, for each HTTP request: the Host check (DNS-rebinding defence while
the API listens on loopback only), ``DAPR_API_TOKEN``, the Origin check and
CORS, then the ``httpPipeline`` middleware, then routing. API allow and deny
lists act at build time: a disallowed route is never registered (the request
falls through to the invoke fallback, itself removed when ``invoke`` is not
allowed) and a disallowed gRPC method answers UNIMPLEMENTED.

Token rules (security model 1.8, CVE-2023-37918): only exactly ``GET
/v1.0/healthz`` and ``GET /v1.0/healthz/outbound`` are exempt; the comparison
is constant-time on bytes; a repeated header (joined with ", ") or a repeated
gRPC metadata key is refused; the token is removed from the request before
anything else sees it, so it is never forwarded.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import re
from typing import TYPE_CHECKING, Any, Callable

from pydapr import hookimpl
from pydapr.registry import BuildingBlock, Route
from pydapr.server.grpc import SERVICE
from pydapr.server.request import Request, Response

from ._apiaccess import INVOKE_FALLBACK, APIAccess
from ._grpcauth import TokenInterceptor, token_guard, unavailable
from .middleware._pipeline import AppPipeline, Pipelines

if TYPE_CHECKING:
    from pydapr.runtime import Handler, Runtime

__all__ = ["APISecurity", "CORS", "loopback_only", "HEALTH_PATHS"]

log = logging.getLogger("pydapr.security")

#: exact paths (slashes trimmed) that GET may reach without the API token
HEALTH_PATHS = frozenset({"v1.0/healthz", "v1.0/healthz/outbound"})

_LOOPBACK_HOST = re.compile(r"(?i)(?:localhost|127\.0\.0\.1|\[::1\])(?::[0-9]{1,5})?")
#: Host values remembered per sidecar with their verdict; past this many, the rest are
#: checked every time (a client sending random Hosts cannot grow the memory)
_HOST_VERDICTS_MAX = 64
_BAD_HOST = Response.text(400, "invalid Host header: the Dapr API listens on loopback only, so "
                               "it answers only to localhost, 127.0.0.1 or [::1]")
_BAD_TOKEN = Response.text(401, "invalid api token")
_BAD_ORIGIN = Response.text(403, "cross-origin request refused: its Origin is not allowed by "
                                 "the sidecar's --allowed-origins")
_NOT_AVAILABLE = Response.text(404, "requested endpoint is not available")
_PREFLIGHT_METHODS = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+(?:\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$")


def loopback_only(addresses: list[str]) -> bool:
    """True when every API listen address is a loopback one."""
    for addr in addresses:
        host = addr.strip().strip("[]")
        if host.lower() == "localhost":
            continue
        try:
            if not ipaddress.ip_address(host).is_loopback:
                return False
        except ValueError:
            return False
    return bool(addresses)


class CORS:
    """``--allowed-origins``: empty (the default) allows no cross-origin caller at all.

    Stricter than daprd (whose default is ``*``): a request that carries an
    ``Origin`` which is neither allowed nor the sidecar's own origin is refused
    with 403, which stops cross-site request forgery from a browser page.
    """

    def __init__(self, allowed: str) -> None:
        origins = {o.strip().rstrip("/") for o in allowed.split(",") if o.strip()}
        self.any = "*" in origins
        self.origins = frozenset(origins - {"*"})

    def allows(self, origin: str) -> bool:
        return origin != "null" and (self.any or origin in self.origins)

    @staticmethod
    def same_origin(origin: str, host: str | None) -> bool:
        return host is not None and origin in (f"http://{host}", f"https://{host}")

    def preflight(self, req: Request, origin: str) -> Response:
        asked = req.headers.get("access-control-request-headers", "")
        headers = [("access-control-allow-origin", origin), ("vary", "Origin"),
                   ("access-control-allow-methods", _PREFLIGHT_METHODS),
                   ("access-control-max-age", "600")]
        if asked and _TOKEN_CHARS.match(asked):
            headers.append(("access-control-allow-headers", asked))
        return Response(204, b"", headers)


def _with_cors(resp: Response, origin: str) -> Response:
    """A copy with CORS headers (responses may be shared constants, never mutate them)."""
    extra = [("access-control-allow-origin", origin), ("vary", "Origin")]
    return Response(resp.status, resp.body, [*(resp.headers or ()), *extra], resp.content_type)


async def _await_with_cors(pending: Any, origin: str) -> Response:
    return _with_cors(await pending, origin)


class APISecurity:
    """The security layer; everything is decided once here, at boot."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        o = runtime.options
        token = o.api_token
        self.token: bytes | None = token.encode() if token else None
        self.loopback = loopback_only(o.dapr_listen_addresses)
        self.cors = CORS(o.allowed_origins)
        self.access = APIAccess.from_config(runtime.config)
        self.pipelines = Pipelines(runtime)
        self.routes_seen: list[Route] = []
        if self.access.has_http_rules:
            runtime.route_filter = self._route_filter
        if self.pipelines.app_handlers:
            runtime.app_pipeline = AppPipeline(self.pipelines)
        runtime.dispatch_wrappers.append(self.wrap)
        inner_wrap = runtime.stash.get("grpc_wrap")
        runtime.stash["grpc_wrap"] = lambda rpc, fn: self.grpc_wrap(
            rpc, inner_wrap(rpc, fn) if inner_wrap is not None else fn)
        if self.token is not None:
            runtime.stash.setdefault("grpc_interceptors", []).append(
                TokenInterceptor(self.token, skip_prefix=f"/{SERVICE}/"))

    def _route_filter(self, route: Route) -> bool:
        self.routes_seen.append(route)
        return self.access.http_route_allowed(route)

    async def start(self) -> None:
        await self.pipelines.build()  # fail the start-up now rather than on the first request

    async def stop(self) -> None:
        await self.pipelines.close()

    # -- HTTP -------------------------------------------------------------------------------

    def wrap(self, inner: Handler) -> Handler:
        """The dispatch wrapper; called once, after every building block is built."""
        if self.access.has_http_rules and not self.access.http_allows(INVOKE_FALLBACK):
            self.rt.fallback = lambda req: _NOT_AVAILABLE
        for rule in self.access.unmatched_http_rules(self.routes_seen):
            log.warning("%s: the http API rule {name: %s, version: %s} matches no route of this "
                        "sidecar", self.rt.config.source or "configuration", rule.name, rule.version)
        pipeline = self.pipelines.http_entry(_as_async(inner))
        after_checks: Callable[[Request], Any] = inner if pipeline is None else pipeline
        token, loopback, cors = self.token, self.loopback, self.cors
        host_verdicts: dict[str, bool] = {}  # the same few Host values arrive on every request

        def secure(req: Request) -> Any:
            headers = req.headers
            if loopback:
                host = headers.get("host")
                if host is not None:
                    ok = host_verdicts.get(host)
                    if ok is None:
                        ok = _LOOPBACK_HOST.fullmatch(host) is not None
                        if len(host_verdicts) < _HOST_VERDICTS_MAX:
                            host_verdicts[host] = ok
                    if not ok:
                        return _BAD_HOST
            supplied = headers.pop("dapr-api-token", None)  # never goes further, token or not
            if token is not None and (supplied is None or not hmac.compare_digest(
                    supplied.encode("latin-1"), token)) and not _is_health(req):
                return _BAD_TOKEN
            nxt = after_checks
            if pipeline is not None and _is_health(req):
                nxt = inner  # probes pass without the pipeline's credentials, as without the token
            origin = headers.get("origin")
            if origin is None:
                return nxt(req)
            if not cors.allows(origin):
                return nxt(req) if cors.same_origin(origin, headers.get("host")) else _BAD_ORIGIN
            if req.method == "OPTIONS" and "access-control-request-method" in headers:
                return cors.preflight(req, origin)
            result = nxt(req)
            if type(result) is Response:
                return _with_cors(result, origin)
            return _await_with_cors(result, origin)
        return secure

    # -- gRPC -------------------------------------------------------------------------------

    def grpc_wrap(self, rpc: str, fn: Callable) -> Callable:
        """``runtime.stash["grpc_wrap"]``: allow lists inside, the API token outside."""
        if not self.access.grpc_allows(rpc):
            fn = unavailable
        if self.token is not None:
            fn = token_guard(fn, self.token)
        return fn


def _is_health(req: Request) -> bool:
    """Exactly ``GET /v1.0/healthz`` or ``/v1.0/healthz/outbound`` (query ignored, outer
    slashes trimmed, as daprd compares)."""
    return req.method == "GET" and req.path.strip("/") in HEALTH_PATHS


def _as_async(inner: Handler) -> Callable[[Request], Any]:
    async def call(req: Request) -> Response:
        result = inner(req)
        if type(result) is Response:
            return result
        return await result  # type: ignore[misc]
    return call


@hookimpl
def pydapr_building_blocks() -> list[BuildingBlock]:
    return [BuildingBlock("api.security", APISecurity)]
