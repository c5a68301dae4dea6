"""The caller's sidecar: resolve the target, send the call over the proxy loop, apply resiliency.

Self-invocation goes straight to the local app (with the identity headers
stamped). Every other call resolves the target's sidecar through the name
resolver and, with mTLS, pins the exact SPIFFE id the callee must present.
A connection that cannot be made, or a stream the callee refused before
taking it, is retried (Dapr's built-in service retries) after forgetting the
resolver's cached answer; the app target's resiliency policy (timeout,
retries, circuit breaker) wraps the whole exchange, and a 5xx answer counts
as a failure for it while the last answer is still what the caller gets.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Awaitable, Callable

from pydapr.errors import APIError
from pydapr.proxy import ProxyClient, ProxyError
from pydapr.proxy_tls import spiffe_id
from pydapr.resiliency import CircuitOpen, Policy, Resiliency

from .wire import Call, Result, parse_result, request_head

if TYPE_CHECKING:
    from pydapr._proxy_conn import Stream
    from pydapr.kinds.nameresolution import NameResolver, Registration
    from pydapr.runtime import Runtime

    from .callee import Callee

__all__ = ["Caller", "invoke_error"]

log = logging.getLogger("pydapr.invoke")

#: pauses between the built-in retries of a connection that could not be made
BUILTIN_RETRY_DELAYS = (0.05, 0.25, 1.0)


def invoke_error(app_id: str, why: str, grpc_code: str = "INTERNAL") -> APIError:
    return APIError("ERR_DIRECT_INVOKE", f"failed to invoke, id: {app_id}, err: {why}",
                    http_status=500, grpc_code=grpc_code)


class _FailedAnswer(Exception):
    """A 5xx answer, raised so resiliency counts it; carries the answer to return at the end."""

    def __init__(self, result: Result) -> None:
        super().__init__(f"status {result.status}")
        self.result = result
        self.http_status = result.status


class Caller:
    def __init__(self, runtime: Runtime, client: ProxyClient, resolver: NameResolver,
                 local: Callee, resiliency: Resiliency, trust_domain: str, mtls: bool,
                 max_body: int) -> None:
        self.rt = runtime
        self.client = client
        self.resolver = resolver
        self.local = local
        self.resiliency = resiliency
        self.trust_domain = trust_domain
        self.mtls = mtls
        self.max_body = max_body
        self._policies: dict[str, Policy] = {}
        self._ids: dict[tuple[str, str, str], str] = {}

    def policy(self, target: str) -> Policy:
        pol = self._policies.get(target)
        if pol is None:
            pol = self._policies[target] = self.resiliency.for_app(target)
        return pol

    def invoke(self, call: Call) -> Awaitable[Result]:
        """Run ``call`` to its app (awaitable); sidecar-side failures raise :class:`APIError`."""
        if call.app_id == self.rt.app_id and call.namespace == self.rt.namespace:
            return self.local.invoke(call, None, local=True)
        policy = self.policy(call.app_id)
        if policy.retry is None and policy.breaker is None and policy.timeout is None:
            return self._remote(call)
        return run_with_policy(policy, call.app_id, lambda: self._remote(call))

    async def _remote(self, call: Call) -> Result:
        delays = iter(BUILTIN_RETRY_DELAYS)
        while True:
            stream = await self.open_stream(call.app_id, call.namespace)
            try:
                try:
                    await stream.send(request_head(call), call.body)
                except ProxyError:
                    if not stream.headers:  # no early answer (a 413, say) came back first
                        raise
                head = await stream.response()
                body = await stream.read_all(self.max_body)
                return parse_result(head, body)
            except ProxyError as exc:
                if not exc.retryable or (delay := next(delays, None)) is None:
                    raise invoke_error(call.app_id, str(exc), "UNAVAILABLE") from None
                log.debug("invoke %s: %s; retrying in %.2fs", call.app_id, exc, delay)
                await asyncio.sleep(delay)
            finally:
                if not stream.finished:
                    stream.reset(reason="the caller gave up")

    async def open_stream(self, app_id: str, namespace: str) -> Stream:
        """A stream to the app's sidecar; a connection that cannot be made is retried.

        :raises APIError: ``ERR_DIRECT_INVOKE`` when the app cannot be found or reached.
        """
        delays = iter(BUILTIN_RETRY_DELAYS)
        while True:
            try:
                reg = await self.resolver.resolve(app_id, namespace)
            except LookupError as exc:
                raise invoke_error(app_id, f"couldn't find service: {exc}", "UNAVAILABLE") from None
            try:
                return await self.client.open(reg.host, reg.port,
                                              self._expected(reg, app_id, namespace))
            except ProxyError as exc:
                if not exc.retryable or (delay := next(delays, None)) is None:
                    raise invoke_error(app_id, str(exc), "UNAVAILABLE") from None
                self.resolver.forget(app_id, namespace)
                log.debug("invoke %s: %s; retrying in %.2fs", app_id, exc, delay)
                await asyncio.sleep(delay)

    def _expected(self, reg: Registration, app_id: str, namespace: str) -> str | None:
        """With mTLS, the exact SPIFFE id the callee must present (cached)."""
        if not self.mtls:
            return None
        key = (reg.trust_domain, namespace, app_id)
        sid = self._ids.get(key)
        if sid is None:
            sid = spiffe_id(reg.trust_domain or self.trust_domain, namespace, app_id)
            if len(self._ids) < 4096:
                self._ids[key] = sid
        return sid


async def run_with_policy(policy: Policy, target: str,
                          attempt: Callable[[], Awaitable[Result]]) -> Result:
    """One call under ``policy``: a 5xx from the app is a failure for retries and the breaker."""
    active = policy.retry is not None or policy.breaker is not None

    async def guarded() -> Result:
        res = await attempt()
        if active and res.status >= 500 and res.error is None:
            raise _FailedAnswer(res)
        return res

    if not active and policy.timeout is None:
        return await attempt()
    try:
        return await policy.run(guarded, retriable=lambda exc: not isinstance(exc, APIError)
                                or exc.grpc_code == "UNAVAILABLE")
    except _FailedAnswer as failed:
        return failed.result
    except asyncio.TimeoutError:
        raise invoke_error(target, f"timed out after {policy.timeout:g}s (resiliency policy)",
                           "DEADLINE_EXCEEDED") from None
    except CircuitOpen as exc:
        raise invoke_error(target, str(exc), "UNAVAILABLE") from None
