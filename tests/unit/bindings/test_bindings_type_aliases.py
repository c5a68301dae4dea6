"""A type and its alias (bindings.postgresql / bindings.postgres) can both be used by resources."""
from __future__ import annotations

from pydapr.pluginmanager import PluginManager


def test_alias_and_name_load_together():
    pm = PluginManager()
    pm.load_types(["bindings.postgresql", "bindings.postgres", "configuration.postgres",
                   "configuration.postgresql"])
    reg = pm.registry()
    for name in ("bindings.postgresql", "bindings.postgres", "configuration.postgresql",
                 "configuration.postgres"):
        assert reg.component(name, "v1").name.endswith("postgresql")
