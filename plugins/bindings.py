"""api.bindings: output bindings (spec 4.1) and input-binding delivery to the app (spec 4.2).

Output: ``POST|PUT /v1.0/bindings/{name}`` and gRPC ``InvokeBinding``. The
request is checked whole (JSON shape, string metadata, an operation the
binding lists) before the component runs; only trace context
(``traceparent``, ``tracestate``, ``baggage``) is copied from the caller's
headers into the binding metadata, never credentials such as
``dapr-api-token``, because metadata may leave the sidecar (the HTTP binding
turns it into request headers).

Input: after the app's port is open, each input binding asks the app whether
it wants the events (``OPTIONS /<route>`` answered 2xx or 405 for HTTP apps,
``ListInputBindings`` for gRPC apps), then delivers them through the app
channel, which adds ``APP_API_TOKEN``.
"""
from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any

import orjson

from pydapr import hookimpl
from pydapr.errors import APIError
from pydapr.kinds.bindings import (BindingEvent, BindingHandler, InputBinding, InvokeRequest,
                                   InvokeResponse, OutputBinding)
from pydapr.registry import BuildingBlock, Route
from pydapr.server.request import JSON, NO_CONTENT, Request, Response

if TYPE_CHECKING:
    from pydapr.runtime import Runtime

__all__ = ["BindingsAPI", "directions"]

log = logging.getLogger("pydapr.bindings")

_TRACE_KEYS = ("traceparent", "tracestate", "baggage")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_RESERVED_HEADERS = {"host", "content-length", "content-type", "transfer-encoding", "connection",
                     "dapr-api-token"}


def directions(props: dict[str, str]) -> set[str]:
    """The component's ``direction`` metadata (``input``, ``output`` or both; absent: both)."""
    raw = next((v for k, v in props.items() if k.lower() == "direction"), "")
    found = {d.strip().lower() for d in raw.split(",") if d.strip()}
    return found or {"input", "output"}


def _route(props: dict[str, str], name: str) -> str:
    route = next((v for k, v in props.items() if k.lower() == "route"), "") or name
    return "/" + route.lstrip("/")


class BindingsAPI:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.reading: list[str] = []

    def routes(self) -> list[Route]:
        return [Route(("POST", "PUT"), "/v1.0/bindings/{name}", self.http_invoke, "bindings")]

    def grpc_methods(self) -> dict[str, Any]:
        return {"InvokeBinding": self.grpc_invoke}

    # -- output -----------------------------------------------------------------------------

    async def invoke(self, name: str, request: InvokeRequest) -> InvokeResponse | None:
        def fail(why: str) -> APIError:
            return APIError("ERR_INVOKE_OUTPUT_BINDING",
                            f"error invoking output binding {name}: {why}")
        if not request.operation:
            raise fail("operation field is missing from request")
        comp = self.rt.component("bindings", name)
        if not isinstance(comp, OutputBinding) or "output" not in directions(comp.info.properties):
            raise fail(f"couldn't find output binding {name}")
        ops = comp.operations()
        if request.operation not in ops:
            raise fail(f"binding {name} does not support operation {request.operation}. "
                       f"supported operations: {' '.join(ops)}")
        try:
            return await comp.invoke(request)
        except APIError:
            raise
        except Exception as exc:
            raise fail(str(exc) or type(exc).__name__) from None

    async def http_invoke(self, req: Request) -> Response:
        body = req.json() if req.body.strip() else None
        if not isinstance(body, dict):
            raise APIError("ERR_MALFORMED_REQUEST", "the request body must be a JSON object with "
                           "data, metadata and operation")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise APIError("ERR_MALFORMED_REQUEST", "metadata must be an object of string values")
        operation = body.get("operation") or ""
        if not isinstance(operation, str):
            raise APIError("ERR_MALFORMED_REQUEST", "operation must be a string")
        data = body.get("data")
        try:
            raw = b"" if data is None else orjson.dumps(data)
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise APIError("ERR_MALFORMED_REQUEST_DATA", f"data cannot be encoded: {exc}") from None
        md = {**req.request_metadata(), **metadata}
        for key in _TRACE_KEYS:
            if key in req.headers:
                md[key] = req.headers[key]
        resp = await self.invoke(req.params["name"], InvokeRequest(operation, raw, md))
        if resp is None:
            return NO_CONTENT
        headers = [(f"metadata.{k}", v) for k, v in resp.metadata.items()]
        return Response(200, resp.data, headers, resp.content_type or JSON)

    async def grpc_invoke(self, request: Any, context: Any) -> Any:
        from dapr.proto.runtime.v1 import binding_pb2 as pb
        md = dict(request.metadata)
        for key, value in context.invocation_metadata() or ():
            if key in _TRACE_KEYS and isinstance(value, str):
                md[key] = value
        resp = await self.invoke(request.name, InvokeRequest(request.operation, request.data, md))
        if resp is None:
            return pb.InvokeBindingResponse()
        return pb.InvokeBindingResponse(data=resp.data, metadata=resp.metadata)

    # -- input ------------------------------------------------------------------------------

    async def start(self) -> None:
        inputs = {n: c for n, c in self.rt.components_of("bindings").items()
                  if isinstance(c, InputBinding) and "input" in directions(c.info.properties)}
        if not inputs:
            return
        channel = self.rt.app_channel
        if channel is None:
            log.info("input bindings %s are not read: the sidecar has no app channel (--app-port)",
                     ", ".join(sorted(inputs)))
            return
        wanted = await self._grpc_wanted() if channel.is_grpc else None
        for name, comp in sorted(inputs.items()):
            route = _route(comp.info.properties, name)
            if wanted is not None:
                ok = name in wanted
                handler = self._grpc_handler(name)
            else:
                ok = await self._http_wants(route)
                handler = self._http_handler(route)
            if not ok:
                log.info("input binding %s: the app does not handle it (route %s)", name, route)
                continue
            try:
                await comp.read(handler)
            except Exception as exc:
                log.error("input binding %s cannot start reading: %s", name, exc)
                continue
            self.reading.append(name)
            log.info("input binding %s: delivering to the app (route %s)", name, route)

    async def _http_wants(self, route: str) -> bool:
        try:
            resp = await self.rt.app_channel.call_http("OPTIONS", route, timeout=10.0)
        except Exception as exc:
            log.warning("probing the app for %s failed: %s", route, exc)
            return False
        return 200 <= resp.status < 300 or resp.status == 405

    async def _grpc_wanted(self) -> set[str]:
        from google.protobuf import empty_pb2
        channel = self.rt.app_channel
        try:
            resp = await channel.stub().ListInputBindings(
                empty_pb2.Empty(), metadata=channel.grpc_metadata(), timeout=10.0)
        except Exception as exc:
            log.warning("ListInputBindings on the app failed: %s", exc)
            return set()
        return set(resp.bindings)

    def _http_handler(self, route: str) -> BindingHandler:
        channel = self.rt.app_channel

        async def deliver(event: BindingEvent) -> bytes:
            headers = [(k, v) for k, v in event.metadata.items()
                       if _TOKEN.match(k) and k.lower() not in _RESERVED_HEADERS]
            headers.append(("content-type", event.content_type or JSON))
            resp = await channel.call_http("POST", route, headers, event.data)
            if not 200 <= resp.status < 300:
                raise ConnectionError(f"the app answered {resp.status} to the binding event on "
                                      f"{route}: {resp.body[:200]!r}")
            return resp.body
        return deliver

    def _grpc_handler(self, name: str) -> BindingHandler:
        channel = self.rt.app_channel

        async def deliver(event: BindingEvent) -> bytes:
            from dapr.proto.runtime.v1 import appcallback_pb2 as cb
            resp = await channel.stub().OnBindingEvent(
                cb.BindingEventRequest(name=name, data=event.data, metadata=event.metadata),
                metadata=channel.grpc_metadata())
            if resp.to:
                await self._fan_out(name, list(resp.to), resp.data, parallel=resp.concurrency == 1)
            if resp.store_name or len(resp.states):
                log.warning("input binding %s: the app's reply asks to save state; that reply "
                            "form is not supported, the states were not saved", name)
            return resp.data
        return deliver

    async def _fan_out(self, source: str, targets: list[str], data: bytes, parallel: bool) -> None:
        """The gRPC reply's ``to``: send ``data`` to those output bindings (operation create)."""
        async def one(target: str) -> None:
            try:
                await self.invoke(target, InvokeRequest("create", data, {}))
            except APIError as err:
                log.warning("input binding %s: sending the reply to %s failed: %s", source, target,
                            err.message)
        if parallel:
            await asyncio.gather(*(one(t) for t in targets))
        else:
            for t in targets:
                await one(t)


@hookimpl
def pydapr_building_blocks() -> list[BuildingBlock]:
    return [BuildingBlock("api.bindings", BindingsAPI)]
