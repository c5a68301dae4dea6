"""api.configuration: read and watch configuration stores (spec 7.1), over HTTP and gRPC.

Subscriptions have ids made here (uuid4) and live until unsubscribed, until
their gRPC stream ends, or until the sidecar stops. HTTP subscribers get each
change POSTed to ``/configuration/<store>/<key>`` through the app channel;
gRPC subscribers read it from their stream, whose first message carries only
the id (the Python SDK waits for it).
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any, AsyncIterator
from urllib.parse import quote

import orjson

from pydapr import hookimpl
from pydapr.errors import APIError
from pydapr.kinds.configuration import ConfigurationItem, ConfigurationStore, UpdateHandler
from pydapr.registry import BuildingBlock, Route
from pydapr.server.request import NO_CONTENT, Request, Response

if TYPE_CHECKING:
    from pydapr.runtime import Runtime

__all__ = ["ConfigurationAPI", "MAX_SUBSCRIPTIONS"]

log = logging.getLogger("pydapr.configuration")

#: active subscriptions one sidecar accepts (each holds a backend connection or listener)
MAX_SUBSCRIPTIONS = 1024
_END = object()


def _event(sub_id: str, items: dict[str, ConfigurationItem]) -> bytes:
    return orjson.dumps({"id": sub_id, "items": {k: v.to_json() for k, v in items.items()}})


class ConfigurationAPI:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.subs: dict[str, str] = {}  # subscription id -> store name
        self.streams: dict[str, asyncio.Queue] = {}  # gRPC subscriptions: id -> update queue

    def routes(self) -> list[Route]:
        out = []
        for version in ("v1.0", "v1.0-alpha1"):
            base = f"/{version}/configuration/{{store}}"
            out += [Route(("GET",), base, self.http_get, "configuration"),
                    Route(("GET",), base + "/subscribe", self.http_subscribe, "configuration"),
                    Route(("GET",), base + "/{id}/unsubscribe", self.http_unsubscribe,
                          "configuration")]
        return out

    def grpc_methods(self) -> dict[str, Any]:
        return {"GetConfiguration": self.grpc_get, "GetConfigurationAlpha1": self.grpc_get,
                "SubscribeConfiguration": self.grpc_subscribe,
                "SubscribeConfigurationAlpha1": self.grpc_subscribe,
                "UnsubscribeConfiguration": self.grpc_unsubscribe,
                "UnsubscribeConfigurationAlpha1": self.grpc_unsubscribe}

    async def stop(self) -> None:
        for sub_id in list(self.subs):
            try:
                await self.unsubscribe(self.subs[sub_id], sub_id)
            except APIError:
                pass

    # -- shared -----------------------------------------------------------------------------

    def _store(self, name: str) -> ConfigurationStore:
        if not self.rt.has_kind("configuration"):
            raise APIError("ERR_CONFIGURATION_STORE_NOT_CONFIGURED",
                           "error configuration stores not configured")
        store = self.rt.component("configuration", name)
        if not isinstance(store, ConfigurationStore):
            raise APIError("ERR_CONFIGURATION_STORE_NOT_FOUND",
                           f"error configuration store {name} not found")
        return store

    async def get(self, name: str, keys: list[str], metadata: dict[str, str]
                  ) -> dict[str, ConfigurationItem]:
        store = self._store(name)
        try:
            return await store.get(keys, metadata)
        except Exception as exc:
            raise APIError("ERR_CONFIGURATION_GET",
                           f"failed to get {keys} from Configuration store {name}: {exc}") from None

    async def subscribe(self, name: str, keys: list[str], metadata: dict[str, str],
                        handler: UpdateHandler, sub_id: str = "") -> str:
        store = self._store(name)
        if len(self.subs) >= MAX_SUBSCRIPTIONS:
            raise APIError("ERR_CONFIGURATION_SUBSCRIBE",
                           f"failed to subscribe {keys} from Configuration store {name}: "
                           f"the sidecar already holds {MAX_SUBSCRIPTIONS} subscriptions")
        sub_id = sub_id or str(uuid.uuid4())
        try:
            await store.subscribe(sub_id, keys, metadata, handler)
        except Exception as exc:
            raise APIError("ERR_CONFIGURATION_SUBSCRIBE",
                           f"failed to subscribe {keys} from Configuration store {name}: {exc}"
                           ) from None
        self.subs[sub_id] = name
        return sub_id

    async def unsubscribe(self, name: str, sub_id: str) -> None:
        store = self._store(name)
        if self.subs.get(sub_id) != name:
            raise APIError("ERR_CONFIGURATION_UNSUBSCRIBE",
                           f"failed to unsubscribe to configuration request {sub_id}: "
                           f"no such subscription on store {name}")
        del self.subs[sub_id]
        try:
            await store.unsubscribe(sub_id)
        except Exception as exc:
            raise APIError("ERR_CONFIGURATION_UNSUBSCRIBE",
                           f"failed to unsubscribe to configuration request {sub_id}: {exc}"
                           ) from None
        finally:  # the stream ends after the watch is gone, so no update follows its end
            queue = self.streams.pop(sub_id, None)
            if queue is not None:
                queue.put_nowait(_END)

    # -- HTTP ---------------------------------------------------------------------------------

    async def http_get(self, req: Request) -> Response:
        items = await self.get(req.params["store"], req.query.get("key", []),
                               req.request_metadata())
        if not items:
            return NO_CONTENT
        return Response.json({k: v.to_json() for k, v in items.items()})

    async def http_subscribe(self, req: Request) -> Response:
        channel = self.rt.app_channel
        if channel is None:
            raise APIError("ERR_APP_CHANNEL_NIL", "app channel is not initialized. cannot "
                           "subscribe to configuration updates (start the sidecar with --app-port)")
        name = req.params["store"]
        self._store(name)
        sub_id = str(uuid.uuid4())

        async def deliver(items: dict[str, ConfigurationItem]) -> None:
            body = _event(sub_id, items)
            for key in items:
                resp = await channel.call_http(
                    "POST", f"/configuration/{quote(name, safe='')}/{quote(key, safe='')}",
                    [("content-type", "application/json")], body)
                if resp.status != 200:
                    raise ConnectionError(f"the app answered {resp.status} to a configuration "
                                          f"update of {key!r}")
        await self.subscribe(name, req.query.get("key", []), req.request_metadata(), deliver,
                             sub_id)
        return Response.json({"id": sub_id})

    async def http_unsubscribe(self, req: Request) -> Response:
        try:
            await self.unsubscribe(req.params["store"], req.params["id"])
        except APIError as err:
            if err.code != "ERR_CONFIGURATION_UNSUBSCRIBE":
                raise
            return Response.json({"ok": False, "message": err.message, "errorCode": err.code},
                                 status=500)
        return Response.json({"ok": True})

    # -- gRPC ---------------------------------------------------------------------------------

    async def grpc_get(self, request: Any, context: Any) -> Any:
        from dapr.proto.runtime.v1 import configuration_pb2 as pb
        items = await self.get(request.store_name, list(request.keys), dict(request.metadata))
        resp = pb.GetConfigurationResponse()
        for key, item in items.items():
            resp.items[key].CopyFrom(_pb_item(item))
        return resp

    async def grpc_subscribe(self, request: Any, context: Any) -> AsyncIterator[Any]:
        from dapr.proto.runtime.v1 import configuration_pb2 as pb
        from pydapr.server.grpc import abort
        queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
        sub_id = str(uuid.uuid4())

        async def deliver(items: dict[str, ConfigurationItem]) -> None:
            await queue.put(items)  # a slow reader slows its own watch; memory stays bounded
        self.streams[sub_id] = queue
        try:
            await self.subscribe(request.store_name, list(request.keys), dict(request.metadata),
                                 deliver, sub_id)
        except APIError as err:
            self.streams.pop(sub_id, None)
            await abort(context, err)
        try:
            yield pb.SubscribeConfigurationResponse(id=sub_id)
            while True:
                items = await queue.get()
                if items is _END:
                    return
                resp = pb.SubscribeConfigurationResponse(id=sub_id)
                for key, item in items.items():
                    resp.items[key].CopyFrom(_pb_item(item))
                yield resp
        finally:
            if sub_id in self.subs:  # the client went away: release the watch
                try:
                    await self.unsubscribe(self.subs[sub_id], sub_id)
                except APIError as err:
                    log.debug("releasing subscription %s: %s", sub_id, err.message)

    async def grpc_unsubscribe(self, request: Any, context: Any) -> Any:
        from dapr.proto.runtime.v1 import configuration_pb2 as pb
        await self.unsubscribe(request.store_name, request.id)
        return pb.UnsubscribeConfigurationResponse(ok=True)


def _pb_item(item: ConfigurationItem) -> Any:
    from dapr.proto.common.v1 import common_pb2
    return common_pb2.ConfigurationItem(value=item.value, version=item.version,
                                        metadata=item.metadata)


@hookimpl
def pydapr_building_blocks() -> list[BuildingBlock]:
    return [BuildingBlock("api.configuration", ConfigurationAPI)]
