"""Every hook of the plugin contract, exercised through the plugin manager."""
from __future__ import annotations

import pytest

from pydapr import hookimpl
from pydapr.errors import PluginError, StartupError
from pydapr.kinds.secretstores import SecretStore
from pydapr.pluginmanager import PluginInfo, PluginManager, discover
from pydapr.registry import BuildingBlock, ComponentType, MiddlewareType, Route


class _Store(SecretStore):
    async def init(self, metadata):
        pass

    async def get_secret(self, name, metadata):
        return {}

    async def bulk_get_secret(self, metadata):
        return {}


def manager(*plugins) -> PluginManager:
    pm = PluginManager(available={})
    for i, p in enumerate(plugins):
        pm.register(p, name=f"p{i}")
    return pm


def test_hook_pydapr_component_types():
    class P:
        @hookimpl
        def pydapr_component_types(self):
            return [ComponentType("secretstores.x", "v1", _Store, aliases=("secretstores.y",),
                                  versions=("v2",))]
    reg = manager(P()).registry()
    assert reg.component("secretstores.y", "v2").factory is _Store
    with pytest.raises(StartupError, match=r"unknown component type secretstores.x/v9 \(versions available"):
        reg.component("secretstores.x", "v9")


def test_hook_pydapr_component_types_duplicate_names_both_plugins():
    class A:
        @hookimpl
        def pydapr_component_types(self):
            return [ComponentType("state.dup", "v1", _Store)]

    class B:
        @hookimpl
        def pydapr_component_types(self):
            return [ComponentType("state.dup", "v1", object)]
    with pytest.raises(PluginError, match=r"registered twice: by p\d and by p\d"):
        manager(A(), B()).registry()


def test_hook_pydapr_middleware_types():
    class P:
        @hookimpl
        def pydapr_middleware_types(self):
            return [MiddlewareType("middleware.http.nop", "v1", lambda *a: None)]
    reg = manager(P()).registry()
    assert reg.middleware_type("middleware.http.nop", "v1").name == "middleware.http.nop"
    with pytest.raises(StartupError):
        reg.middleware_type("middleware.http.other", "v1")


def test_hook_pydapr_building_blocks():
    class P:
        @hookimpl
        def pydapr_building_blocks(self):
            return [BuildingBlock("api.x", lambda rt: None)]
    assert "api.x" in manager(P()).registry().blocks


async def test_hook_pydapr_startup_may_be_async():
    calls = []

    class P:
        @hookimpl
        async def pydapr_startup(self, runtime):
            calls.append(("start", runtime))
    await manager(P()).startup("rt")
    assert calls == [("start", "rt")]


async def test_hook_pydapr_shutdown_may_be_sync():
    calls = []

    class P:
        @hookimpl
        def pydapr_shutdown(self, runtime):
            calls.append(("stop", runtime))
    await manager(P()).shutdown("rt")
    assert calls == [("stop", "rt")]


async def test_hook_pydapr_resources_reloaded():
    seen = {}

    class P:
        @hookimpl
        def pydapr_resources_reloaded(self, runtime, added, removed, updated):
            seen.update(added=added, removed=removed, updated=updated)
    await manager(P()).resources_reloaded("rt", ["a"], ["r"], ["u"])
    assert seen == {"added": ["a"], "removed": ["r"], "updated": ["u"]}


def test_a_misspelled_hook_is_refused():
    class P:
        @hookimpl
        def pydapr_component_typez(self):
            return []
    pm = PluginManager(available={})
    import pluggy
    with pytest.raises(pluggy.PluginValidationError):
        pm.register(P(), name="bad")
        pm.check_pending()


def test_methods_without_the_prefix_are_not_hooks():
    class P:
        def helper(self):
            return 1
    pm = manager(P())
    assert pm.registry().blocks == {}


def test_lazy_loading_by_name_and_disabled_list(monkeypatch):
    monkeypatch.setenv("PYDAPR_DISABLED_PLUGINS", "api.metadata")
    avail = {"api.metadata": PluginInfo("api.metadata", "pydapr.plugins.metadata", "pydapr", "0")}
    pm = PluginManager(available=avail)
    assert pm.load("state.not-installed") is False
    with pytest.raises(PluginError, match="disabled"):
        pm.load("api.metadata")


def test_discovery_reads_distribution_metadata_only_when_asked():
    found = discover()
    info = found["api.metadata"]
    assert info.value == "pydapr.plugins.metadata"
    assert info._dist is None and info._version is None  # nothing parsed yet
    assert info.dist == "pydapr" and info.version and info.version != "?"


def test_route_descriptor_defaults():
    r = Route(("GET",), "/v1.0/x", lambda req: None)
    assert r.api == ""
