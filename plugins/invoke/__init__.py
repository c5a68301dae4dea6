"""api.invoke: service invocation (spec 1, 9.5, 10; security spec 1.3, 1.4, 1.9).

HTTP: ``<any verb> /v1.0/invoke/{app}/method/{method*}``, and the header form
(``dapr-app-id: <id>`` or ``Authorization: Basic dapr-app-id:<id>`` on any
unmatched path, through ``runtime.fallback``). gRPC: ``InvokeService``.
Targets: an app id (``app`` or ``app.namespace``), an ``HTTPEndpoint`` name,
or a full URL whose origin an ``HTTPEndpoint`` declares.

The pieces: :mod:`.method` canonicalises the method once at this edge,
:mod:`.caller` sends the call over the proxy loop (:mod:`pydapr.proxy`) to
the callee's sidecar, whose :mod:`.callee` applies the access-control policy
(:mod:`.acl`) to the identity of the TLS session and calls its app through
``runtime.app_pipeline`` (appHttpPipeline) or the app channel. Invalid
``spec.accessControl`` or ``spec.nameResolution`` stops start-up.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Awaitable

from pydapr import hookimpl
from pydapr.errors import APIError
from pydapr.kinds.nameresolution import Registration, advertised_host
from pydapr.frame import IMPLEMENTATION as FRAME_IMPL
from pydapr.proxy import ProxyClient, ProxyServer
from pydapr.proxy_tls import transport_security
from pydapr.registry import BuildingBlock, Route
from pydapr.resiliency import Resiliency
from pydapr.server.request import Request, Response

from .acl import DEFAULT_TRUST_DOMAIN, parse_access_control
from .callee import Callee
from .caller import Caller
from .external import ExternalTargets
from .grpc_api import GrpcInvoke
from .grpc_proxy import GrpcProxy
from .headers import SIDECAR_AUTH_HEADERS, is_app_id_basic_auth, outbound_headers
from .method import canonical_http_method
from .resolution import build_resolver, resolver_spec
from .wire import Call, Result

if TYPE_CHECKING:
    from pydapr.runtime import Runtime

__all__ = ["InvokeAPI", "split_target"]

log = logging.getLogger("pydapr.invoke")

_URL_FORM = "/v1.0/invoke/http"


def split_target(target: str, own_namespace: str) -> tuple[str, str]:
    """``app`` -> (app, own namespace); ``app.ns`` -> (app, ns); more dots: 400."""
    app, dot, ns = target.partition(".")
    if not app or (dot and (not ns or "." in ns)):
        raise APIError("ERR_DIRECT_INVOKE", f"invalid app id {target!r}: use <app-id> or "
                       "<app-id>.<namespace>", http_status=400, grpc_code="INVALID_ARGUMENT")
    return app, (ns or own_namespace)


class InvokeAPI:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        o = runtime.options
        self.max_body = o.max_body_size
        cfg = runtime.config
        self.grpc_app = o.app_protocol in ("grpc", "grpcs")
        ac = cfg.section("accessControl")
        self.acl = parse_access_control(ac, self.grpc_app, cfg.source or "configuration")
        self.trust_domain = str(ac.get("trustDomain") or DEFAULT_TRUST_DOMAIN)
        self.resolver_spec = resolver_spec(runtime)
        self.external = ExternalTargets(runtime, self.max_body)
        self.resiliency = runtime.stash.get("resiliency") or Resiliency(runtime.resources.resiliencies)
        self.callee = Callee(runtime, self.acl, self.max_body)
        self.caller: Caller | None = None
        self.server: ProxyServer | None = None
        self.client: ProxyClient | None = None
        self.resolver: Any = None
        self._ready = asyncio.Event()
        self._unsubscribe: Any = None
        self._prior_fallback = runtime.fallback
        runtime.fallback = self.fallback
        self.grpc = GrpcInvoke(self)
        runtime.stash.setdefault("grpc_interceptors", []).append(GrpcProxy(self))

    # -- lifecycle ------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [Route(("*",), "/v1.0/invoke/{app}/method/{method*}", self.invoke_http, "invoke")]

    def grpc_methods(self) -> dict[str, Any]:
        return {"InvokeService": self.grpc.invoke_service}

    async def start(self) -> None:
        rt, o = self.rt, self.rt.options
        security = transport_security(rt)
        if security.enabled:
            self.trust_domain = rt.identity.spiffe_id.trust_domain
        host = o.dapr_internal_grpc_listen_address or "127.0.0.1"
        self.server = ProxyServer(self.callee.serve, security)
        port = await self.server.start(host, o.dapr_internal_grpc_port)
        o.dapr_internal_grpc_port = port
        self.resolver = await build_resolver(rt, self.resolver_spec)
        await self.resolver.register(Registration(rt.app_id, rt.namespace, advertised_host(host), port,
                                                  self.trust_domain))
        await self.external.start()
        self.client = ProxyClient(security)
        if security.enabled:
            client = self.client
            self._unsubscribe = rt.identity.subscribe(lambda _svid: client.refresh())
        self.caller = Caller(rt, self.client, self.resolver, self.callee, self.resiliency,
                             self.trust_domain, security.enabled, self.max_body)
        self._ready.set()
        log.info("service invocation: proxy port %d (%s), frame codec: %s, name resolution %s",
                 port, "mTLS" if security.enabled else "plain TCP, callers unverified",
                 FRAME_IMPL, self.resolver_spec.type_name)

    async def stop(self) -> None:
        if self.resolver is not None:  # first stop being found, then refuse new streams
            await self.resolver.close()
        if self.server is not None:
            await self.server.stop(1.0)
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.client is not None:
            st = self.client.stats
            log.info("proxy client: %d connection(s) opened for %d request(s)", st["connections"],
                     st["streams"])
            self.client.close()
        self.external.close()
        await self.callee.close()

    async def ready_caller(self) -> Caller:
        if self.caller is None:
            try:
                await asyncio.wait_for(self._ready.wait(), 30.0)
            except asyncio.TimeoutError:
                raise APIError("ERR_DIRECT_INVOKE", "invoke API is not ready") from None
        assert self.caller is not None
        return self.caller

    # -- HTTP --------------------------------------------------------------------------------------

    def invoke_http(self, req: Request) -> Awaitable[Response]:
        params = req.params
        return self._http(req, params["app"], params["method"])

    def fallback(self, req: Request) -> Any:
        headers = req.headers
        target = headers.get("dapr-app-id")
        raw = req.path
        if target is None:
            auth = headers.get("authorization", "")
            if auth and is_app_id_basic_auth(auth):
                import base64
                target = base64.b64decode(auth.split()[-1]).decode("utf-8", "replace")[12:]
            elif raw.startswith(_URL_FORM):
                rest = raw[len("/v1.0/invoke/"):]
                target, sep, raw = rest.partition("/method/")
                if not sep:
                    return self._prior_fallback(req)
            else:
                return self._prior_fallback(req)
        return self._http(req, target.strip(), raw)

    async def _http(self, req: Request, target: str, raw_method: str) -> Response:
        method = canonical_http_method(raw_method)
        if req.method == "CONNECT":
            raise APIError("ERR_DIRECT_INVOKE", "CONNECT is not supported", http_status=405,
                           grpc_code="UNIMPLEMENTED")
        drop = self.rt.stash.get(SIDECAR_AUTH_HEADERS, ())
        headers = outbound_headers(req.headers.items(), drop)
        caller = await self.ready_caller()
        found = self.external.find(target)
        if found is not None:
            ep, prefix = found
            res = await self.external.call(ep, prefix, method, req.method, req.query_string,
                                           headers, req.body)
        else:
            app, ns = split_target(target, self.rt.namespace)
            res = await caller.invoke(Call(app, ns, method, req.method, req.query_string, headers,
                                           req.body, self.rt.app_id, self.rt.namespace))
        return to_response(res)


def to_response(res: Result) -> Response:
    """The HTTP answer to the calling app: the callee's status, headers and body, as they were."""
    if res.error is not None:
        raise res.error
    ctype = None
    headers = []
    for k, v in res.headers:
        if k == "content-type" and ctype is None:
            ctype = v
        else:
            headers.append((k, v))
    return Response(res.status, res.body, headers, ctype)


@hookimpl
def pydapr_building_blocks() -> list[BuildingBlock]:
    return [BuildingBlock("api.invoke", InvokeAPI)]
