"""The state-store conformance suite: one set of behavioural tests for every ``state.*`` type.

A store passes by running this suite. Two ways, both through pydapr's pytest plugin:

* one line of pytest configuration (ini or ``[tool.pytest.ini_options]``)::

      pydapr_conformance = state.acme

  optionally with ``pydapr_conformance_metadata = key=value`` lines, or a
  session-scoped fixture ``pydapr_conformance_metadata`` returning a dict, for
  the component's metadata;

* or a subclass in a test module::

      class TestAcme(StateConformance):
          component_type = "state.acme"
          metadata = {"connectionString": "..."}

Tests are gated by the store's ``features`` (``ETAG``, ``TTL``,
``TRANSACTIONAL``, ``QUERY_API``): a store without one skips its tests with
the reason. The suite drives the store through the kind interface only
(:mod:`pydapr.kinds.state`), on its own event loop, so it needs no asyncio
plugin configuration. Keys are unique per run, so a shared server is safe.
"""
from __future__ import annotations

import asyncio
import calendar
import time
import uuid
from typing import Any, Awaitable, Callable, ClassVar

import pytest

from ...errors import ETagInvalid, ETagMismatch
from ...kinds import ComponentInfo, Feature
from ...kinds.state import (FIRST_WRITE, DeleteRequest, GetRequest, Querier, QueryRequest,
                            SetRequest, StateOptions, StateStore, TransactionalStateOperation,
                            TransactionalStore)
from ...kinds.state_query import parse_query

__all__ = ["StateConformance", "StoreHarness", "make_component", "SUITE"]

FW = StateOptions(FIRST_WRITE)


def make_component(type_name: str, metadata: dict[str, str], name: str = "conformance",
                   app_id: str = "conformance") -> Any:
    """Create (not initialise) a component of ``type_name`` from its installed plugin.

    :returns: ``(instance, decoded metadata)``.
    """
    from ...metadata import decode
    from ...pluginmanager import PluginManager
    pm = PluginManager()
    if not pm.load(type_name):
        raise LookupError(f"no installed plugin offers {type_name!r} (entry point group 'pydapr')")
    ctype = pm.registry().component(type_name, "v1")
    info = ComponentInfo(name, type_name, "v1", app_id, "default", dict(metadata))
    instance = ctype.factory(info)
    mtype = getattr(instance, "metadata_type", None)
    return instance, (decode(mtype, metadata, f"component {name}") if mtype else dict(metadata))


class StoreHarness:
    """A store initialised on a private event loop, with helpers for the tests."""

    def __init__(self, type_name: str, metadata: dict[str, str]) -> None:
        self.loop = asyncio.new_event_loop()
        self.prefix = f"conf-{uuid.uuid4().hex[:10]}||"
        self.store: StateStore
        instance, md = make_component(type_name, metadata)
        self.run(instance.init(md))
        self.store = instance

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def key(self, name: str) -> str:
        return self.prefix + name

    def require(self, *features: Feature) -> None:
        missing = [f.value for f in features if f not in self.store.features]
        if missing:
            pytest.skip(f"{self.store.info.type} does not declare {', '.join(missing)}")

    def close(self) -> None:
        try:
            self.run(self.store.close())
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()


def case(*features: Feature) -> Callable[[Callable[..., Awaitable[None]]], Callable[..., None]]:
    """Turn ``async def test_x(self, h)`` into a test that needs ``features`` and runs on the
    harness loop."""
    def deco(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
        def test(self: Any, state_harness: StoreHarness) -> None:
            state_harness.require(*features)
            state_harness.run(fn(self, state_harness))
        test.__name__, test.__qualname__, test.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
        return test
    return deco


async def _value(h: StoreHarness, name: str) -> bytes | None:
    got = await h.store.get(GetRequest(h.key(name)))
    return None if got is None else got.data


async def _etag(h: StoreHarness, name: str) -> str:
    got = await h.store.get(GetRequest(h.key(name)))
    assert got is not None and got.etag, f"{name} should exist and carry an etag"
    return got.etag


def _set(h: StoreHarness, name: str, value: bytes, etag: str | None = None,
         options: StateOptions = StateOptions(), **metadata: str) -> SetRequest:
    return SetRequest(h.key(name), value, etag, dict(metadata), options)


class StateConformance:
    """Subclass with ``component_type`` (and ``metadata``) to run the suite against a store."""

    component_type: ClassVar[str] = ""
    metadata: ClassVar[dict[str, str]] = {}
    #: local servers the store needs (``redis``, ``postgres``): checked with require_server
    servers: ClassVar[tuple[str, ...]] = ()

    @pytest.fixture(scope="class")
    @classmethod
    def state_harness(cls, pydapr_conformance_metadata: Any) -> Any:
        from .. import require_server
        for server in cls.servers:
            require_server(server)
        md = pydapr_conformance_metadata if pydapr_conformance_metadata is not None else cls.metadata
        harness = StoreHarness(cls.component_type, dict(md))
        yield harness
        harness.close()

    # -- basic CRUD ---------------------------------------------------------------------

    @case()
    async def test_get_missing_is_none(self, h: StoreHarness) -> None:
        assert await h.store.get(GetRequest(h.key("never-written"))) is None

    @case()
    async def test_set_get_round_trip_exact_bytes(self, h: StoreHarness) -> None:
        json_text = b'{"b": 1,  "a": [true, null, "x"]}'
        binary = bytes(range(256)) + b"\x00\xff"
        await h.store.set(SetRequest(h.key("json"), json_text, is_json=True))
        await h.store.set(SetRequest(h.key("bin"), binary))
        await h.store.set(SetRequest(h.key("str"), b'"quoted"', is_json=True))
        assert await _value(h, "json") == json_text
        assert await _value(h, "bin") == binary
        assert await _value(h, "str") == b'"quoted"'
        assert await _etag(h, "json")

    @case()
    async def test_overwrite_replaces_value(self, h: StoreHarness) -> None:
        await h.store.set(_set(h, "ow", b"1"))
        await h.store.set(_set(h, "ow", b"2"))
        assert await _value(h, "ow") == b"2"

    @case()
    async def test_delete(self, h: StoreHarness) -> None:
        await h.store.set(_set(h, "del", b"1"))
        await h.store.delete(DeleteRequest(h.key("del")))
        assert await _value(h, "del") is None
        await h.store.delete(DeleteRequest(h.key("del")))  # missing key, no etag: fine

    @case()
    async def test_bulk_get_in_order_with_missing(self, h: StoreHarness) -> None:
        await h.store.bulk_set([_set(h, "b1", b"1"), _set(h, "b2", b"2")])
        items = await h.store.bulk_get([GetRequest(h.key(k)) for k in ("b2", "nope", "b1")], 2)
        assert [i.key for i in items] == [h.key("b2"), h.key("nope"), h.key("b1")]
        assert [i.data for i in items] == [b"2", None, b"1"]
        assert items[0].etag and not items[1].error

    @case()
    async def test_bulk_delete(self, h: StoreHarness) -> None:
        await h.store.bulk_set([_set(h, "bd1", b"1"), _set(h, "bd2", b"2")])
        await h.store.bulk_delete([DeleteRequest(h.key("bd1")), DeleteRequest(h.key("bd2"))])
        assert await _value(h, "bd1") is None and await _value(h, "bd2") is None

    # -- ETags and concurrency --------------------------------------------------------------

    @case(Feature.ETAG)
    async def test_etag_changes_on_every_write(self, h: StoreHarness) -> None:
        await h.store.set(_set(h, "e", b"1"))
        first = await _etag(h, "e")
        await h.store.set(_set(h, "e", b"1"))
        assert await _etag(h, "e") != first

    @case(Feature.ETAG)
    async def test_set_with_matching_etag(self, h: StoreHarness) -> None:
        await h.store.set(_set(h, "em", b"1"))
        await h.store.set(_set(h, "em", b"2", await _etag(h, "em")))
        assert await _value(h, "em") == b"2"

    @case(Feature.ETAG)
    async def test_set_with_stale_etag_is_refused(self, h: StoreHarness) -> None:
        await h.store.set(_set(h, "es", b"1"))
        stale = await _etag(h, "es")
        await h.store.set(_set(h, "es", b"2"))
        with pytest.raises(ETagMismatch):
            await h.store.set(_set(h, "es", b"3", stale))
        assert await _value(h, "es") == b"2"

    @case(Feature.ETAG)
    async def test_etag_on_missing_key_is_a_mismatch(self, h: StoreHarness) -> None:
        with pytest.raises(ETagMismatch):
            await h.store.set(_set(h, "em-missing", b"1", "12345"))
        with pytest.raises(ETagMismatch):
            await h.store.delete(DeleteRequest(h.key("em-missing"), "12345"))
        assert await _value(h, "em-missing") is None

    @case(Feature.ETAG)
    async def test_unreadable_etag_is_refused(self, h: StoreHarness) -> None:
        await h.store.set(_set(h, "eu", b"1"))
        with pytest.raises((ETagInvalid, ETagMismatch)):
            await h.store.set(_set(h, "eu", b"2", "not an etag"))
        assert await _value(h, "eu") == b"1"

    @case(Feature.ETAG)
    async def test_delete_with_etag(self, h: StoreHarness) -> None:
        await h.store.set(_set(h, "de", b"1"))
        stale = await _etag(h, "de")
        await h.store.set(_set(h, "de", b"2"))
        with pytest.raises(ETagMismatch):
            await h.store.delete(DeleteRequest(h.key("de"), stale))
        assert await _value(h, "de") == b"2"
        await h.store.delete(DeleteRequest(h.key("de"), await _etag(h, "de")))
        assert await _value(h, "de") is None

    @case(Feature.ETAG)
    async def test_first_write(self, h: StoreHarness) -> None:
        await h.store.set(_set(h, "fw", b"1", options=FW))
        with pytest.raises(ETagMismatch):
            await h.store.set(_set(h, "fw", b"2", options=FW))
        assert await _value(h, "fw") == b"1"
        await h.store.set(_set(h, "fw", b"3", await _etag(h, "fw"), FW))
        assert await _value(h, "fw") == b"3"

    @case(Feature.ETAG)
    async def test_concurrent_first_writes_have_one_winner(self, h: StoreHarness) -> None:
        results = await asyncio.gather(*(h.store.set(_set(h, "race", str(i).encode(), options=FW))
                                         for i in range(8)), return_exceptions=True)
        winners = [i for i, r in enumerate(results) if r is None]
        assert len(winners) == 1, results
        assert all(isinstance(r, ETagMismatch) for r in results if r is not None), results
        assert await _value(h, "race") == str(winners[0]).encode()

    @case(Feature.ETAG)
    async def test_concurrent_writes_with_one_etag_have_one_winner(self, h: StoreHarness) -> None:
        await h.store.set(_set(h, "race2", b"0"))
        etag = await _etag(h, "race2")
        results = await asyncio.gather(*(h.store.set(_set(h, "race2", str(i).encode(), etag))
                                         for i in range(1, 7)), return_exceptions=True)
        assert sum(r is None for r in results) == 1, results

    # -- TTL -------------------------------------------------------------------------------

    @case(Feature.TTL)
    async def test_ttl_expires_and_reports_expire_time(self, h: StoreHarness) -> None:
        before = time.time()
        await h.store.set(_set(h, "ttl", b"1", ttlInSeconds="1"))
        got = await h.store.get(GetRequest(h.key("ttl")))
        assert got is not None
        text = got.metadata["ttlExpireTime"]
        when = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
        assert text.endswith("Z") and before - 1 <= when <= before + 3, text
        deadline = time.monotonic() + 5
        while await _value(h, "ttl") is not None:
            assert time.monotonic() < deadline, "the key did not expire within 5 s of a 1 s TTL"
            await asyncio.sleep(0.1)
        with pytest.raises(ETagMismatch):  # an expired key is missing for ETag checks too
            await h.store.set(_set(h, "ttl", b"2", got.etag))

    @case(Feature.TTL)
    async def test_write_without_ttl_clears_it(self, h: StoreHarness) -> None:
        await h.store.set(_set(h, "ttl2", b"1", ttlInSeconds="100"))
        await h.store.set(_set(h, "ttl2", b"2"))
        await h.store.set(_set(h, "ttl3", b"1", ttlInSeconds="-1"))
        for name in ("ttl2", "ttl3"):
            got = await h.store.get(GetRequest(h.key(name)))
            assert got is not None and "ttlExpireTime" not in got.metadata

    # -- transactions ----------------------------------------------------------------------

    def _tx(self, h: StoreHarness) -> TransactionalStore:
        assert isinstance(h.store, TransactionalStore), "TRANSACTIONAL stores implement multi()"
        return h.store

    @case(Feature.TRANSACTIONAL)
    async def test_transaction_applies_every_operation(self, h: StoreHarness) -> None:
        await h.store.set(_set(h, "t-old", b"x"))
        await self._tx(h).multi([
            TransactionalStateOperation("upsert", _set(h, "t-a", b"1")),
            TransactionalStateOperation("upsert", _set(h, "t-b", b"2")),
            TransactionalStateOperation("delete", DeleteRequest(h.key("t-old"))),
            TransactionalStateOperation("upsert", _set(h, "t-c", b"3")),
            TransactionalStateOperation("delete", DeleteRequest(h.key("t-c"))),
        ], {})
        assert [await _value(h, k) for k in ("t-a", "t-b", "t-old", "t-c")] == [b"1", b"2", None, None]

    @case(Feature.TRANSACTIONAL, Feature.ETAG)
    async def test_failed_transaction_writes_nothing(self, h: StoreHarness) -> None:
        await h.store.set(_set(h, "tf-keep", b"before"))
        await h.store.set(_set(h, "tf-guard", b"g"))
        stale = await _etag(h, "tf-guard")
        await h.store.set(_set(h, "tf-guard", b"g2"))
        for last in (TransactionalStateOperation("upsert", _set(h, "tf-guard", b"x", stale)),
                     TransactionalStateOperation("delete", DeleteRequest(h.key("tf-guard"), stale)),
                     TransactionalStateOperation("upsert", _set(h, "tf-guard", b"x", options=FW))):
            with pytest.raises(ETagMismatch):
                await self._tx(h).multi([
                    TransactionalStateOperation("upsert", _set(h, "tf-keep", b"after")),
                    TransactionalStateOperation("upsert", _set(h, "tf-new", b"new")),
                    TransactionalStateOperation("delete", DeleteRequest(h.key("tf-keep"))),
                    last], {})
            assert await _value(h, "tf-keep") == b"before"
            assert await _value(h, "tf-new") is None
            assert await _value(h, "tf-guard") == b"g2"

    # -- query -----------------------------------------------------------------------------

    @case(Feature.QUERY_API)
    async def test_query_filter_sort_page(self, h: StoreHarness) -> None:
        assert isinstance(h.store, Querier), "QUERY_API stores implement query()"
        people = {"p1": {"name": "ann", "age": 31, "org": {"team": "a"}},
                  "p2": {"name": "bob", "age": 25, "org": {"team": "b"}},
                  "p3": {"name": "cid", "age": 42, "org": {"team": "a"}},
                  "p4": {"name": "dee", "age": 19, "org": {"team": "c"}}}
        import orjson
        prefix = h.key("q-")  # this test's keys only
        await h.store.bulk_set([SetRequest(prefix + k, orjson.dumps(v), is_json=True)
                                for k, v in people.items()])
        await h.store.set(SetRequest(prefix + "raw", b"\x00not json"))
        other = h.prefix.replace("conf-", "other-") + "q-p9"  # another app's key: never returned
        await h.store.set(SetRequest(other, orjson.dumps(people["p1"]), is_json=True))

        async def keys(q: dict[str, Any]) -> tuple[list[str], str]:
            resp = await h.store.query(QueryRequest(parse_query(q), {}, prefix))
            return [i.key[len(prefix):] for i in resp.results], resp.token

        assert (await keys({"filter": {"EQ": {"org.team": "a"}}, "sort": [{"key": "age"}]}))[0] \
            == ["p1", "p3"]
        assert (await keys({"filter": {"IN": {"name": ["bob", "dee"]}},
                            "sort": [{"key": "age", "order": "DESC"}]}))[0] == ["p2", "p4"]
        assert (await keys({"filter": {"OR": [{"GT": {"age": 40}}, {"AND": [
            {"EQ": {"org.team": "b"}}, {"LTE": {"age": 25}}]}]}, "sort": [{"key": "name"}]}))[0] \
            == ["p2", "p3"]
        first, token = await keys({"sort": [{"key": "age"}], "page": {"limit": 3}})
        assert first == ["p4", "p2", "p1"] and token
        rest, token2 = await keys({"sort": [{"key": "age"}], "page": {"limit": 3, "token": token}})
        assert rest == ["p3"] and not token2
        await h.store.delete(DeleteRequest(other))

#: the suite the ``pydapr_conformance`` ini option runs for ``state.*`` types
SUITE = StateConformance
