"""``nameresolution.static`` (v1, stable): a fixed map of app ids to sidecar addresses.

Configured in the Configuration (``spec.nameResolution.configuration``)::

    nameResolution:
      component: static
      configuration:
        apps:
          orders: 10.0.0.5:50002               # namespace of the caller
          billing.finance: 10.0.0.6:50002       # <app-id>.<namespace>
          ledger: {address: "10.0.0.7:50002", trustDomain: finance.example}

Nothing is registered; the map is the whole truth.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from pydapr import hookimpl
from pydapr.errors import ConfigError
from pydapr.kinds.nameresolution import NameResolver, Registration
from pydapr.metadata import meta
from pydapr.registry import ComponentType

__all__ = ["StaticResolver", "StaticMetadata"]


@dataclass(frozen=True)
class StaticMetadata:
    apps: str = meta("{}", doc="map of <app-id>[.<namespace>] to host:port or "
                                "{address, trustDomain}")


def _address(text: str, where: str) -> tuple[str, int]:
    host, sep, port = str(text).strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: {text!r} is not host:port")
    return host, int(port)


class StaticResolver(NameResolver):
    metadata_type = StaticMetadata

    async def init(self, metadata: StaticMetadata) -> None:
        where = "spec.nameResolution.configuration.apps"
        try:
            table: Any = orjson.loads(metadata.apps)
        except orjson.JSONDecodeError:
            raise ConfigError(f"{where}: must be a mapping of app id to address") from None
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: must be a mapping of app id to address")
        self.entries: dict[tuple[str, str | None], Registration] = {}
        for key, value in table.items():
            app, _, ns = str(key).partition(".")
            td = ""
            if isinstance(value, dict):
                td = str(value.get("trustDomain") or "")
                value = value.get("address", "")
            host, port = _address(value, f"{where}.{key}")
            self.entries[(app, ns or None)] = Registration(app, ns, host, port, td)

    async def register(self, me: Registration) -> None:
        return None

    async def resolve(self, app_id: str, namespace: str) -> Registration:
        hit = self.entries.get((app_id, namespace)) or self.entries.get((app_id, None))
        if hit is None:
            raise LookupError(f"app {app_id!r} (namespace {namespace!r}) is not in the static "
                              "name-resolution map")
        return hit if hit.namespace else Registration(app_id, namespace, hit.host, hit.port,
                                                      hit.trust_domain)


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("nameresolution.static", "v1", StaticResolver)]
