"""api.lock: the distributed lock API (spec 7.2), over HTTP and gRPC.

Requests are validated completely before a component is touched. The
resource id reaching the component is prefixed as Dapr does
(``lock||<appid>||<resource>`` by default; component metadata ``keyPrefix``:
``appid``, ``name``, ``none`` or a fixed prefix), so two apps sharing a store
never contend for each other's locks unless they are configured to.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydapr import hookimpl
from pydapr.errors import APIError
from pydapr.kinds.lock import LockStore, UnlockStatus
from pydapr.registry import BuildingBlock, Route
from pydapr.server.request import Request, Response

if TYPE_CHECKING:
    from pydapr.runtime import Runtime

__all__ = ["LockAPI", "lock_key"]

SEPARATOR = "||"
_INT32_MAX = 2**31 - 1


def lock_key(resource_id: str, store: str, app_id: str, strategy: str) -> str:
    """Dapr's lock key: ``lock||<prefix>||<resource>`` by the ``keyPrefix`` strategy.

    :raises APIError: ERR_MALFORMED_REQUEST when the resource id contains ``||``.
    """
    if SEPARATOR in resource_id:
        raise APIError("ERR_MALFORMED_REQUEST",
                       f"resourceId {resource_id!r} can't contain {SEPARATOR!r}")
    low = strategy.lower()
    if low == "none":
        return resource_id
    if low == "name":
        prefix = store
    elif low in ("appid", ""):
        if not app_id:
            return resource_id
        prefix = app_id
    else:
        prefix = strategy
    return f"lock{SEPARATOR}{prefix}{SEPARATOR}{resource_id}"


class LockAPI:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def routes(self) -> list[Route]:
        return [
            Route(("POST",), "/v1.0-alpha1/lock/{store}", self.http_lock, "lock"),
            Route(("POST",), "/v1.0-alpha1/unlock/{store}", self.http_unlock, "lock"),
        ]

    def grpc_methods(self) -> dict[str, Any]:
        return {"TryLockAlpha1": self.grpc_try_lock, "UnlockAlpha1": self.grpc_unlock}

    # -- shared ---------------------------------------------------------------------------------

    def _store(self, name: str, resource_id: str, owner: str,
               expiry: Any = 1) -> tuple[LockStore, str]:
        """Validate in Dapr's order, then return the store and the prefixed key."""
        if not self.rt.has_kind("lock"):
            raise APIError("ERR_LOCK_STORE_NOT_CONFIGURED", "lock store is not configured")
        if not resource_id:
            raise APIError("ERR_MALFORMED_REQUEST", f"ResourceId is empty in lock store {name}")
        if not owner:
            raise APIError("ERR_MALFORMED_REQUEST", f"LockOwner is empty in lock store {name}")
        if isinstance(expiry, bool) or not isinstance(expiry, int):
            raise APIError("ERR_MALFORMED_REQUEST", "ExpiryInSeconds must be a whole number of "
                           f"seconds in lock store {name}")
        if expiry <= 0:
            raise APIError("ERR_MALFORMED_REQUEST",
                           f"ExpiryInSeconds is not positive in lock store {name}")
        if expiry > _INT32_MAX:  # the gRPC field is an int32, so the HTTP API holds to it too
            raise APIError("ERR_MALFORMED_REQUEST",
                           f"ExpiryInSeconds is larger than {_INT32_MAX} in lock store {name}")
        store = self.rt.component("lock", name)
        if not isinstance(store, LockStore):
            raise APIError("ERR_LOCK_STORE_NOT_FOUND", f"lock store {name} not found")
        strategy = next((v for k, v in store.info.properties.items() if k.lower() == "keyprefix"),
                        "appid")
        return store, lock_key(resource_id, name, self.rt.app_id, strategy)

    async def try_lock(self, name: str, resource_id: str, owner: str, expiry: Any) -> bool:
        store, key = self._store(name, resource_id, owner, expiry)
        try:
            return await store.try_lock(key, owner, expiry)
        except Exception as exc:
            raise APIError("ERR_TRY_LOCK", f"failed to try acquiring lock: {exc}") from None

    async def unlock(self, name: str, resource_id: str, owner: str) -> UnlockStatus:
        store, key = self._store(name, resource_id, owner)
        try:
            return await store.unlock(key, owner)
        except Exception as exc:
            raise APIError("ERR_UNLOCK", f"failed to release lock: {exc}") from None

    # -- HTTP -------------------------------------------------------------------------------------

    @staticmethod
    def _body(req: Request) -> dict[str, Any]:
        body = req.json()
        if not isinstance(body, dict):
            raise APIError("ERR_MALFORMED_REQUEST", "request body must be a JSON object")
        for field in ("resourceId", "lockOwner"):
            if not isinstance(body.get(field, ""), str):
                raise APIError("ERR_MALFORMED_REQUEST", f"{field} must be a string")
        return body

    async def http_lock(self, req: Request) -> Response:
        body = self._body(req)
        ok = await self.try_lock(req.params["store"], body.get("resourceId", ""),
                                 body.get("lockOwner", ""), body.get("expiryInSeconds", 0))
        return Response.json({"success": ok})

    async def http_unlock(self, req: Request) -> Response:
        body = self._body(req)
        status = await self.unlock(req.params["store"], body.get("resourceId", ""),
                                   body.get("lockOwner", ""))
        return Response.json({"status": int(status)})

    # -- gRPC -------------------------------------------------------------------------------------

    async def grpc_try_lock(self, request: Any, context: Any) -> Any:
        from dapr.proto.runtime.v1 import lock_pb2 as pb
        ok = await self.try_lock(request.store_name, request.resource_id, request.lock_owner,
                                 request.expiry_in_seconds)
        return pb.TryLockResponse(success=ok)

    async def grpc_unlock(self, request: Any, context: Any) -> Any:
        from dapr.proto.runtime.v1 import lock_pb2 as pb
        status = await self.unlock(request.store_name, request.resource_id, request.lock_owner)
        return pb.UnlockResponse(status=int(status))


@hookimpl
def pydapr_building_blocks() -> list[BuildingBlock]:
    return [BuildingBlock("api.lock", LockAPI)]
