"""Resiliency policies (spec 9.3): timeouts, retries and circuit breakers, resolved per target.

Parsed once from the ``Resiliency`` resources; building blocks ask for the
:class:`Policy` of a target (an app, an actor type, a component in one
direction) and run calls through :meth:`Policy.run`. When no target names a
policy, Dapr's default policy names apply, most specific first
(``DefaultPubsubComponentInboundRetryPolicy`` before
``DefaultComponentInboundRetryPolicy``, ``DefaultComponentRetryPolicy`` and
``DefaultRetryPolicy``). With nothing configured a policy does nothing: one
attempt, no timeout.
"""
from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, TypeVar

from .durations import parse_duration
from .errors import ConfigError

if TYPE_CHECKING:
    from .resources import Resiliency as ResiliencyResource

__all__ = ["RetryPolicy", "CircuitBreaker", "CircuitOpen", "Policy", "Resiliency", "NO_POLICY"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """``constant`` waits ``duration`` between attempts; ``exponential`` grows ×1.5 (±50 % jitter)
    from ``duration`` (default 0.5 s) up to ``max_interval``. ``max_retries`` -1 = forever."""

    name: str = ""
    policy: str = "constant"
    duration: float = 5.0
    max_interval: float = 60.0
    max_retries: int = -1
    http_codes: frozenset[int] | None = None
    grpc_codes: frozenset[int] | None = None

    def allows(self, retry: int) -> bool:
        """Whether retry number ``retry`` (1-based) may run."""
        return self.max_retries < 0 or retry <= self.max_retries

    def delay(self, retry: int) -> float:
        if self.policy == "constant":
            return self.duration
        base = min(self.duration * (1.5 ** (retry - 1)), self.max_interval)
        return min(base * random.uniform(0.5, 1.5), self.max_interval)

    def matches(self, exc: BaseException) -> bool:
        """Status-code matching: an error carrying ``http_status``/``grpc_status`` outside the
        configured lists is not retried; errors without a status always are."""
        http = getattr(exc, "http_status", None)
        if http is not None and self.http_codes is not None:
            return http in self.http_codes
        grpc_code = getattr(exc, "grpc_status", None)
        if grpc_code is not None and self.grpc_codes is not None:
            return grpc_code in self.grpc_codes
        return True


class CircuitOpen(ConnectionError):
    """The circuit breaker is open: calls fail fast until its timeout passes."""


class CircuitBreaker:
    """closed -> open when ``trip`` holds -> half-open after ``timeout`` -> closed on success."""

    def __init__(self, name: str, max_requests: int = 1, interval: float = 0.0, timeout: float = 60.0,
                 trip: str = "consecutiveFailures > 5") -> None:
        self.name, self.max_requests, self.interval, self.timeout = name, max_requests, interval, timeout
        self.trip = trip
        self._trip = _compile_trip(trip, name)
        self.state = "closed"
        self.consecutive_failures = 0
        self._opened_at = 0.0
        self._half_open_calls = 0
        self._counts_since = time.monotonic()

    def before(self) -> None:
        now = time.monotonic()
        if self.state == "open":
            if now - self._opened_at < self.timeout:
                raise CircuitOpen(f"circuit breaker {self.name} is open")
            self.state, self._half_open_calls = "half-open", 0
        if self.state == "half-open":
            if self._half_open_calls >= self.max_requests:
                raise CircuitOpen(f"circuit breaker {self.name} is half-open and busy")
            self._half_open_calls += 1
        elif self.interval and now - self._counts_since > self.interval:
            self.consecutive_failures, self._counts_since = 0, now

    def success(self) -> None:
        self.consecutive_failures = 0
        if self.state == "half-open":
            self.state = "closed"

    def failure(self) -> None:
        self.consecutive_failures += 1
        if self.state == "half-open" or self._trip(self.consecutive_failures):
            self.state, self._opened_at = "open", time.monotonic()


_SIMPLE_TRIP = re.compile(r"^\s*consecutiveFailures\s*(>=|>|==)\s*(\d+)\s*$")


def _compile_trip(expr: str, name: str) -> Callable[[int], bool]:
    m = _SIMPLE_TRIP.match(expr)
    if m:
        op, n = m.group(1), int(m.group(2))
        return {">": lambda c: c > n, ">=": lambda c: c >= n, "==": lambda c: c == n}[op]
    import celpy
    env = celpy.Environment()
    try:
        prog = env.program(env.compile(expr))
    except Exception as exc:
        raise ConfigError(f"circuit breaker {name}: trip {expr!r} is not a valid expression: {exc}") from None
    return lambda c: bool(prog.evaluate({"consecutiveFailures": celpy.celtypes.IntType(c)}))


@dataclass
class Policy:
    """The policies that apply to one target; :meth:`run` applies them to a call."""

    timeout: float | None = None
    retry: RetryPolicy | None = None
    breaker: CircuitBreaker | None = None
    names: dict[str, str] = field(default_factory=dict)

    async def run(self, call: Callable[[], Awaitable[T]],
                  retriable: Callable[[BaseException], bool] = lambda exc: True) -> T:
        """Run ``call`` with the timeout per attempt, the retries and the breaker.

        :raises: the last attempt's error (``TimeoutError`` when an attempt timed out).
        """
        retry = 0
        while True:
            if self.breaker is not None:
                self.breaker.before()
            try:
                if self.timeout is not None:
                    result = await asyncio.wait_for(call(), self.timeout)
                else:
                    result = await call()
            except Exception as exc:
                if self.breaker is not None:
                    self.breaker.failure()
                retry += 1
                if (self.retry is None or not self.retry.allows(retry) or not retriable(exc)
                        or not self.retry.matches(exc)):
                    raise
                await asyncio.sleep(self.retry.delay(retry))
                continue
            if self.breaker is not None:
                self.breaker.success()
            return result


NO_POLICY = Policy()


def _codes(text: Any, low: int, high: int, where: str) -> frozenset[int] | None:
    if text in (None, ""):
        return None
    out: set[int] = set()
    for part in str(text).replace(" ", "").split(","):
        a, _, b = part.partition("-")
        try:
            lo, hi = int(a), int(b or a)
        except ValueError:
            raise ConfigError(f"{where}: {part!r} is not a status code or range") from None
        if not (low <= lo <= hi <= high):
            raise ConfigError(f"{where}: {part!r} is outside {low}-{high}")
        out.update(range(lo, hi + 1))
    return frozenset(out)


def _dur(value: Any, where: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


class Resiliency:
    """All loaded ``Resiliency`` resources, merged; resolves a :class:`Policy` per target."""

    def __init__(self, resources: Iterable[ResiliencyResource] = ()) -> None:
        self.timeouts: dict[str, float] = {}
        self.retries: dict[str, RetryPolicy] = {}
        self.breakers: dict[str, dict[str, Any]] = {}
        self.apps: dict[str, dict[str, Any]] = {}
        self.actors: dict[str, dict[str, Any]] = {}
        self.components: dict[str, dict[str, Any]] = {}
        self._breaker_cache: dict[tuple[str, str], CircuitBreaker] = {}
        for res in resources:
            self._add(res.spec, res.source)

    def _add(self, spec: dict[str, Any], src: str) -> None:
        pol = spec.get("policies") or {}
        for name, value in (pol.get("timeouts") or {}).items():
            self.timeouts[name] = _dur(value, f"{src}: spec.policies.timeouts.{name}")
        for name, r in (pol.get("retries") or {}).items():
            where = f"{src}: spec.policies.retries.{name}"
            if not isinstance(r, dict):
                raise ConfigError(f"{where}: must be a mapping")
            kind = str(r.get("policy", "constant"))
            if kind not in ("constant", "exponential"):
                raise ConfigError(f"{where}.policy: {kind!r} is not constant or exponential")
            default = "5s" if kind == "constant" else "500ms"
            match = r.get("matching") or {}
            self.retries[name] = RetryPolicy(
                name, kind, _dur(r.get("duration", default), f"{where}.duration"),
                _dur(r.get("maxInterval", "60s"), f"{where}.maxInterval"),
                int(r.get("maxRetries", -1)),
                _codes(match.get("httpStatusCodes"), 100, 599, f"{where}.matching.httpStatusCodes"),
                _codes(match.get("gRPCStatusCodes"), 0, 16, f"{where}.matching.gRPCStatusCodes"))
        for name, cb in (pol.get("circuitBreakers") or {}).items():
            where = f"{src}: spec.policies.circuitBreakers.{name}"
            self.breakers[name] = {
                "max_requests": int(cb.get("maxRequests", 1)),
                "interval": _dur(cb.get("interval", 0), f"{where}.interval"),
                "timeout": _dur(cb.get("timeout", "60s"), f"{where}.timeout"),
                "trip": str(cb.get("trip", "consecutiveFailures > 5"))}
            _compile_trip(self.breakers[name]["trip"], name)
        targets = spec.get("targets") or {}
        for section, table in (("apps", self.apps), ("actors", self.actors),
                               ("components", self.components)):
            for name, t in (targets.get(section) or {}).items():
                table[name] = t or {}
        for section, table in (("apps", self.apps), ("actors", self.actors)):
            for name, t in table.items():
                self._check(t, f"{src}: spec.targets.{section}.{name}")
        for name, t in self.components.items():
            for direction in ("inbound", "outbound"):
                self._check(t.get(direction) or {}, f"{src}: spec.targets.components.{name}.{direction}")

    def _check(self, t: dict[str, Any], where: str) -> None:
        for key, table in (("timeout", self.timeouts), ("retry", self.retries),
                           ("circuitBreaker", self.breakers)):
            ref = t.get(key)
            if ref and ref not in table and not (key == "timeout" and _is_duration(ref)):
                raise ConfigError(f"{where}.{key}: no policy named {ref!r}")

    def _policy(self, target: dict[str, Any], defaults: list[str], key: str) -> Policy:
        names: dict[str, str] = {}
        for what, table in (("Timeout", self.timeouts), ("Retry", self.retries),
                            ("CircuitBreaker", self.breakers)):
            field_name = {"Timeout": "timeout", "Retry": "retry",
                          "CircuitBreaker": "circuitBreaker"}[what]
            ref = target.get(field_name)
            if not ref:
                ref = next((f"Default{d}{what}Policy" for d in defaults
                            if f"Default{d}{what}Policy" in table), "")
            if ref:
                names[field_name] = ref
        timeout = None
        if "timeout" in names:
            ref = names["timeout"]
            timeout = self.timeouts[ref] if ref in self.timeouts else parse_duration(ref)
        breaker = None
        if "circuitBreaker" in names:
            ckey = (key, names["circuitBreaker"])
            breaker = self._breaker_cache.get(ckey)
            if breaker is None:
                breaker = self._breaker_cache[ckey] = CircuitBreaker(
                    names["circuitBreaker"], **self.breakers[names["circuitBreaker"]])
        return Policy(timeout, self.retries.get(names.get("retry", "")), breaker, names)

    def for_app(self, app_id: str) -> Policy:
        return self._policy(self.apps.get(app_id, {}), ["App", ""], f"app:{app_id}")

    def for_actor(self, actor_type: str) -> Policy:
        return self._policy(self.actors.get(actor_type, {}), ["Actor", ""], f"actor:{actor_type}")

    def for_component(self, name: str, direction: str, kind: str = "") -> Policy:
        """:param direction: ``inbound`` or ``outbound``; :param kind: ``pubsub``, ``statestore``..."""
        target = (self.components.get(name) or {}).get(direction) or {}
        d = direction.capitalize()
        defaults = [f"{kind.capitalize()}Component{d}"] if kind else []
        defaults += [f"Component{d}", "Component", ""]
        return self._policy(target, defaults, f"component:{name}:{direction}")


def _is_duration(text: str) -> bool:
    try:
        parse_duration(text)
        return True
    except ValueError:
        return False
