"""Name resolvers: sqlite (the default, with heartbeats), static, mdns."""
from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from pydapr.components.nameresolution.sqlite import SQLiteResolver, SQLiteResolverMetadata
from pydapr.components.nameresolution.static import StaticMetadata, StaticResolver
from pydapr.errors import ConfigError
from pydapr.kinds import ComponentInfo
from pydapr.kinds.nameresolution import Registration, advertised_host
from pydapr.metadata import Duration, decode


def info(type_name: str) -> ComponentInfo:
    return ComponentInfo("nameresolution", type_name)


async def sqlite_resolver(path, **kw) -> SQLiteResolver:
    r = SQLiteResolver(info("nameresolution.sqlite"))
    await r.init(SQLiteResolverMetadata(connection_string=str(path), **kw))
    return r


async def test_sqlite_sidecars_find_each_other(tmp_path):
    db = tmp_path / "nr.db"
    a, b = await sqlite_resolver(db), await sqlite_resolver(db)
    await a.register(Registration("appa", "default", "127.0.0.1", 5001, "public"))
    await b.register(Registration("appb", "ns2", "127.0.0.1", 5002))
    assert await b.resolve("appa", "default") == Registration("appa", "default", "127.0.0.1", 5001,
                                                               "public")
    assert (await a.resolve("appb", "ns2")).port == 5002
    with pytest.raises(LookupError):
        await a.resolve("appb", "default")   # namespaces are part of the key
    await b.close()
    a.forget("appb", "ns2")
    with pytest.raises(LookupError):
        await a.resolve("appb", "ns2")       # a sidecar that stops removes its row
    await a.close()


async def test_sqlite_stale_rows_expire_and_heartbeats_keep_rows_fresh(tmp_path):
    db = tmp_path / "nr.db"
    live = await sqlite_resolver(db, update_interval=Duration(0.05), timeout=Duration(0.5),
                                 cache_ttl=Duration(0))
    reader = await sqlite_resolver(db, timeout=Duration(0.5), cache_ttl=Duration(0))
    await live.register(Registration("live", "default", "127.0.0.1", 1))
    with sqlite3.connect(db) as conn:  # a sidecar that died without saying so
        conn.execute("INSERT INTO sidecars VALUES ('dead', 'dead', 'default', '127.0.0.1', 2, '', 0, ?)",
                     (time.time() - 5,))
    with pytest.raises(LookupError):
        await reader.resolve("dead", "default")
    await asyncio.sleep(0.8)               # longer than the timeout: only heartbeats keep it
    assert (await reader.resolve("live", "default")).port == 1
    await live.close()
    await reader.close()


async def test_sqlite_default_path_is_under_pydapr_home(tmp_path, monkeypatch):
    monkeypatch.setenv("PYDAPR_HOME", str(tmp_path))
    r = SQLiteResolver(info("nameresolution.sqlite"))
    await r.init(SQLiteResolverMetadata())
    assert r.path == str(tmp_path / "nameresolution.db")
    await r.close()


async def test_static_map():
    r = StaticResolver(info("nameresolution.static"))
    await r.init(decode(StaticMetadata, {"apps": '{"orders": "10.0.0.5:50002", '
                                                 '"billing.finance": "10.0.0.6:7", '
                                                 '"ledger": {"address": "h:9", "trustDomain": "x"}}'}))
    assert await r.resolve("orders", "any") == Registration("orders", "any", "10.0.0.5", 50002)
    assert (await r.resolve("billing", "finance")).port == 7
    with pytest.raises(LookupError):
        await r.resolve("billing", "default")
    assert (await r.resolve("ledger", "default")).trust_domain == "x"


@pytest.mark.parametrize("apps", ['{"a": "nohost"}', '{"a": "h:0"}', '[1]', "not json"])
async def test_static_map_rejects_bad_entries(apps):
    with pytest.raises(ConfigError):
        await StaticResolver(info("nameresolution.static")).init(StaticMetadata(apps=apps))


def test_advertised_host():
    assert advertised_host("127.0.0.1") == "127.0.0.1"
    assert advertised_host("0.0.0.0") != "0.0.0.0"


async def test_mdns_announce_and_resolve():
    pytest.importorskip("zeroconf")
    from pydapr.components.nameresolution.mdns import MDNSMetadata, MDNSResolver
    a = MDNSResolver(info("nameresolution.mdns"))
    b = MDNSResolver(info("nameresolution.mdns"))
    md = MDNSMetadata(resolve_timeout=Duration(5.0), loopback=True)
    await a.init(md)
    await b.init(md)
    try:
        await a.register(Registration("mdns-app", "default", "127.0.0.1", 4242, "public"))
        found = await b.resolve("mdns-app", "default")
        assert (found.host, found.port, found.trust_domain) == ("127.0.0.1", 4242, "public")
        with pytest.raises(LookupError):
            b.md = MDNSMetadata(resolve_timeout=Duration(0.1), loopback=True)
            await b.resolve("nobody", "default")
    finally:
        await a.close()
        await b.close()
