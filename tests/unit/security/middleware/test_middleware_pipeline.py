"""httpPipeline / appHttpPipeline, ratelimit and routerchecker."""
from __future__ import annotations

import json

import pytest

from pydapr import hookimpl
from pydapr.errors import StartupError
from pydapr.registry import MiddlewareType
from pydapr.server.httpclient import ClientResponse
from pydapr.server.request import Response


class _Tag:
    """Appends its component name to ``x-trace`` (shows the order the chain runs in)."""

    def __init__(self, info, properties, runtime):
        self.name = info.name
        self.closed = False

    async def __call__(self, request, call_next):
        trace = request.headers.get("x-trace")
        request.headers["x-trace"] = f"{trace},{self.name}" if trace else self.name
        return await call_next(request)

    async def close(self):
        self.closed = True


class _TagPlugin:
    @hookimpl
    def pydapr_middleware_types(self):
        return [MiddlewareType("middleware.http.tag", "v1", _Tag)]


async def test_handlers_run_in_list_order(runtime, call, oidc):
    pipeline, component = oidc
    rt = await runtime(config=pipeline([("second", "middleware.http.tag"),
                                        ("first", "middleware.http.tag")]),
                       resources=component("first", "middleware.http.tag")
                       + component("second", "middleware.http.tag"), plugins=(_TagPlugin(),))
    resp = await call(rt, "GET", "/v1.0/echo", {"x-trace": "caller"})
    assert json.loads(resp.body)["headers"]["x-trace"] == "caller,second,first"
    rt.fallback = lambda req: Response.json(req.headers)  # the invoke fallback is behind it too
    fallback = await call(rt, "POST", "/not/a/route")
    assert json.loads(fallback.body)["x-trace"] == "second,first"


@pytest.mark.parametrize("handlers, resources, message", [
    ([("absent", "middleware.http.tag")], "", "no loaded Component named 'absent'"),
    ([("t", "middleware.http.ratelimit")], "t:middleware.http.tag",
     "no loaded Component named 't'"),
    ([("t", "middleware.http.nosuch")], "t:middleware.http.nosuch", "unknown middleware type"),
    ([("t", "state.redis")], "", "is not an HTTP middleware"),
])
async def test_pipeline_mistakes_stop_startup(runtime, oidc, handlers, resources, message):
    pipeline, component = oidc
    res = "".join(component(*r.split(":")) for r in resources.split() if r)
    with pytest.raises(StartupError, match=message):
        await runtime(config=pipeline(handlers), resources=res, plugins=(_TagPlugin(),))


async def test_fails_closed_until_components_are_up(runtime, call, oidc):
    pipeline, component = oidc
    rt = await runtime(config=pipeline([("t", "middleware.http.tag")]),
                       resources=component("t", "middleware.http.tag"), plugins=(_TagPlugin(),),
                       start=False)
    assert (await call(rt, "GET", "/v1.0/echo")).status == 503
    await rt.init_components()
    assert (await call(rt, "GET", "/v1.0/echo")).status == 200  # built on first use


async def test_middleware_init_failure_stops_startup(runtime, oidc):
    pipeline, component = oidc
    with pytest.raises(StartupError, match="middleware rc .* invalid regular expression"):
        await runtime(config=pipeline([("rc", "middleware.http.routerchecker")]),
                      resources=component("rc", "middleware.http.routerchecker", rule="(unclosed"))


async def test_ratelimit_per_client_ignores_forwarded_for(runtime, call, oidc):
    pipeline, component = oidc
    rt = await runtime(config=pipeline([("rl", "middleware.http.ratelimit")]),
                       resources=component("rl", "middleware.http.ratelimit",
                                           maxRequestsPerSecond=2))
    a, b = ("127.0.0.1", 1), ("127.0.0.2", 2)
    statuses = []
    for i in range(4):
        resp = await call(rt, "GET", "/v1.0/echo", {"x-forwarded-for": f"10.0.0.{i}"}, peer=a)
        statuses.append(resp.status)
    assert statuses[:2] == [200, 200] and statuses[-1] == 429
    refused = await call(rt, "GET", "/v1.0/echo", peer=a)
    assert refused.status == 429 and ("retry-after", "1") in refused.headers
    assert (await call(rt, "GET", "/v1.0/echo", peer=b)).status == 200


async def test_ratelimit_must_be_positive(runtime, oidc):
    pipeline, component = oidc
    with pytest.raises(StartupError, match="greater than 0"):
        await runtime(config=pipeline([("rl", "middleware.http.ratelimit")]),
                      resources=component("rl", "middleware.http.ratelimit",
                                          maxRequestsPerSecond=0))


@pytest.mark.parametrize("rule, path, query, status", [
    (r"^[A-Za-z0-9/._-]+$", "/v1.0/echo", "", 200),
    (r"^[A-Za-z0-9/._-]+$", "/v1.0/echo", "x=1", 400),             # the query is part of the URI
    (r"^[A-Za-z0-9/._-]+$", "/v1.0/ech%6F", "", 400),
    (r"^[^.]*/echo", "/v1%2E0/echo", "", 400),                      # decoded form must match too
    (r"/v1\.0/echo", "/v1.0/echo/async", "", 200),                  # searched, not anchored
    (r"^/v1\.0/metadata$", "/v1.0/echo", "", 400),
])
async def test_routerchecker(runtime, call, oidc, rule, path, query, status):
    pipeline, component = oidc
    rt = await runtime(config=pipeline([("rc", "middleware.http.routerchecker")]),
                       resources=component("rc", "middleware.http.routerchecker", rule=rule))
    resp = await call(rt, "GET", path, query=query)
    assert resp.status == status
    if status == 400:
        assert resp.body == b"invalid router"


async def test_app_pipeline_wraps_calls_into_the_app(runtime, oidc):
    pipeline, component = oidc
    rt = await runtime(config=pipeline([("rl", "middleware.http.ratelimit"),
                                        ("t", "middleware.http.tag")], field="appHttpPipeline"),
                       resources=component("rl", "middleware.http.ratelimit",
                                           maxRequestsPerSecond=1)
                       + component("t", "middleware.http.tag"), plugins=(_TagPlugin(),))
    sent = []

    class FakeChannel:  # stands in for AppChannel.call_http (the real one is tested elsewhere)
        async def call_http(self, method, target, headers=None, body=b"", timeout=None):
            sent.append((method, target, dict(headers), body, timeout))
            return ClientResponse(201, [("content-type", "text/plain"), ("x-app", "1")], b"done")
    rt.app_channel = FakeChannel()
    first = await rt.app_pipeline.call_http("POST", "/orders?id=1", [("X-Trace", "sidecar")],
                                            b"{}", 2.5)
    assert (first.status, first.body, first.header("x-app")) == (201, b"done", "1")
    assert sent == [("POST", "/orders?id=1", {"x-trace": "sidecar,t"}, b"{}", 2.5)]
    second = await rt.app_pipeline.call_http("GET", "/again")
    assert second.status == 429 and second.header("content-type").startswith("text/plain")
    assert len(sent) == 1  # the app was not called
    assert (await rt.app_pipeline.call_http("GET", "/x")).status == 429
    tag = rt.blocks["api.security"].pipelines.instances["t"]
    await rt.stop_blocks()
    assert tag.closed


async def test_no_app_pipeline_configured_leaves_the_hook_empty(runtime):
    rt = await runtime()
    assert rt.app_pipeline is None and rt.route_filter is None
