"""api.secrets: read secrets over HTTP and gRPC (spec 5), and resolve ``secretKeyRef``.

Access is filtered by the Configuration's ``spec.secrets.scopes`` (rules K0 to
K3 of the security model): a denied single read answers 403, a bulk read
silently leaves denied secrets out. The same block resolves the
``secretKeyRef`` entries of other components at start-up (through the store
named in their ``auth.secretStore``; scopes govern the app's API, not the
operator's manifests, as in Dapr). Secret values never reach a log line or
an error message.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydapr import hookimpl
from pydapr.errors import APIError, ConfigError, StartupError
from pydapr.kinds.secretstores import SecretStore
from pydapr.registry import BuildingBlock, Route
from pydapr.server.request import NO_CONTENT, Request, Response

if TYPE_CHECKING:
    from pydapr.resources import Configuration
    from pydapr.runtime import Runtime

__all__ = ["SecretsAPI", "SecretScope", "parse_scopes"]


@dataclass(frozen=True)
class SecretScope:
    """One ``spec.secrets.scopes[]`` entry."""

    default_deny: bool = False
    allowed: frozenset[str] = frozenset()
    denied: frozenset[str] = frozenset()

    def allows(self, key: str) -> bool:
        if self.allowed:  # K1: an allow list decides alone
            return key in self.allowed
        if key in self.denied:  # K2
            return False
        return not self.default_deny  # K3


def parse_scopes(config: Configuration) -> dict[str, SecretScope]:
    """``spec.secrets.scopes`` by store name.

    Stricter than Dapr, which reads any value but ``deny`` as ``allow``: a
    ``defaultAccess`` other than allow/deny, a missing or repeated
    ``storeName`` or a list that is not of strings stops start-up.

    :raises ConfigError: naming the configuration file and the entry.
    """
    raw = config.section("secrets").get("scopes") or []
    where = f"{config.source or 'configuration'}: field spec.secrets.scopes"
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: must be a list")
    scopes: dict[str, SecretScope] = {}
    for i, entry in enumerate(raw):
        here = f"{where}[{i}]"
        store = entry.get("storeName") if isinstance(entry, dict) else None
        if not isinstance(store, str) or not store:
            raise ConfigError(f"{here}: each entry needs a 'storeName'")
        if store in scopes:
            raise ConfigError(f"{here}: store {store!r} has two entries; merge them into one")
        access = str(entry.get("defaultAccess") or "allow").lower()
        if access not in ("allow", "deny"):
            raise ConfigError(f"{here}.defaultAccess: must be 'allow' or 'deny', "
                              f"got {entry.get('defaultAccess')!r}")
        lists = []
        for field in ("allowedSecrets", "deniedSecrets"):
            value = entry.get(field) or []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{here}.{field}: must be a list of secret names")
            lists.append(frozenset(value))
        scopes[store] = SecretScope(access == "deny", *lists)
    return scopes


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


class SecretsAPI:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.scopes = parse_scopes(runtime.config)
        self._boot_cache: dict[tuple[str, str, str], dict[str, str]] | None = {}
        runtime.secret_resolver = self.resolve

    def routes(self) -> list[Route]:
        return [Route(("GET",), "/v1.0/secrets/{store}/bulk", self.http_bulk, "secrets"),
                Route(("GET",), "/v1.0/secrets/{store}/{key}", self.http_get, "secrets")]

    def grpc_methods(self) -> dict[str, Any]:
        return {"GetSecret": self.grpc_get, "GetBulkSecret": self.grpc_bulk}

    async def start(self) -> None:
        self._boot_cache = None  # secretKeyRef values are held only while components start

    # -- the operations, shared by both protocols ------------------------------------------

    def _store(self, name: str) -> SecretStore:
        if not self.rt.has_kind("secretstores"):
            raise APIError("ERR_SECRET_STORES_NOT_CONFIGURED", "secret store is not configured")
        store = self.rt.component("secretstores", name)
        if store is None:
            raise APIError("ERR_SECRET_STORE_NOT_FOUND",
                           f"failed finding secret store with key {name}")
        return store  # type: ignore[return-value]

    def _allowed(self, store: str, key: str) -> bool:
        scope = self.scopes.get(store)
        return scope is None or scope.allows(key)  # K0: no entry for the store

    async def get(self, store_name: str, key: str, metadata: dict[str, str]) -> dict[str, str]:
        store = self._store(store_name)
        if not self._allowed(store_name, key):
            raise APIError("ERR_PERMISSION_DENIED",
                           f'access denied by policy to get "{key}" from "{store_name}"')
        try:
            return await store.get_secret(key, metadata)
        except Exception as exc:
            raise APIError("ERR_SECRET_GET", f"failed getting secret with key {key} from secret "
                           f"store {store_name}: {_reason(exc)}") from None

    async def bulk(self, store_name: str, metadata: dict[str, str]) -> dict[str, dict[str, str]]:
        store = self._store(store_name)
        try:
            found = await store.bulk_get_secret(metadata)
        except Exception as exc:
            raise APIError("ERR_SECRET_GET", f"failed getting secrets from secret store "
                           f"{store_name}: {_reason(exc)}") from None
        return {name: values for name, values in found.items() if self._allowed(store_name, name)}

    # -- HTTP ---------------------------------------------------------------------------------

    async def http_get(self, req: Request) -> Response:
        data = await self.get(req.params["store"], req.params["key"], req.request_metadata())
        return Response.json(data) if data else NO_CONTENT

    async def http_bulk(self, req: Request) -> Response:
        return Response.json(await self.bulk(req.params["store"], req.request_metadata()))

    # -- gRPC ---------------------------------------------------------------------------------

    async def grpc_get(self, request: Any, context: Any) -> Any:
        from dapr.proto.runtime.v1 import secret_pb2
        data = await self.get(request.store_name, request.key, dict(request.metadata))
        return secret_pb2.GetSecretResponse(data=data)

    async def grpc_bulk(self, request: Any, context: Any) -> Any:
        from dapr.proto.runtime.v1 import secret_pb2
        data = await self.bulk(request.store_name, dict(request.metadata))
        resp = secret_pb2.GetBulkSecretResponse()
        for name, values in data.items():
            resp.data[name].secrets.update(values)
        return resp

    # -- secretKeyRef -------------------------------------------------------------------------

    async def resolve(self, store_name: str, name: str, key: str, namespace: str) -> str:
        """The value of ``key`` in secret ``name`` of ``store_name`` (Runtime.secret_resolver).

        :raises StartupError: naming store, secret and key (never a value).
        """
        store = await self._ready_store(store_name)
        cache_key = (store_name, name, namespace)
        data = self._boot_cache.get(cache_key) if self._boot_cache is not None else None
        if data is None:
            try:
                data = await store.get_secret(name, {"namespace": namespace})
            except Exception as exc:
                raise StartupError(f"secretKeyRef: cannot read secret {name!r} from secret store "
                                   f"{store_name!r}: {_reason(exc)}") from None
            if self._boot_cache is not None:
                self._boot_cache[cache_key] = data
        if key not in data:
            raise StartupError(f"secretKeyRef: secret {name!r} in secret store {store_name!r} has "
                               f"no key {key!r}")
        return data[key]

    async def _ready_store(self, name: str) -> SecretStore:
        slot = self.rt.slots.get(name)
        if slot is None or slot.resource.kind_name != "secretstores":
            raise StartupError(f"secretKeyRef: auth.secretStore {name!r} is not a loaded "
                               "secret store")
        for _ in range(500):  # a secret store may itself wait on another one (~10 s at most)
            if slot.status != "INITIALIZING":
                break
            await asyncio.sleep(0.02)
        if slot.instance is None:
            raise StartupError(f"secretKeyRef: secret store {name!r} is not ready ({slot.status}"
                               f"{': ' + slot.error if slot.error else ''})")
        return slot.instance  # type: ignore[return-value]


@hookimpl
def pydapr_building_blocks() -> list[BuildingBlock]:
    return [BuildingBlock("api.secrets", SecretsAPI)]
