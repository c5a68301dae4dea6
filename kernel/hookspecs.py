"""The pydapr plugin contract.

A plugin is a module (or object) registered under the ``pydapr`` entry-point
group, the entry-point name being the Dapr type it offers (``state.redis``,
``middleware.http.bearer``) or ``api.<block>`` for a building block. Built-in
plugins are registered exactly like third-party ones.

Lifecycle, in order::

    boot:     load api.* plugins -> read resources -> load the plugins named by
              each resource's spec.type -> pydapr_building_blocks,
              pydapr_component_types, pydapr_middleware_types -> components
              initialised -> servers up -> pydapr_startup
    reload:   pydapr_resources_reloaded (once per reload)
    stop:     pydapr_shutdown -> components closed -> sockets closed

Three rules:

1. No hook runs per request. The request path uses only the objects the hooks
   returned (route table, middleware chain, component instances).
2. Registration hooks return descriptors and have no side effects; the kernel
   flattens, validates and refuses duplicates, naming both sources.
3. Lifecycle hooks may be ``async def``; the kernel awaits what they return.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pluggy import HookimplMarker, HookspecMarker

if TYPE_CHECKING:
    from .registry import BuildingBlock, ComponentType, MiddlewareType
    from .resources import Resource
    from .runtime import Runtime

__all__ = ["hookspec", "hookimpl", "PROJECT"]

PROJECT = "pydapr"
hookspec = HookspecMarker(PROJECT)
hookimpl = HookimplMarker(PROJECT)


# --------------------------------------------------------------------------- registration


@hookspec
def pydapr_component_types() -> list[ComponentType]:
    """Return the component implementations this plugin offers.

    Called once at boot after the plugins named by the resources are loaded,
    and again after a reload loads new plugins. Synchronous.

    :returns: a list of :class:`pydapr.registry.ComponentType`.

    .. versionadded:: 0.1
    """


@hookspec
def pydapr_middleware_types() -> list[MiddlewareType]:
    """Return the HTTP middleware types this plugin offers (``middleware.http.*``).

    Called once at boot, like :func:`pydapr_component_types`. Synchronous.

    :returns: a list of :class:`pydapr.registry.MiddlewareType`.

    .. versionadded:: 0.1
    """


@hookspec
def pydapr_building_blocks() -> list[BuildingBlock]:
    """Return the building blocks this plugin offers (routes and gRPC handlers).

    Called once at boot, before any component is initialised. Synchronous.

    :returns: a list of :class:`pydapr.registry.BuildingBlock`.

    .. versionadded:: 0.1
    """


# --------------------------------------------------------------------------- lifecycle


@hookspec
def pydapr_startup(runtime: Runtime) -> Any:
    """The sidecar is up: every component initialised and both API servers listening.

    Called once per boot. May be ``async def``.

    :param runtime: the running :class:`pydapr.runtime.Runtime`.

    .. versionadded:: 0.1
    """


@hookspec
def pydapr_shutdown(runtime: Runtime) -> Any:
    """The sidecar is stopping; called before components close and sockets shut.

    Called once per boot, within the graceful-shutdown budget. May be ``async def``.

    :param runtime: the stopping :class:`pydapr.runtime.Runtime`.

    .. versionadded:: 0.1
    """


@hookspec
def pydapr_resources_reloaded(runtime: Runtime, added: list[Resource],
                              removed: list[Resource], updated: list[Resource]) -> Any:
    """Resources changed on disk and were applied.

    Called once per reload. May be ``async def``.

    :param runtime: the running :class:`pydapr.runtime.Runtime`.
    :param added: resources new in this reload.
    :param removed: resources gone in this reload.
    :param updated: resources whose spec changed.

    .. versionadded:: 0.1
    """
