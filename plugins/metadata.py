"""api.metadata: health, metadata and shutdown (spec 7.3 to 7.5), over HTTP and gRPC.

Other building blocks add to the metadata document through an optional
``describe() -> dict`` method (pub/sub adds ``subscriptions``, actors add
``actors``...).
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from pydapr import DAPR_RUNTIME_VERSION, __version__, hookimpl
from pydapr.errors import APIError
from pydapr.registry import BuildingBlock, Route
from pydapr.server.request import NO_CONTENT, Request, Response

if TYPE_CHECKING:
    from pydapr.runtime import Runtime

__all__ = ["MetadataAPI"]


class MetadataAPI:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def routes(self) -> list[Route]:
        return [
            Route(("GET",), "/v1.0/healthz", self.healthz, "healthz"),
            Route(("GET",), "/v1.0/healthz/outbound", self.healthz_outbound, "healthz"),
            Route(("GET",), "/v1.0/metadata", self.get_metadata, "metadata"),
            Route(("PUT",), "/v1.0/metadata/{key}", self.put_metadata, "metadata"),
            Route(("POST",), "/v1.0/shutdown", self.shutdown, "shutdown"),
        ]

    def grpc_methods(self) -> dict[str, Any]:
        return {"GetMetadata": self.grpc_get_metadata, "SetMetadata": self.grpc_set_metadata,
                "Shutdown": self.grpc_shutdown}

    # -- health ---------------------------------------------------------------------------

    def healthz(self, req: Request) -> Response:
        appid = req.query_first("appid") if req.query_string else ""
        if appid and appid != self.rt.app_id:
            raise APIError("ERR_HEALTH_APPID_NOT_MATCH", "dapr app-id does not match")
        if self.rt.ready:
            return NO_CONTENT
        raise APIError("ERR_HEALTH_NOT_READY", f"dapr is not ready: {self._unready()}")

    def healthz_outbound(self, req: Request) -> Response:
        if self.rt.outbound_ready:
            return NO_CONTENT
        raise APIError("ERR_OUTBOUND_HEALTH_NOT_READY", f"dapr is not ready: {self._unready()}")

    def _unready(self) -> list[str]:
        targets = set(self.rt.unready_targets)
        targets.update(f"component {n}: {s.status}" for n, s in self.rt.slots.items()
                       if s.status != "READY")
        return sorted(targets) or ["app"]

    # -- metadata -------------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        rt, o = self.rt, self.rt.options
        doc: dict[str, Any] = {"id": rt.app_id, "runtimeVersion": DAPR_RUNTIME_VERSION,
                               "enabledFeatures": sorted(n for n, on in rt.config.features.items() if on),
                               "extended": {**rt.extended_metadata,
                                            "daprRuntimeVersion": DAPR_RUNTIME_VERSION,
                                            "pydaprVersion": __version__}}
        comps = []
        for name, slot in rt.slots.items():
            res = slot.resource
            caps = sorted(str(getattr(f, "value", f)) for f in
                          getattr(slot.instance, "features", ()) or ())
            entry = {"name": name, "type": res.type, "version": res.version}
            if caps:
                entry["capabilities"] = caps
            comps.append(entry)
        if comps:
            doc["components"] = comps
        if rt.resources.http_endpoints:
            doc["httpEndpoints"] = [{"name": e.name} for e in rt.resources.http_endpoints]
        if o.app_port:
            props: dict[str, Any] = {"port": o.app_port, "protocol": o.app_protocol,
                                     "channelAddress": o.app_channel_address}
            if o.app_max_concurrency > 0:
                props["maxConcurrency"] = o.app_max_concurrency
            if o.enable_app_health_check:
                props["health"] = {"healthCheckPath": o.app_health_check_path,
                                   "healthProbeInterval": f"{o.app_health_probe_interval:g}s",
                                   "healthProbeTimeout": f"{o.app_health_probe_timeout * 1000:g}ms",
                                   "healthThreshold": o.app_health_threshold}
            doc["appConnectionProperties"] = props
        for block in rt.blocks.values():
            describe = getattr(block, "describe", None)
            if describe is not None and block is not self:
                doc.update(describe())
        return doc

    def get_metadata(self, req: Request) -> Response:
        return Response.json(self.document())

    def put_metadata(self, req: Request) -> Response:
        self.rt.extended_metadata[req.params["key"]] = req.body.decode("utf-8", "replace")
        return NO_CONTENT

    def shutdown(self, req: Request) -> Response:
        force = req.headers.get("dapr-force-shutdown", "").lower() == "true"
        self._schedule_shutdown(force)
        return NO_CONTENT

    def _schedule_shutdown(self, force: bool) -> None:
        loop = asyncio.get_running_loop()
        if force:
            import os
            loop.call_later(0.1, os._exit, 1)
        else:
            loop.call_soon(self.rt.request_shutdown, 0)

    # -- gRPC -------------------------------------------------------------------------------

    async def grpc_get_metadata(self, request: Any, context: Any) -> Any:
        from dapr.proto.runtime.v1 import metadata_pb2 as pb
        doc = self.document()
        resp = pb.GetMetadataResponse(id=doc["id"], runtime_version=doc["runtimeVersion"],
                                      enabled_features=doc["enabledFeatures"],
                                      extended_metadata=doc["extended"])
        for c in doc.get("components", ()):
            resp.registered_components.add(name=c["name"], type=c["type"], version=c["version"],
                                           capabilities=c.get("capabilities", []))
        for e in doc.get("httpEndpoints", ()):
            resp.http_endpoints.add(name=e["name"])
        for a in doc.get("actors", ()):
            resp.active_actors_count.add(type=a["type"], count=a["count"])
        for s in doc.get("subscriptions", ()):
            sub = resp.subscriptions.add(pubsub_name=s["pubsubname"], topic=s["topic"],
                                         metadata=s.get("metadata", {}),
                                         dead_letter_topic=s.get("deadLetterTopic", ""))
            for r in s.get("rules", ()):
                sub.rules.rules.add(match=r.get("match", ""), path=r.get("path", ""))
        props = doc.get("appConnectionProperties")
        if props:
            acp = resp.app_connection_properties
            acp.port, acp.protocol = props["port"], props["protocol"]
            acp.channel_address = props["channelAddress"]
            acp.max_concurrency = props.get("maxConcurrency", 0)
        return resp

    async def grpc_set_metadata(self, request: Any, context: Any) -> Any:
        from google.protobuf import empty_pb2
        self.rt.extended_metadata[request.key] = request.value
        return empty_pb2.Empty()

    async def grpc_shutdown(self, request: Any, context: Any) -> Any:
        from google.protobuf import empty_pb2
        force = any(k == "dapr-force-shutdown" and v.lower() == "true"
                    for k, v in context.invocation_metadata() or ())
        self._schedule_shutdown(force)
        return empty_pb2.Empty()


@hookimpl
def pydapr_building_blocks() -> list[BuildingBlock]:
    return [BuildingBlock("api.metadata", MetadataAPI)]
