"""api.state: the state management building block over HTTP and gRPC (spec section 2).

Request path: store lookup (scoping already applied when resources loaded) ->
key validation and prefixing (``appid||key`` by default, component metadata
``keyPrefix``) -> the store, through the :class:`pydapr.kinds.state.StateStore`
interface only. Store errors become Dapr's ``ERR_STATE_*`` codes; an ETag
mismatch on save or delete is 409 / ``ABORTED``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydapr import hookimpl
from pydapr.registry import BuildingBlock, Route

from .core import StateCore
from .grpc import StateGRPC
from .http import StateHTTP

if TYPE_CHECKING:
    from pydapr.runtime import Runtime

__all__ = ["StateAPI"]


class StateAPI:
    def __init__(self, runtime: Runtime) -> None:
        self.core = StateCore(runtime)
        self.http = StateHTTP(self.core)
        self.grpc = StateGRPC(self.core)

    def routes(self) -> list[Route]:
        return self.http.routes()

    def grpc_methods(self) -> dict[str, Any]:
        return self.grpc.methods()


@hookimpl
def pydapr_building_blocks() -> list[BuildingBlock]:
    return [BuildingBlock("api.state", StateAPI)]
