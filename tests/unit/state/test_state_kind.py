"""The state kind's helpers: key prefixes, TTL and ETag parsing, the query language."""
from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from pydapr.errors import ConfigError, ETagInvalid, ETagMismatch
from pydapr.kinds import ComponentInfo
from pydapr.kinds.state import (FIRST_WRITE, GetRequest, SetRequest, StateOptions, key_prefix,
                                parse_etag, parse_ttl)
from pydapr.kinds.state_query import matches, order, parse_query
from pydapr.testing.conformance.state import make_component


def info(prefix: str | None, app_id: str = "app", name: str = "store") -> ComponentInfo:
    props = {} if prefix is None else {"KeyPrefix": prefix}
    return ComponentInfo(name, "state.in-memory", app_id=app_id, properties=props)


@pytest.mark.parametrize("prefix, namespace, expected", [
    (None, "", "app||"), ("appid", "", "app||"), ("AppID", "", "app||"), ("name", "", "store||"),
    ("namespace", "prod", "prod.app||"), ("namespace", "", "app||"), ("none", "", ""),
    ("NONE", "", ""), ("team-a", "", "team-a||"),
])
def test_key_prefix(monkeypatch: pytest.MonkeyPatch, prefix: str | None, namespace: str,
                    expected: str) -> None:
    monkeypatch.setenv("NAMESPACE", namespace)
    assert key_prefix(info(prefix)) == expected


def test_key_prefix_without_app_id_and_with_separator() -> None:
    assert key_prefix(info(None, app_id="")) == ""
    with pytest.raises(ConfigError, match="can't contain"):
        key_prefix(info("a||b"))


def test_ttl_and_etag_parsing() -> None:
    assert parse_ttl({}) is None and parse_ttl({"ttlInSeconds": "-1"}) is None
    assert parse_ttl({"ttlInSeconds": "5"}) == 5
    with pytest.raises(ValueError, match="ttlInSeconds"):
        parse_ttl({"ttlInSeconds": "5s"})
    assert parse_etag("42") == 42
    with pytest.raises(ETagInvalid):
        parse_etag("W/abc")
    with pytest.raises(ValueError, match="concurrency"):
        StateOptions("first")


@pytest.mark.parametrize("query, problem", [
    ({"filter": {"LIKE": {"a": 1}}}, "unknown filter operator"),
    ({"filter": {"EQ": {"a": 1, "b": 2}}}, "exactly one field"),
    ({"filter": {"IN": {"a": []}}}, "non-empty list"),
    ({"filter": {"AND": []}}, "non-empty list"),
    ({"filter": {"EQ": {"a..b": 1}}}, "dotted path"),
    ({"sort": [{"key": "a", "order": "UP"}]}, "ASC or DESC"),
    ({"page": {"limit": -1}}, "non-negative"),
    ({"filters": {}}, "unknown query field"),
])
def test_query_errors_say_what_is_wrong(query: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_query(query)


def test_query_evaluation_types_and_missing_fields() -> None:
    flt = parse_query({"filter": {"OR": [{"GT": {"n": 1}}, {"EQ": {"tag": "x"}}]}}).filter
    assert matches(flt, {"n": 2}) and matches(flt, {"tag": "x"})
    assert not matches(flt, {"n": "2"}) and not matches(flt, {})  # a string sorts below numbers
    rows = [("k1", {"n": 2}, "k1"), ("k2", {}, "k2"), ("k3", {"n": 1}, "k3")]
    sort = parse_query({"sort": [{"key": "n"}]}).sort
    assert order(rows, sort) == ["k3", "k1", "k2"]
    assert order(rows, parse_query({"sort": [{"key": "n", "order": "DESC"}]}).sort) == ["k2", "k1", "k3"]


# -- sqlite: a file shared by several sidecars --------------------------------------------------


async def test_sqlite_sidecars_sharing_a_file(tmp_path: Path) -> None:
    md = {"connectionString": str(tmp_path / "shared.db"), "cleanupInterval": "0"}
    stores = []
    for _ in range(3):
        store, decoded = make_component("state.sqlite", md)
        await store.init(decoded)
        stores.append(store)
    try:
        fw = StateOptions(FIRST_WRITE)
        results = await asyncio.gather(*(s.set(SetRequest("k", str(i).encode(), options=fw))
                                         for i, s in enumerate(stores)), return_exceptions=True)
        assert sum(r is None for r in results) == 1
        assert all(isinstance(r, ETagMismatch) for r in results if r is not None)
        got = [await s.get(GetRequest("k")) for s in stores]
        assert len({(g.data, g.etag) for g in got}) == 1  # every sidecar reads the winner
        with sqlite3.connect(tmp_path / "shared.db") as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        for s in stores:
            await s.close()


async def test_sqlite_sweep_deletes_expired_rows_once(tmp_path: Path) -> None:
    md = {"connectionString": str(tmp_path / "ttl.db"), "cleanupInterval": "1h"}
    a, da = make_component("state.sqlite", md)
    b, db_ = make_component("state.sqlite", md)
    await a.init(da)
    await b.init(db_)
    try:
        await a.set(SetRequest("gone", b"1", metadata={"ttlInSeconds": "1"}))
        await a.set(SetRequest("kept", b"1"))
        deadline = time.monotonic() + 5
        while await a.get(GetRequest("gone")) is not None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(a._pool, a.sweep) == 1
        assert await loop.run_in_executor(b._pool, b.sweep) == 0  # the other sidecar did it
        with sqlite3.connect(tmp_path / "ttl.db") as conn:
            assert [r[0] for r in conn.execute("SELECT key FROM state")] == ["kept"]
    finally:
        await a.close()
        await b.close()
