"""``nameresolution.mdns`` (v1, beta): find sidecars on the local network with multicast DNS.

Needs the ``mdns`` extra (``pip install pydapr[mdns]``, the ``zeroconf``
library). Each sidecar announces a ``_dapr._tcp.local.`` service whose TXT
record carries its app id, namespace and trust domain; every resolver browses
that service type continuously, so a lookup is answered from memory once the
network has spoken. A first lookup for an app not yet seen waits up to
``resolveTimeout`` for an announcement.
"""
from __future__ import annotations

import asyncio
import logging
import random
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from pydapr import hookimpl
from pydapr.kinds.nameresolution import NameResolver, Registration, advertised_host
from pydapr.metadata import Duration, meta
from pydapr.registry import ComponentType

__all__ = ["MDNSResolver", "MDNSMetadata", "SERVICE_TYPE"]

log = logging.getLogger("pydapr.nameresolution")

SERVICE_TYPE = "_dapr._tcp.local."


@dataclass(frozen=True)
class MDNSMetadata:
    resolve_timeout: Duration = meta(Duration(1.0), doc="how long a lookup waits for an answer")
    loopback: bool = meta(False, doc="announce and listen on the loopback interface only")


class MDNSResolver(NameResolver):
    metadata_type = MDNSMetadata

    async def init(self, metadata: MDNSMetadata) -> None:
        from zeroconf import IPVersion
        from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf
        self.md = metadata
        interfaces: Any = ["127.0.0.1"] if metadata.loopback else None
        self.zc = (AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
                   if interfaces else AsyncZeroconf(ip_version=IPVersion.V4Only))
        self.known: dict[str, Registration] = {}     # service name -> registration
        self._changed = asyncio.Event()
        self._info: Any = None
        self._tasks: set[asyncio.Task] = set()
        self.browser = AsyncServiceBrowser(self.zc.zeroconf, SERVICE_TYPE, handlers=[self._on_change])

    def _on_change(self, zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        from zeroconf import ServiceStateChange
        if state_change is ServiceStateChange.Removed:
            self.known.pop(name, None)
            return
        task = asyncio.get_running_loop().create_task(self._fetch(service_type, name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fetch(self, service_type: str, name: str) -> None:
        from zeroconf.asyncio import AsyncServiceInfo
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(self.zc.zeroconf, 3000):
            return
        props = {k.decode(): (v or b"").decode() for k, v in (info.properties or {}).items()}
        addresses = info.parsed_addresses()
        if not addresses or not props.get("app"):
            return
        self.known[name] = Registration(props["app"], props.get("ns", "default"), addresses[0],
                                        int(info.port or 0), props.get("td", ""))
        self._changed.set()

    async def register(self, me: Registration) -> None:
        from zeroconf.asyncio import AsyncServiceInfo
        host = advertised_host(me.host)
        name = f"{me.app_id}-{uuid.uuid4().hex[:8]}.{SERVICE_TYPE}"
        self._info = AsyncServiceInfo(
            SERVICE_TYPE, name, addresses=[socket.inet_aton(host)], port=me.port,
            properties={"app": me.app_id, "ns": me.namespace, "td": me.trust_domain})
        await self.zc.async_register_service(self._info)

    def _matching(self, app_id: str, namespace: str) -> list[Registration]:
        return [r for r in self.known.values() if r.app_id == app_id and r.namespace == namespace]

    async def resolve(self, app_id: str, namespace: str) -> Registration:
        found = self._matching(app_id, namespace)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.md.resolve_timeout
        while not found and loop.time() < deadline:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), deadline - loop.time())
            except asyncio.TimeoutError:
                break
            found = self._matching(app_id, namespace)
        if not found:
            raise LookupError(f"no sidecar of app {app_id!r} in namespace {namespace!r} answered "
                              "on mDNS")
        return random.choice(found)

    async def close(self) -> None:
        try:
            if self._info is not None:
                await self.zc.async_unregister_service(self._info)
            await self.browser.async_cancel()
        finally:
            await self.zc.async_close()


@hookimpl
def pydapr_component_types() -> list[ComponentType]:
    return [ComponentType("nameresolution.mdns", "v1", MDNSResolver)]
