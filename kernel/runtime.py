"""The running sidecar: resources, components, building blocks and the request dispatch.

Boot order (hookspecs has the contract): building blocks load and register
routes, the HTTP API starts listening, then components initialise in the
background (secret stores first, the rest concurrently) with readiness
reported per component, the gRPC API and app channel come up, and
``pydapr_startup`` runs. Health endpoints answer 500 until then.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from .errors import APIError, MalformedPath, StartupError
from .kinds import Component, ComponentInfo
from .metadata import decode, redact
from .pluginmanager import PluginManager
from .registry import Registry, Route
from .resources import (DEFAULT_RESOURCES, Component as ComponentResource, Configuration,
                        Resources, load_configuration, load_resources)
from .router import IMPLEMENTATION as ROUTER_IMPL, Router
from .server.request import Request, Response

if TYPE_CHECKING:
    from .daprd.options import Options

__all__ = ["Runtime", "ComponentSlot", "resolve_resource_paths"]

log = logging.getLogger("pydapr.runtime")

Handler = Callable[[Request], "Response | Awaitable[Response]"]
SecretResolver = Callable[[str, str, str, str], Awaitable[str]]  # store, name, key, namespace


@dataclass
class ComponentSlot:
    """A component resource and its instance, with readiness (reported per component)."""

    resource: ComponentResource
    instance: Component | None = None
    status: str = "INITIALIZING"  # INITIALIZING | READY | FAILED
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_resource_paths(paths: list[str]) -> list[Path]:
    """--resources-path folders, else ~/.pydapr/components, else the embedded default."""
    if paths:
        return [Path(p) for p in paths]
    home = Path(os.environ.get("PYDAPR_HOME", "~/.pydapr")).expanduser() / "components"
    if home.is_dir():
        return [home]
    return [DEFAULT_RESOURCES]


def _direct_invoke_not_found(req: Request) -> Response:
    return Response.from_error(APIError(
        "ERR_DIRECT_INVOKE", "failed getting app id either from the URL path or the header dapr-app-id",
        http_status=404, grpc_code="NOT_FOUND"))


_PLACEHOLDER = re.compile(r"\{(uuid|namespace|appID|podName)\}")
_ENV_DENIED = re.compile(r"^(DAPR_.*|APP_API_TOKEN)$")


class Runtime:
    """Everything one sidecar owns. Building blocks receive it in their factory."""

    def __init__(self, options: Options, pm: PluginManager | None = None) -> None:
        self.options = options
        self.app_id = options.app_id
        self.namespace = options.namespace
        self.pm = pm if pm is not None else PluginManager()
        self.config: Configuration = Configuration()
        self.resources: Resources = Resources()
        self.registry: Registry = Registry()
        self.slots: dict[str, ComponentSlot] = {}
        self.blocks: dict[str, Any] = {}
        self.router = Router()
        self.fallback: Handler = _direct_invoke_not_found
        self.grpc_methods: dict[str, Any] = {}
        self.extended_metadata: dict[str, str] = {}
        self.app_channel: Any = None
        self.secret_resolver: SecretResolver | None = None
        self.dispatch_wrappers: list[Callable[[Handler], Handler]] = []
        #: consulted for every building-block route once all blocks are built (API allow lists)
        self.route_filter: Callable[[Route], bool] | None = None
        #: the appHttpPipeline (``call_http`` like AppChannel's) when one is configured, else None
        self.app_pipeline: Any = None
        self.stash: dict[Any, Any] = {}
        #: this sidecar's :class:`pydapr.identity.Identity` when mTLS is on (started before
        #: components initialise), else None
        self.identity: Any = None
        self.ready = False
        self.outbound_ready = False
        self.unready_targets: set[str] = {"components", "grpc"}
        self.stopped = asyncio.Event()
        self.exit_code = 0
        self.dispatch: Handler = self._dispatch

    # -- resources and plugins ----------------------------------------------------------

    def load(self) -> None:
        """Read configuration and resources, load the plugins they name, build the registry."""
        o = self.options
        if o.config:
            self.config = load_configuration(o.config)
        self.resource_paths = resolve_resource_paths(o.resources_paths)
        self.resources = load_resources(self.resource_paths, self.app_id, self.namespace)
        for why in self.resources.skipped:
            log.debug("not loaded: %s", why)
        self.pm.load_blocks()
        denied = set(self.config.components_deny)
        types = set()
        for comp in self.resources.components:
            if comp.type in denied or f"{comp.type}/{comp.version}" in denied:
                raise StartupError(f"{comp.source}: component type {comp.type} is denied by the "
                                   "configuration (spec.components.deny)")
            types.add(comp.type)
        types.update(h.type for h in (*self.config.http_pipeline, *self.config.app_http_pipeline))
        self.pm.load_types(sorted(types))
        self.registry = self.pm.registry()
        for comp in self.resources.components:
            if not comp.type.startswith("middleware."):
                self.registry.component(comp.type, comp.version)  # fail fast on unknown types
            self.slots[comp.name] = ComponentSlot(comp)

    def build_blocks(self) -> None:
        """Instantiate building blocks and build the route table and gRPC method table once."""
        for name, bb in sorted(self.registry.blocks.items()):
            self.blocks[name] = bb.factory(self)
        for block in self.blocks.values():  # after every factory ran: route_filter is final
            for route in block.routes() if hasattr(block, "routes") else ():
                if self.route_filter is None or self.route_filter(route):
                    self.add_route(route)
            for rpc, handler in (block.grpc_methods() if hasattr(block, "grpc_methods") else {}).items():
                if rpc in self.grpc_methods:
                    raise StartupError(f"gRPC method {rpc} is served by two building blocks")
                self.grpc_methods[rpc] = handler
        handler: Handler = self._dispatch
        for wrap in self.dispatch_wrappers:
            handler = wrap(handler)
        self.dispatch = handler
        log.debug("router: %s", ROUTER_IMPL)

    def add_route(self, route: Route) -> None:
        self.router.add(route.methods, route.pattern, route.handler)

    def _dispatch(self, req: Request) -> Response | Awaitable[Response]:
        try:
            hit = self.router.match(req.method, req.path)
        except MalformedPath as exc:
            return Response.from_error(APIError("ERR_MALFORMED_REQUEST", str(exc)))
        if hit is None:
            return self.fallback(req)
        handler, req.params = hit
        return handler(req)

    # -- components -------------------------------------------------------------------------

    def component(self, kind: str, name: str) -> Component | None:
        """The ready instance named ``name`` of ``kind`` (``state``, ``pubsub``...), or None."""
        slot = self.slots.get(name)
        if slot is None or slot.instance is None or slot.resource.kind_name != kind:
            return None
        return slot.instance

    def components_of(self, kind: str) -> dict[str, Component]:
        return {n: s.instance for n, s in self.slots.items()
                if s.instance is not None and s.resource.kind_name == kind}

    def has_kind(self, kind: str) -> bool:
        return any(s.resource.kind_name == kind for s in self.slots.values())

    async def resolve_metadata(self, comp: ComponentResource) -> dict[str, str]:
        """Metadata values with secretKeyRef, envRef and placeholders resolved."""
        out: dict[str, str] = {}
        for item in comp.metadata:
            where = f"{comp.source}: component {comp.name}: field {item.name}"
            if item.secret_ref is not None:
                store = comp.secret_store
                if not store or self.secret_resolver is None:
                    raise StartupError(f"{where}: secretKeyRef needs auth.secretStore naming a "
                                       "loaded secret store")
                out[item.name] = await self.secret_resolver(store, *item.secret_ref, comp.namespace
                                                            or self.namespace)
            elif item.env_ref is not None:
                allowed = os.environ.get("DAPR_ENV_KEYS")
                if _ENV_DENIED.match(item.env_ref) or " " in item.env_ref or (
                        allowed is not None and item.env_ref not in allowed.split()):
                    raise StartupError(f"{where}: envRef {item.env_ref!r} is not allowed")
                out[item.name] = os.environ.get(item.env_ref, "")
            else:
                out[item.name] = self._placeholders(item.value or "")
        return out

    def _placeholders(self, value: str) -> str:
        if "{" not in value:
            return value

        def sub(m: re.Match) -> str:
            key = m.group(1)
            if key == "uuid":
                return str(uuid.uuid4())
            if key == "namespace":
                return f"{self.namespace}.{self.app_id}"
            if key == "appID":
                return self.app_id
            pod = os.environ.get("POD_NAME")
            if not pod:
                raise StartupError("{podName} is used in a component but POD_NAME is not set")
            return pod
        return _PLACEHOLDER.sub(sub, value)

    async def init_component(self, slot: ComponentSlot) -> None:
        comp = slot.resource
        if comp.type.startswith("middleware."):
            slot.status = "READY"
            return
        ctype = self.registry.component(comp.type, comp.version)
        try:
            props = await self.resolve_metadata(comp)
            info = ComponentInfo(comp.name, comp.type, comp.version, self.app_id,
                                 comp.namespace or self.namespace, props, comp)
            instance = ctype.factory(info)
            mtype = getattr(instance, "metadata_type", None)
            md = decode(mtype, props, f"{comp.source}: component {comp.name}") if mtype else props
            shown = redact(mtype, props)
            shown.update({i.name: "***" for i in comp.metadata if i.secret_ref is not None})
            log.debug("init %s (%s) metadata=%s", comp.name, comp.type, shown)
            await asyncio.wait_for(instance.init(md), timeout=max(comp.init_timeout, 0.1))
        except Exception as exc:
            slot.status, slot.error = "FAILED", _describe(exc)
            msg = f"component {comp.name} ({comp.type}) failed to initialise: {slot.error}"
            if comp.ignore_errors:
                log.warning("%s (ignoreErrors: the sidecar keeps running)", msg)
                return
            raise StartupError(msg) from exc
        slot.instance, slot.status = instance, "READY"
        log.info("component loaded: %s (%s/%s)", comp.name, comp.type, comp.version)

    async def init_components(self) -> None:
        """Secret stores first (others may reference them), then every other component concurrently."""
        first = [s for s in self.slots.values() if s.resource.kind_name == "secretstores"]
        rest = [s for s in self.slots.values() if s.resource.kind_name != "secretstores"]
        for group in (first, rest):
            await asyncio.gather(*(self.init_component(s) for s in group))
        self.unready_targets.discard("components")

    async def close_components(self) -> None:
        for slot in self.slots.values():
            if slot.instance is not None:
                try:
                    await asyncio.wait_for(slot.instance.close(), 2.0)
                except Exception as exc:
                    log.warning("closing %s: %s", slot.resource.name, _describe(exc))
                slot.instance = None

    # -- block lifecycle ------------------------------------------------------------------------

    async def start_blocks(self) -> None:
        for block in self.blocks.values():
            start = getattr(block, "start", None)
            if start is not None:
                await start()

    async def stop_blocks(self) -> None:
        for block in reversed(list(self.blocks.values())):
            stop = getattr(block, "stop", None)
            if stop is not None:
                try:
                    await stop()
                except Exception as exc:
                    log.warning("stopping %s: %s", type(block).__name__, _describe(exc))

    def request_shutdown(self, code: int = 0) -> None:
        self.exit_code = code
        self.stopped.set()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out (spec.initTimeout)"
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, StartupError) else f"{type(exc).__name__}: {text}"
