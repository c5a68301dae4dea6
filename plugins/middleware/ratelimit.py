"""``middleware.http.ratelimit``: at most ``maxRequestsPerSecond`` per client, else 429.

A token bucket per client address, refilled continuously, with a burst of
one second's worth. The client is the TCP peer: unlike daprd, pydapr does not
believe ``X-Forwarded-For``, which any caller can write to dodge the limit.
Requests that are not from a socket (the appHttpPipeline) share one bucket.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from pydapr import hookimpl
from pydapr.errors import ConfigError
from pydapr.metadata import meta
from pydapr.registry import MiddlewareType
from pydapr.server.request import Request, Response

from ._base import CallNext, HTTPMiddleware, register

__all__ = ["RateLimitMiddleware", "RateLimitMetadata"]

_MAX_CLIENTS = 10_000


@dataclass(frozen=True)
class RateLimitMetadata:
    max_requests_per_second: float = meta(100.0, doc="requests per second per client (> 0)")


class RateLimitMiddleware(HTTPMiddleware):
    metadata_type = RateLimitMetadata

    async def init(self) -> None:
        self.rate = float(self.md.max_requests_per_second)
        if not self.rate > 0:
            raise ConfigError(f"{self.where}: field maxRequestsPerSecond: must be greater than 0")
        self.burst = max(self.rate, 1.0)
        self.buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, last refill)
        text = f"too many requests: the limit is {self.rate:g} per second"
        self.refused = Response(429, text.encode(), [("retry-after", "1")],
                                "text/plain; charset=utf-8")

    def _take(self, client: str) -> bool:
        now = time.monotonic()
        tokens, last = self.buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self.buckets[client] = (tokens - 1.0 if allowed else tokens, now)  # most recent last
        if len(self.buckets) > _MAX_CLIENTS:
            del self.buckets[next(iter(self.buckets))]
        return allowed

    async def __call__(self, request: Request, call_next: CallNext) -> Response:
        peer = request.peer
        client = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if not self._take(client):
            return self.refused
        return await call_next(request)


@hookimpl
def pydapr_middleware_types() -> list[MiddlewareType]:
    return [register("middleware.http.ratelimit", RateLimitMiddleware)]
