"""The app channel: how the sidecar calls into its app (HTTP or gRPC).

``APP_API_TOKEN``, when set, is *set* (never appended) as ``dapr-api-token``
on every call. App health probing (``--enable-app-health-check``) marks the
app unhealthy after ``--app-health-threshold`` failed probes; callers check
:attr:`AppChannel.healthy` before delivering.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from .httpclient import ClientResponse, HTTPClientError, HTTPClientPool

if TYPE_CHECKING:
    from ..daprd.options import Options

__all__ = ["AppChannel", "AppUnavailable"]

log = logging.getLogger("pydapr.app")


class AppUnavailable(ConnectionError):
    """The app cannot be reached or is unhealthy."""


class AppChannel:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.protocol = options.app_protocol
        self.host = options.app_channel_address
        self.port = int(options.app_port or 0)
        self.token = options.app_api_token
        self.healthy = True
        self._failures = 0
        self._probe: asyncio.Task | None = None
        self._grpc_channel: Any = None
        self._stubs: dict[str, Any] = {}
        self.http = HTTPClientPool(self.host, self.port, use_tls=self.protocol == "https",
                                   max_body=options.max_body_size)
        self.semaphore = (asyncio.Semaphore(options.app_max_concurrency)
                          if options.app_max_concurrency > 0 else None)

    @property
    def is_grpc(self) -> bool:
        return self.protocol in ("grpc", "grpcs")

    # -- HTTP ---------------------------------------------------------------------------------

    def _headers(self, headers: list[tuple[str, str]] | None) -> list[tuple[str, str]]:
        out = [(k, v) for k, v in headers or () if k.lower() not in ("dapr-api-token", "host",
                                                                      "content-length")]
        if self.token:
            out.append(("dapr-api-token", self.token))
        return out

    async def call_http(self, method: str, target: str, headers: list[tuple[str, str]] | None = None,
                        body: bytes = b"", timeout: float | None = None) -> ClientResponse:
        """One HTTP request into the app. :raises AppUnavailable: when it cannot be reached."""
        if not self.healthy:
            raise AppUnavailable("app is not in a healthy state")
        try:
            if self.semaphore is None:
                return await self.http.request(method, target, self._headers(headers), body, timeout)
            async with self.semaphore:
                return await self.http.request(method, target, self._headers(headers), body, timeout)
        except HTTPClientError as exc:
            raise AppUnavailable(str(exc)) from None

    # -- gRPC ---------------------------------------------------------------------------------

    def grpc_metadata(self, extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
        md = [(k, v) for k, v in extra or () if k.lower() != "dapr-api-token"]
        if self.token:
            md.append(("dapr-api-token", self.token))
        return md

    def stub(self, name: str = "AppCallback") -> Any:
        """A stub of the app's ``AppCallback``, ``AppCallbackHealthCheck`` or ``AppCallbackAlpha``."""
        stub = self._stubs.get(name)
        if stub is None:
            import grpc
            from dapr.proto.runtime.v1 import appcallback_pb2_grpc as cb
            if self._grpc_channel is None:
                target = f"{self.host}:{self.port}"
                opts = [("grpc.max_receive_message_length", self.options.max_body_size),
                        ("grpc.max_send_message_length", self.options.max_body_size)]
                if self.protocol == "grpcs":
                    self._grpc_channel = grpc.aio.secure_channel(
                        target, grpc.ssl_channel_credentials(), options=opts)
                else:
                    self._grpc_channel = grpc.aio.insecure_channel(target, options=opts)
            stub = self._stubs[name] = getattr(cb, f"{name}Stub")(self._grpc_channel)
        return stub

    # -- readiness and health -------------------------------------------------------------------

    async def wait_for_port(self, timeout: float = 60.0) -> bool:
        """Wait until the app accepts TCP connections (Dapr waits before loading subscriptions)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                _, w = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 1.0)
                w.close()
                return True
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(0.05)
        return False

    async def probe_once(self) -> bool:
        o = self.options
        try:
            if self.is_grpc:
                from google.protobuf import empty_pb2
                await self.stub("AppCallbackHealthCheck").HealthCheck(
                    empty_pb2.Empty(), timeout=o.app_health_probe_timeout,
                    metadata=self.grpc_metadata())
                return True
            resp = await self.http.request("GET", o.app_health_check_path, self._headers(None),
                                           timeout=o.app_health_probe_timeout)
            return 200 <= resp.status < 300
        except Exception:
            return False

    def start_health_checks(self) -> None:
        if self.options.enable_app_health_check and self._probe is None:
            self._probe = asyncio.get_running_loop().create_task(self._probe_loop())

    async def _probe_loop(self) -> None:
        o = self.options
        while True:
            ok = await self.probe_once()
            if ok:
                if not self.healthy:
                    log.info("app is healthy again")
                self._failures, self.healthy = 0, True
            else:
                self._failures += 1
                if self._failures >= o.app_health_threshold and self.healthy:
                    log.warning("app is unhealthy after %d failed probes", self._failures)
                    self.healthy = False
            await asyncio.sleep(o.app_health_probe_interval)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        self.http.close()
        if self._grpc_channel is not None:
            await self._grpc_channel.close()
