"""The two middleware pipelines: ``httpPipeline`` (into the Dapr API) and ``appHttpPipeline``
(from the sidecar into the app), built once at boot from ``middleware.http.*`` Components.

Handlers are checked when the building blocks are built (each must name a
loaded Component of that exact type whose plugin is installed), and
instantiated once components are up (their metadata may use ``secretKeyRef``).
Until then the pipeline fails closed: a request that should pass through it
answers 503. The chain itself is composed once; per request it is a plain
sequence of awaits.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from pydapr.errors import StartupError
from pydapr.kinds import ComponentInfo
from pydapr.server.appchannel import AppUnavailable
from pydapr.server.httpclient import ClientResponse
from pydapr.server.request import Request, Response

if TYPE_CHECKING:
    from pydapr.resources import PipelineHandler
    from pydapr.runtime import Runtime

__all__ = ["Pipelines", "AppPipeline", "Chain", "SIDECAR_AUTH_HEADERS"]

log = logging.getLogger("pydapr.middleware")

Chain = Callable[[Request], Awaitable[Response]]

_NOT_READY = Response.text(503, "the sidecar is starting: its middleware pipeline is not ready yet")
_BROKEN = Response.text(500, "the middleware pipeline failed to initialise; see the sidecar log")
#: runtime.stash key read by service invocation: lower-case header names that carry the
#: caller's credential to its own sidecar, never to be forwarded (a middleware class lists
#: its own in ``credential_headers``)
SIDECAR_AUTH_HEADERS = "invoke.sidecar_auth_headers"
_TIMEOUT: contextvars.ContextVar[float | None] = contextvars.ContextVar("app_call_timeout",
                                                                         default=None)


def compose(middlewares: list[Any], final: Chain) -> Chain:
    """``m1(req, m2(req, ... final))``, built once."""
    chain = final
    for mw in reversed(middlewares):
        chain = _link(mw, chain)
    return chain


def _link(mw: Any, nxt: Chain) -> Chain:
    async def step(req: Request) -> Response:
        return await mw(req, nxt)
    return step


class Pipelines:
    """Both pipelines of one sidecar; middleware instances are shared by name."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        cfg = runtime.config
        self.http_handlers = self._check(cfg.http_pipeline, "spec.httpPipeline")
        credentials = {name for h in self.http_handlers
                       for name in getattr(self._type(h).factory, "credential_headers", ())}
        if credentials:
            runtime.stash[SIDECAR_AUTH_HEADERS] = frozenset(
                {*runtime.stash.get(SIDECAR_AUTH_HEADERS, ()), *credentials})
        self.app_handlers = self._check(cfg.app_http_pipeline, "spec.appHttpPipeline")
        self.instances: dict[str, Any] = {}
        self.http: list[Any] | None = None  # built middleware, in order
        self.app: list[Any] | None = None
        self.failed = False
        self._lock = asyncio.Lock()

    def _check(self, handlers: list[PipelineHandler], field: str) -> list[PipelineHandler]:
        where = f"{self.rt.config.source or 'configuration'}: field {field}.handlers"
        for i, h in enumerate(handlers):
            here = f"{where}[{i}]"
            if not h.type.startswith("middleware.http."):
                raise StartupError(f"{here}: type {h.type!r} is not an HTTP middleware "
                                   "(middleware.http.<name>)")
            slot = self.rt.slots.get(h.name)
            if slot is None or slot.resource.type != h.type:
                raise StartupError(f"{here}: no loaded Component named {h.name!r} with type "
                                   f"{h.type!r} (is it in the resources path and in scope?)")
            self._type(h)
        return list(handlers)

    def _type(self, h: PipelineHandler) -> Any:
        version = h.version or self.rt.slots[h.name].resource.version
        return self.rt.registry.middleware_type(h.type, version)

    @property
    def configured(self) -> bool:
        return bool(self.http_handlers or self.app_handlers)

    async def build(self) -> None:
        """Instantiate and initialise every middleware once (idempotent).

        :raises StartupError: naming the middleware that failed.
        """
        async with self._lock:
            if self.http is not None or not self.configured:
                return
            try:
                http = [await self._instance(h) for h in self.http_handlers]
                app = [await self._instance(h) for h in self.app_handlers]
            except Exception:
                self.failed = True
                raise
            self.http, self.app = http, app

    async def _instance(self, h: PipelineHandler) -> Any:
        found = self.instances.get(h.name)
        if found is not None:
            return found
        res = self.rt.slots[h.name].resource
        mtype = self._type(h)
        try:
            props = await self.rt.resolve_metadata(res)
            info = ComponentInfo(res.name, res.type, res.version, self.rt.app_id,
                                 res.namespace or self.rt.namespace, props, res)
            mw = mtype.factory(info, props, self.rt)
            init = getattr(mw, "init", None)
            if init is not None:
                await init()
        except Exception as exc:
            text = str(exc) if isinstance(exc, StartupError) else f"{type(exc).__name__}: {exc}"
            raise StartupError(f"middleware {res.name} ({res.type}) failed to initialise: {text}"
                               ) from exc
        log.info("middleware loaded: %s (%s)", res.name, res.type)
        self.instances[h.name] = mw
        return mw

    async def close(self) -> None:
        for mw in self.instances.values():
            close = getattr(mw, "close", None)
            if close is not None:
                try:
                    await close()
                except Exception as exc:
                    log.warning("closing middleware %s: %s", type(mw).__name__, exc)
        self.instances.clear()

    async def ensure(self) -> Response | None:
        """Build on first use once components are up; a Response when requests must wait."""
        if self.http is not None:
            return None
        if self.failed:
            return _BROKEN
        if "components" in self.rt.unready_targets:
            return _NOT_READY
        try:
            await self.build()
        except StartupError as exc:
            log.error("%s", exc)
            return _BROKEN
        return None

    def http_entry(self, final: Chain) -> Chain | None:
        """The httpPipeline in front of ``final``, or None when none is configured."""
        if not self.http_handlers:
            return None
        chain: Chain | None = None

        async def entry(req: Request) -> Response:
            nonlocal chain
            if chain is None:
                waiting = await self.ensure()
                if waiting is not None:
                    return waiting
                chain = compose(self.http or [], final)
            return await chain(req)
        return entry


class AppPipeline:
    """``runtime.app_pipeline``: the appHttpPipeline around ``runtime.app_channel.call_http``.

    Same signature and result as :meth:`pydapr.server.appchannel.AppChannel.call_http`, so a
    caller writes ``(rt.app_pipeline or rt.app_channel).call_http(...)``. A middleware that
    answers by itself (429, 401...) comes back as that response, and the app is not called.
    """

    def __init__(self, pipelines: Pipelines) -> None:
        self.pipelines = pipelines
        self._chain: Chain | None = None

    async def call_http(self, method: str, target: str,
                        headers: list[tuple[str, str]] | None = None, body: bytes = b"",
                        timeout: float | None = None) -> ClientResponse:
        if self._chain is None:
            waiting = await self.pipelines.ensure()
            if waiting is not None:
                return _client_response(waiting)
            self._chain = compose(self.pipelines.app or [], self._send)
        path, _, query = target.partition("?")
        hdrs: dict[str, str] = {}
        for k, v in headers or ():
            key = k.lower()
            hdrs[key] = f"{hdrs[key]}, {v}" if key in hdrs else v
        token = _TIMEOUT.set(timeout)
        try:
            return _client_response(await self._chain(Request(method, path, query, hdrs, body)))
        finally:
            _TIMEOUT.reset(token)

    async def _send(self, req: Request) -> Response:
        channel = self.pipelines.rt.app_channel
        if channel is None:
            raise AppUnavailable("the sidecar has no app channel (--app-port is not set)")
        target = f"{req.path}?{req.query_string}" if req.query_string else req.path
        resp = await channel.call_http(
            req.method, target, list(req.headers.items()), req.body, _TIMEOUT.get())
        rest = [(k, v) for k, v in resp.headers if k.lower() not in ("content-type",
                                                                     "content-length")]
        return Response(resp.status, resp.body, rest, resp.header("content-type") or None)


def _client_response(resp: Response) -> ClientResponse:
    headers = list(resp.headers or ())
    if resp.content_type:
        headers.append(("content-type", resp.content_type))
    return ClientResponse(resp.status, headers, resp.body)
