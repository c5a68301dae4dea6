"""configuration.redis and configuration.postgresql against the real servers, without a sidecar."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from pydapr.errors import ConfigError
from pydapr.kinds import ComponentInfo
from pydapr.kinds.configuration import ConfigurationItem, UnknownSubscription
from pydapr.metadata import decode
from pydapr.testing import require_server


async def _make(cls, props):
    comp = cls(ComponentInfo("cfg", "configuration.x", app_id="itest", properties=props))
    await comp.init(decode(cls.metadata_type, props))
    return comp


@pytest.fixture
async def redis_store():
    require_server("redis")
    from pydapr.components.configuration.redis import RedisConfiguration
    comp = await _make(RedisConfiguration, {"redisHost": "127.0.0.1:6379"})
    yield comp
    await comp.close()


async def test_redis_enables_keyspace_events_and_reports_deletes(redis_store):
    client = redis_store._client
    await client.config_set("notify-keyspace-events", "")
    key = f"itest-{uuid.uuid4().hex}"
    seen: asyncio.Queue[dict[str, ConfigurationItem]] = asyncio.Queue()
    await redis_store.subscribe("s1", [key], {}, seen.put)
    flags = (await client.config_get("notify-keyspace-events"))["notify-keyspace-events"]
    assert "K" in flags
    await client.set(key, "a||1")
    assert await asyncio.wait_for(seen.get(), 5) == {key: ConfigurationItem("a", "1")}
    await client.delete(key)
    assert await asyncio.wait_for(seen.get(), 5) == {key: ConfigurationItem("", "")}
    await redis_store.unsubscribe("s1")
    with pytest.raises(UnknownSubscription):
        await redis_store.unsubscribe("s1")


async def test_redis_get_without_keys_returns_every_string_key(redis_store):
    client = redis_store._client
    key = f"itest-{uuid.uuid4().hex}"
    await client.set(key, "v||9")
    await client.rpush(f"{key}-list", "not a string key")
    try:
        items = await redis_store.get([], {})
        assert items[key] == ConfigurationItem("v", "9")
        assert f"{key}-list" not in items
    finally:
        await client.delete(key, f"{key}-list")


@pytest.mark.parametrize("table, message", [
    ("configs; DROP TABLE x", "not a plain"),
    (f"missing_{uuid.uuid4().hex[:8]}", "does not exist"),
])
async def test_postgres_table_is_checked(table, message):
    require_server("postgres")
    from pydapr.components.configuration.postgresql import PostgresConfiguration
    props = {"connectionString": "host=127.0.0.1 user=postgres dbname=test", "table": table}
    comp = PostgresConfiguration(ComponentInfo("cfg", "configuration.postgresql", properties=props))
    with pytest.raises(ConfigError, match=message):
        await comp.init(decode(PostgresConfiguration.metadata_type, props))
    await comp.close()


async def test_postgres_subscribe_needs_a_channel():
    require_server("postgres")
    import asyncpg

    from pydapr.components.configuration.postgresql import PostgresConfiguration
    from pydapr.errors import ComponentError
    table = f"itest_cfg_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database="test")
    await conn.execute(f"CREATE TABLE {table} (key text, value text, version text, metadata json)")
    try:
        comp = await _make(PostgresConfiguration, {
            "connectionString": "postgres://postgres@127.0.0.1/test", "table": table})
        with pytest.raises(ComponentError, match="pgNotifyChannel"):
            await comp.subscribe("s", ["k"], {}, lambda items: asyncio.sleep(0))
        await conn.execute(f"INSERT INTO {table} VALUES ('k', 'v', '1', NULL), "
                           "('j', 'w', '2', NULL)")
        assert await comp.get(["k", "zz"], {}) == {"k": ConfigurationItem("v", "1")}
        assert set(await comp.get([], {})) == {"k", "j"}
        await comp.close()
    finally:
        await conn.execute(f"DROP TABLE {table}")
        await conn.close()
