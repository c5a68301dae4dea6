"""Publishing without a task: a component that publishes without waiting is answered at once.

``rt.dispatch`` returns a ``Response`` (written in the same turn of the event loop)
when the component's ``publish_nowait`` took the message, and an awaitable when the
component must be awaited: it cannot publish without waiting, or resiliency
policies apply to it.
"""
from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from pydapr import hookimpl
from pydapr.daprd.options import Options
from pydapr.errors import APIError
from pydapr.kinds.pubsub import Message, PubSub, SubscribeRequest, SubscriptionHandle
from pydapr.pluginmanager import PluginManager, discover
from pydapr.registry import ComponentType
from pydapr.runtime import Runtime
from pydapr.server.request import Request, Response


class AwaitedPubSub(PubSub):
    """A broker that must be awaited (publish_nowait left at its default); records publishes."""

    published: list[tuple[str, bytes]] = []

    async def init(self, metadata: Any) -> None:
        pass

    async def publish(self, topic: str, data: bytes, metadata: dict[str, str],
                      content_type: str = "") -> None:
        await asyncio.sleep(0)
        self.published.append((topic, data))

    async def subscribe(self, request: SubscribeRequest, handler: Any) -> SubscriptionHandle:
        return SubscriptionHandle()


class BrokenPubSub(AwaitedPubSub):
    def publish_nowait(self, topic: str, data: bytes, metadata: dict[str, str],
                       content_type: str = "") -> bool:
        raise ConnectionError("queue is closed")


class ConfirmingPubSub(AwaitedPubSub):
    """Sends at once and hands back the future of the broker's confirm, as pubsub.rabbitmq does."""

    confirms: list[asyncio.Future] = []

    def publish_nowait(self, topic: str, data: bytes, metadata: dict[str, str],
                       content_type: str = "") -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.published.append((topic, data))
        self.confirms.append(fut)
        return fut


class _Types:
    @hookimpl
    def pydapr_component_types(self) -> list[ComponentType]:
        return [ComponentType("pubsub.awaited", "v1", AwaitedPubSub),
                ComponentType("pubsub.broken", "v1", BrokenPubSub),
                ComponentType("pubsub.confirming", "v1", ConfirmingPubSub)]


RESOURCES = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: mem}
spec: {type: pubsub.in-memory, version: v1, metadata: []}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: guarded}
spec: {type: pubsub.in-memory, version: v1, metadata: []}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: awaited}
spec: {type: pubsub.awaited, version: v1, metadata: []}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: broken}
spec: {type: pubsub.broken, version: v1, metadata: []}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: confirming}
spec: {type: pubsub.confirming, version: v1, metadata: []}
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: res}
spec:
  policies:
    timeouts: {short: 2s}
  targets:
    components:
      guarded: {outbound: {timeout: short}}
"""


@pytest.fixture
async def rt(tmp_path):
    (tmp_path / "resources.yaml").write_text(RESOURCES)
    pm = PluginManager({k: v for k, v in discover().items()
                        if k in ("api.pubsub", "pubsub.in-memory")})
    pm.register(_Types())
    runtime = Runtime(Options(app_id="pub", resources_paths=[str(tmp_path)]), pm)
    runtime.load()
    runtime.build_blocks()
    await runtime.init_components()
    AwaitedPubSub.published.clear()
    ConfirmingPubSub.confirms.clear()
    yield runtime
    await runtime.close_components()


def _publish(rt: Runtime, name: str, topic: str = "orders") -> Any:
    req = Request("POST", f"/v1.0/publish/{name}/{topic}", "",
                  {"content-type": "application/json"}, b'{"n": 1}', ("127.0.0.1", 1))
    return rt.dispatch(req)


async def _received(rt: Runtime, name: str, topic: str) -> asyncio.Queue[Message]:
    got: asyncio.Queue[Message] = asyncio.Queue()

    async def handler(msg: Message) -> None:
        got.put_nowait(msg)
    await rt.component("pubsub", name).subscribe(SubscribeRequest(topic), handler)
    return got


async def test_in_memory_is_answered_in_the_same_call(rt: Runtime) -> None:
    got = await _received(rt, "mem", "orders")
    result = _publish(rt, "mem")
    assert type(result) is Response and result.status == 204  # no coroutine, no task
    msg = await asyncio.wait_for(got.get(), 2)
    ce = orjson.loads(msg.data)
    assert ce["data"] == {"n": 1} and ce["topic"] == "orders" and ce["pubsubname"] == "mem"


async def test_resiliency_policies_take_the_awaited_path(rt: Runtime) -> None:
    got = await _received(rt, "guarded", "orders")
    result = _publish(rt, "guarded")
    assert asyncio.iscoroutine(result)
    assert got.empty()  # nothing published before the awaited path runs
    assert (await result).status == 204
    assert orjson.loads((await asyncio.wait_for(got.get(), 2)).data)["data"] == {"n": 1}


async def test_a_component_without_nowait_is_awaited(rt: Runtime) -> None:
    result = _publish(rt, "awaited")
    assert asyncio.iscoroutine(result)
    assert AwaitedPubSub.published == []
    assert (await result).status == 204
    assert [t for t, _ in AwaitedPubSub.published] == ["orders"]


async def test_a_failing_nowait_publish_is_a_dapr_error(rt: Runtime) -> None:
    with pytest.raises(APIError) as err:
        _publish(rt, "broken")
    assert err.value.code == "ERR_PUBSUB_PUBLISH_MESSAGE" and err.value.http_status == 500
    assert "queue is closed" in str(err.value)


async def test_checks_still_come_first(rt: Runtime) -> None:
    with pytest.raises(APIError) as err:
        _publish(rt, "nope")
    assert err.value.code == "ERR_PUBSUB_NOT_FOUND"
    with pytest.raises(APIError) as err:
        rt.dispatch(Request("POST", "/v1.0/publish/mem/orders", "",
                            {"content-type": "application/json"}, b"{bad", None))
    assert err.value.code == "ERR_PUBSUB_EVENTS_SER"


async def test_a_replaced_or_closed_component_is_never_published_to(rt: Runtime) -> None:
    old = rt.component("pubsub", "mem")
    assert type(_publish(rt, "mem")) is Response  # the lookups for "mem" are now remembered
    slot = rt.slots["mem"]
    new = type(old)(old.info)
    await new.init(old.md)
    slot.instance = new  # re-initialised in place
    got = await _received(rt, "mem", "orders")
    assert _publish(rt, "mem").status == 204
    assert orjson.loads((await asyncio.wait_for(got.get(), 2)).data)["pubsubname"] == "mem"
    slot.instance = None  # closed
    with pytest.raises(APIError) as err:
        _publish(rt, "mem")
    assert err.value.code == "ERR_PUBSUB_NOT_FOUND"


async def test_a_brokers_confirm_is_waited_on_without_a_task(rt: Runtime) -> None:
    result = _publish(rt, "confirming")
    assert asyncio.isfuture(result) and not isinstance(result, asyncio.Task)
    assert [t for t, _ in AwaitedPubSub.published] == ["orders"]  # sent before any wait
    assert not result.done()
    ConfirmingPubSub.confirms[0].set_result(None)
    assert (await asyncio.wait_for(result, 2)).status == 204


async def test_a_refused_confirm_is_a_dapr_error_over_http_and_grpc(rt: Runtime) -> None:
    result = _publish(rt, "confirming")
    ConfirmingPubSub.confirms[0].set_exception(ConnectionError("broker went away"))
    with pytest.raises(APIError) as err:
        await asyncio.wait_for(result, 2)
    assert err.value.code == "ERR_PUBSUB_PUBLISH_MESSAGE" and "broker went away" in str(err.value)
    publisher = rt.blocks["api.pubsub"].publisher
    pending = asyncio.ensure_future(publisher.publish("confirming", "orders", b"{}",
                                                      "application/json", {}))
    await asyncio.sleep(0)
    ConfirmingPubSub.confirms[1].set_exception(ConnectionError("nack"))
    with pytest.raises(APIError) as err:
        await pending
    assert err.value.code == "ERR_PUBSUB_PUBLISH_MESSAGE" and "nack" in str(err.value)
