"""Descriptors that plugins return from registration hooks, and the kernel's lookup tables.

Hooks return these and never register anything themselves; the kernel
flattens the results, refuses duplicates with :class:`~pydapr.errors.PluginError`
naming both sources, and builds the per-request structures once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .errors import PluginError, StartupError

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["ComponentType", "MiddlewareType", "BuildingBlock", "Route", "Registry"]


@dataclass(frozen=True)
class ComponentType:
    """One component implementation.

    :param name: Dapr type, ``<kind>.<name>`` (``state.redis``).
    :param version: the major version it implements (``v1``).
    :param factory: called with a :class:`pydapr.kinds.ComponentInfo`; returns the component.
    :param aliases: other type names for the same implementation (``state.postgres``).
    :param versions: other versions served by the same factory.
    :param status: ``alpha``, ``beta`` or ``stable``.
    """

    name: str
    version: str
    factory: Callable[..., Any]
    aliases: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()
    status: str = "stable"

    @property
    def kind(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass(frozen=True)
class MiddlewareType:
    """An HTTP middleware type (``middleware.http.bearer``).

    :param factory: ``factory(info, metadata_items, runtime)`` returns an object whose
        ``async __call__(request, call_next)`` returns a Response.
    """

    name: str
    version: str
    factory: Callable[..., Any]


@dataclass(frozen=True)
class Route:
    """One HTTP route of a building block.

    :param methods: HTTP verbs (``("GET",)``); ``("*",)`` for any verb.
    :param pattern: path pattern; ``{name}`` matches one segment (percent-decoded),
        a final ``{name*}`` matches the raw remainder of the path (possibly empty).
    :param handler: ``handler(request) -> Response``, sync or ``async``; a sync handler
        runs inline on the connection with no task created.
    :param api: the API group for allow/deny lists (``state``, ``healthz``...).
    """

    methods: tuple[str, ...]
    pattern: str
    handler: Callable[..., Any]
    api: str = ""


@dataclass(frozen=True)
class BuildingBlock:
    """A building block (``api.state``).

    :param name: ``api.<block>``.
    :param factory: ``factory(runtime)`` returns an object with ``routes() -> list[Route]``,
        ``grpc_methods() -> dict[str, handler]`` (RPC name of ``dapr.proto.runtime.v1.Dapr``
        to an ``async`` grpc.aio handler), and optional ``async start()`` / ``async stop()``.
    """

    name: str
    factory: Callable[[Runtime], Any]


@dataclass
class Registry:
    """Type name -> descriptor tables, built from the registration hooks' results."""

    components: dict[tuple[str, str], ComponentType] = field(default_factory=dict)
    middleware: dict[tuple[str, str], MiddlewareType] = field(default_factory=dict)
    blocks: dict[str, BuildingBlock] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def add_component(self, ct: ComponentType, source: str) -> None:
        for name in (ct.name, *ct.aliases):
            for version in (ct.version, *ct.versions):
                self._claim(self.components, (name, version), ct, source)

    def add_middleware(self, mt: MiddlewareType, source: str) -> None:
        self._claim(self.middleware, (mt.name, mt.version), mt, source)

    def add_block(self, bb: BuildingBlock, source: str) -> None:
        self._claim(self.blocks, bb.name, bb, source)

    def _claim(self, table: dict, key: Any, value: Any, source: str) -> None:
        skey = repr(key)
        if key in table and table[key] is not value:
            raise PluginError(f"{key!r} is registered twice: by {self.sources[skey]} and by {source}",
                              plugin=source)
        table[key] = value
        self.sources[skey] = source

    def component(self, type_name: str, version: str) -> ComponentType:
        found = self.components.get((type_name, version or "v1"))
        if found is None:
            known = sorted({f"{n}/{v}" for n, v in self.components if n == type_name})
            hint = f" (versions available: {', '.join(known)})" if known else ""
            raise StartupError(f"unknown component type {type_name}/{version or 'v1'}{hint}")
        return found

    def middleware_type(self, type_name: str, version: str) -> MiddlewareType:
        found = self.middleware.get((type_name, version or "v1"))
        if found is None:
            raise StartupError(f"unknown middleware type {type_name}/{version or 'v1'}")
        return found
