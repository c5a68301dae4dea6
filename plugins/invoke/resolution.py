"""The name resolver of this sidecar, from the Configuration's ``spec.nameResolution``.

``component`` names the type (``sqlite``, the default; ``mdns``; ``static``;
or any installed ``nameresolution.<x>`` plugin), ``version`` its version and
``configuration`` its settings, decoded like a component's metadata.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from pydapr.errors import ConfigError
from pydapr.kinds import ComponentInfo
from pydapr.metadata import decode
from pydapr.resources import _scalar

if TYPE_CHECKING:
    from pydapr.kinds.nameresolution import NameResolver
    from pydapr.runtime import Runtime

__all__ = ["ResolverSpec", "resolver_spec", "build_resolver"]


class ResolverSpec:
    def __init__(self, type_name: str, version: str, properties: dict[str, str], where: str) -> None:
        self.type_name = type_name
        self.version = version
        self.properties = properties
        self.where = where


def resolver_spec(runtime: Runtime) -> ResolverSpec:
    """Read and check ``spec.nameResolution``; load the plugin it names.

    :raises ConfigError: on a malformed section or a resolver type that is not installed.
    """
    where = f"{runtime.config.source or 'configuration'}: spec.nameResolution"
    section = runtime.config.section("nameResolution")
    component = str(section.get("component") or "sqlite").strip().lower()
    type_name = component if component.startswith("nameresolution.") else f"nameresolution.{component}"
    version = str(section.get("version") or "v1")
    conf = section.get("configuration") or {}
    if not isinstance(conf, dict):
        raise ConfigError(f"{where}.configuration: must be a mapping")
    if not runtime.pm.load(type_name):
        raise ConfigError(f"{where}.component: no name resolver {type_name!r} is installed "
                          "(built in: sqlite, mdns, static)")
    return ResolverSpec(type_name, version, {str(k): _scalar(v) for k, v in conf.items()}, where)


async def build_resolver(runtime: Runtime, spec: ResolverSpec) -> NameResolver:
    ctype = runtime.pm.registry().component(spec.type_name, spec.version)
    info = ComponentInfo("nameresolution", spec.type_name, spec.version, runtime.app_id,
                         runtime.namespace, spec.properties)
    resolver = ctype.factory(info)
    mtype = getattr(resolver, "metadata_type", None)
    md = decode(mtype, spec.properties, spec.where + ".configuration") if mtype else spec.properties
    await resolver.init(md)
    return resolver
