"""Resiliency policy parsing and resolution (spec 9.3)."""
from __future__ import annotations

import asyncio

import pytest

from pydapr.errors import ConfigError
from pydapr.resiliency import CircuitOpen, Resiliency
from pydapr.resources import Resiliency as Res


def res(spec: dict) -> Resiliency:
    return Resiliency([Res("Resiliency", "dapr.io/v1alpha1", "r", "", [], "r.yaml#1", {}, spec=spec)])


SPEC = {
    "policies": {
        "timeouts": {"quick": "50ms"},
        "retries": {
            "three": {"policy": "constant", "duration": "1ms", "maxRetries": 3},
            "expo": {"policy": "exponential", "duration": "10ms", "maxInterval": "40ms", "maxRetries": -1,
                     "matching": {"httpStatusCodes": "500-599,429"}},
            "DefaultPubsubComponentInboundRetryPolicy": {"duration": "2ms", "maxRetries": 1},
        },
        "circuitBreakers": {"cb": {"maxRequests": 1, "timeout": "1h", "trip": "consecutiveFailures >= 2"}},
    },
    "targets": {"components": {"mq": {"inbound": {"timeout": "quick", "retry": "three"}},
                               "cbq": {"outbound": {"circuitBreaker": "cb"}}},
                "apps": {"b": {"retry": "expo", "timeout": "2s"}}},
}


def test_named_target_and_defaults() -> None:
    r = res(SPEC)
    p = r.for_component("mq", "inbound", "pubsub")
    assert p.timeout == 0.05 and p.retry is not None and p.retry.max_retries == 3
    d = r.for_component("other", "inbound", "pubsub")
    assert d.retry is not None and d.retry.name == "DefaultPubsubComponentInboundRetryPolicy"
    assert r.for_component("other", "outbound", "pubsub").retry is None
    app = r.for_app("b")
    assert app.timeout == 2.0 and app.retry is not None and app.retry.policy == "exponential"


def test_exponential_delays_are_capped() -> None:
    retry = res(SPEC).for_app("b").retry
    assert retry is not None
    assert all(0 < retry.delay(n) <= 0.04 for n in range(1, 20))


async def test_run_retries_then_raises_the_last_error() -> None:
    calls = []

    async def fail() -> None:
        calls.append(1)
        raise ValueError("boom")
    with pytest.raises(ValueError):
        await res(SPEC).for_component("mq", "inbound").run(fail)
    assert len(calls) == 4  # one attempt and three retries


async def test_timeout_per_attempt() -> None:
    async def hang() -> None:
        await asyncio.sleep(10)
    with pytest.raises(asyncio.TimeoutError):
        await res(SPEC).for_component("mq", "inbound").run(hang)


async def test_status_matching_stops_retries() -> None:
    class Err(Exception):
        http_status = 400
    calls = []

    async def fail() -> None:
        calls.append(1)
        raise Err()
    with pytest.raises(Err):
        await res(SPEC).for_app("b").run(fail)
    assert len(calls) == 1


async def test_circuit_breaker_opens() -> None:
    p = res(SPEC).for_component("cbq", "outbound")

    async def fail() -> None:
        raise ValueError()
    for _ in range(2):
        with pytest.raises(ValueError):
            await p.run(fail)
    with pytest.raises(CircuitOpen):
        await p.run(fail)


@pytest.mark.parametrize("spec", [
    {"policies": {"retries": {"x": {"policy": "linear"}}}},
    {"policies": {"timeouts": {"x": "soon"}}},
    {"policies": {"retries": {"x": {"matching": {"httpStatusCodes": "700"}}}}},
    {"targets": {"apps": {"b": {"retry": "missing"}}}},
])
def test_invalid_specs_name_the_field(spec: dict) -> None:
    with pytest.raises(ConfigError, match="r.yaml#1"):
        res(spec)
