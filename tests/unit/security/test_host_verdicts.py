"""The Host check's verdict cache gives the regex's answers, before and after it fills."""
from __future__ import annotations

from pydapr.plugins.apisecurity import _HOST_VERDICTS_MAX


async def test_remembered_verdicts_match_the_check_past_the_cache_bound(runtime, call):
    rt = await runtime()
    hosts = [f"127.0.0.1:{port}" for port in range(3000, 3000 + 2 * _HOST_VERDICTS_MAX)]
    hosts += [f"evil{i}.example" for i in range(_HOST_VERDICTS_MAX)]
    for _ in range(2):  # first round fills the cache, the second reads it
        for host in hosts:
            expected = 400 if host.startswith("evil") else 200
            assert (await call(rt, "GET", "/v1.0/echo", {"host": host})).status == expected, host
    # a repeated Host header is joined with ", " and never matches, cached or not
    assert (await call(rt, "GET", "/v1.0/echo", {"host": "localhost, localhost"})).status == 400
    assert (await call(rt, "GET", "/v1.0/echo", {"host": "LOCALHOST"})).status == 200
