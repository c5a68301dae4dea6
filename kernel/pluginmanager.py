"""Plugin discovery and loading over the one ``pydapr`` entry-point group.

Entry points are scanned once (names only, nothing imported); ``api.*``
building blocks load at boot, component and middleware types load by name
when a resource asks for them. A name declared by two distributions stops
start-up with an error naming both, instead of pluggy's silent skip.
"""
from __future__ import annotations

import inspect
import logging
import os
from importlib.metadata import entry_points
from typing import Any, Iterable

import pluggy

from . import hookspecs
from .errors import PluginError
from .registry import Registry

__all__ = ["PluginInfo", "PluginManager", "discover", "await_me_maybe"]

log = logging.getLogger("pydapr.plugins")


class PluginInfo:
    """An entry point of the ``pydapr`` group, described without importing it.

    The distribution's name and version are read from its metadata only when asked for
    (listings, error messages): parsing every distribution's METADATA at start-up cost time
    and the memory of the ``email`` package.
    """

    __slots__ = ("name", "value", "entry_point", "_dist", "_version")

    def __init__(self, name: str, value: str, dist: str | None = None, version: str | None = None,
                 entry_point: Any = None) -> None:
        self.name, self.value, self.entry_point = name, value, entry_point
        self._dist, self._version = dist, version

    def _read_distribution(self) -> None:
        d = getattr(self.entry_point, "dist", None)
        if self._dist is None:
            self._dist = d.name if d is not None else "?"
        if self._version is None:
            self._version = d.version if d is not None else "?"

    @property
    def dist(self) -> str:
        if self._dist is None:
            self._read_distribution()
        return self._dist  # type: ignore[return-value]

    @property
    def version(self) -> str:
        if self._version is None:
            self._read_distribution()
        return self._version  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"PluginInfo(name={self.name!r}, value={self.value!r})"


def discover(group: str = hookspecs.PROJECT) -> dict[str, PluginInfo]:
    """Scan the entry-point group; raise :class:`PluginError` on a name declared twice."""
    found: dict[str, PluginInfo] = {}
    for ep in entry_points(group=group):
        info = PluginInfo(ep.name, ep.value, entry_point=ep)
        prior = found.get(ep.name)
        if prior is not None and (prior.dist, prior.value) != (info.dist, ep.value):
            raise PluginError(
                f"plugin name {ep.name!r} is declared by two distributions: "
                f"{prior.dist} {prior.version} ({prior.value}) and {info.dist} {info.version} "
                f"({ep.value}); uninstall one of them", plugin=ep.name, dist=info.dist)
        found[ep.name] = info
    return found


async def await_me_maybe(value: Any) -> Any:
    """Await ``value`` if it is awaitable (lifecycle hooks may be async)."""
    if inspect.isawaitable(value):
        return await value
    return value


class PluginManager(pluggy.PluginManager):
    """pluggy's manager with lazy by-name loading and typed hook calls."""

    def __init__(self, available: dict[str, PluginInfo] | None = None) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.available = discover() if available is None else available
        self.disabled = {n.strip() for n in os.environ.get("PYDAPR_DISABLED_PLUGINS", "").split(",")
                         if n.strip()}
        if os.environ.get("PYDAPR_TRACE_PLUGINS"):
            self.trace.root.setwriter(log.debug)
            self.enable_tracing()

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        if not name.startswith("pydapr_"):
            return None
        return super().parse_hookimpl_opts(plugin, name)

    # -- loading ------------------------------------------------------------------

    def load(self, name: str) -> bool:
        """Import and register the plugin declared under entry-point ``name``.

        :returns: False when no installed plugin has that name.
        """
        if self.has_plugin(name):
            return True
        info = self.available.get(name)
        if info is None:
            return False
        if name in self.disabled:
            raise PluginError(f"plugin {name!r} is disabled by PYDAPR_DISABLED_PLUGINS", plugin=name)
        ep = info.entry_point or next(e for e in entry_points(group=hookspecs.PROJECT, name=name))
        try:
            obj = ep.load()
        except Exception as exc:
            raise PluginError(f"plugin {name!r} from {info.dist} failed to import: {exc}",
                              plugin=name, dist=info.dist) from exc
        if self.is_registered(obj):  # an alias (state.postgres) of a module already loaded
            return True
        try:
            self.register(obj, name=name)
            self.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name!r} from {info.dist} is invalid: {exc}",
                              plugin=name, dist=info.dist) from exc
        return True

    def load_blocks(self) -> None:
        """Load every ``api.*`` building block: they are always present."""
        for name in sorted(self.available):
            if name.startswith("api.") and name not in self.disabled:
                self.load(name)

    def load_types(self, type_names: Iterable[str]) -> None:
        """Load the plugins that provide the given Dapr types, when installed."""
        for type_name in type_names:
            self.load(type_name)

    # -- typed hook calls -----------------------------------------------------------

    def registry(self) -> Registry:
        """Build the descriptor tables from the registration hooks (no duplicates)."""
        reg = Registry()
        hooks = (("pydapr_component_types", reg.add_component),
                 ("pydapr_middleware_types", reg.add_middleware),
                 ("pydapr_building_blocks", reg.add_block))
        for hook_name, add in hooks:
            for impl in getattr(self.hook, hook_name).get_hookimpls():
                for item in impl.function() or ():
                    add(item, impl.plugin_name)
        return reg

    async def startup(self, runtime: Any) -> None:
        for result in self.hook.pydapr_startup(runtime=runtime):
            await await_me_maybe(result)

    async def shutdown(self, runtime: Any) -> None:
        for result in self.hook.pydapr_shutdown(runtime=runtime):
            await await_me_maybe(result)

    async def resources_reloaded(self, runtime: Any, added: list, removed: list,
                                 updated: list) -> None:
        for result in self.hook.pydapr_resources_reloaded(
                runtime=runtime, added=added, removed=removed, updated=updated):
            await await_me_maybe(result)
