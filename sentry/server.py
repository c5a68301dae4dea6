"""The sentry service: certificate signing over gRPC with TLS, and hot credential reload.

The wire format is :mod:`pydapr.identity.protocol` (one unary method, JSON
messages). The sentry serves TLS with its own SVID, issued from its issuer at
start, re-issued half-way through its life and whenever the issuer credentials
are replaced; gRPC's dynamic server credentials pick the new certificate up
for new connections. Signing runs in a worker thread because a validator may
fetch a JWKS over the network.

Zero-trust rule (security spec 6, decision 14): the ``insecure`` validator,
which signs for anyone, is used only when no real validator is configured and
only while the sentry listens on loopback; otherwise the sentry refuses to start.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import Any

import grpc

from pydapr.durations import format_duration
from pydapr.errors import ConfigError
from pydapr.identity.pem import certificates_pem, new_private_key, private_key_pem
from pydapr.identity.protocol import (MAX_MESSAGE, METHOD, SERVICE, decode_request, encode,
                                      sentry_server_name, sentry_spiffe_id)

from .ca import CredentialStore
from .signer import DEFAULT_SKEW, DEFAULT_TTL, Signer, issue_leaf
from .validators import (InsecureValidator, JoinTokenValidator, JWKSValidator, SignError,
                         Validator)

__all__ = ["SentrySettings", "SentryServer", "is_loopback", "build_validators"]

log = logging.getLogger("pydapr.sentry")

_SERVING_TTL = dt.timedelta(hours=24)


@dataclass
class SentrySettings:
    """Everything the sentry needs; :mod:`pydapr.sentry.cli` builds it from flags and ``--config``."""

    credentials_dir: str
    trust_domain: str = "localhost"
    namespace: str = "default"
    listen_address: str = "127.0.0.1"
    port: int = 50001
    ttl: dt.timedelta = DEFAULT_TTL
    skew: dt.timedelta = DEFAULT_SKEW
    jwks_source: str = ""
    join_tokens: str = ""
    ca_filename: str = "ca.crt"
    cert_filename: str = "issuer.crt"
    key_filename: str = "issuer.key"
    poll_interval: float = 1.0
    healthz_port: int = 0
    healthz_listen_address: str = "127.0.0.1"


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def build_validators(s: SentrySettings) -> tuple[dict[str, Validator], str]:
    """The enabled validators and the default one. :raises ConfigError:"""
    validators: dict[str, Validator] = {}
    try:
        if s.jwks_source:
            audience = sentry_spiffe_id(s.trust_domain, s.namespace).uri
            validators["jwks"] = JWKSValidator(s.jwks_source, audience)
        if s.join_tokens:
            validators["join-token"] = JoinTokenValidator(s.join_tokens)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"sentry: {exc}") from None
    if not validators:
        if not is_loopback(s.listen_address):
            raise ConfigError(
                f"sentry: refusing to listen on {s.listen_address or 'every interface'} with the "
                "insecure validator, which signs for any caller; configure --jwks-source or "
                "--join-tokens, or listen on 127.0.0.1")
        validators["insecure"] = InsecureValidator()
        log.warning("token validator: insecure (any local process may obtain any identity); "
                    "allowed because the sentry listens on loopback only")
    return validators, next(iter(validators))


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class SentryServer:
    """The running CA. ``await start()`` returns the bound port; ``await stop()`` ends it."""

    def __init__(self, settings: SentrySettings) -> None:
        self.settings = settings
        self.store = CredentialStore(settings.credentials_dir, settings.trust_domain,
                                     ca_filename=settings.ca_filename,
                                     cert_filename=settings.cert_filename,
                                     key_filename=settings.key_filename)
        self.signer: Signer | None = None
        self.port = 0
        self._server: Any = None
        self._tasks: list[asyncio.Task] = []
        self._health: asyncio.AbstractServer | None = None
        self._serving_gen = -1
        self._serving_renew = 0.0

    # -- serving certificate ----------------------------------------------------------------

    def _serving_config(self) -> Any:
        creds = self.store.current
        if creds is None:
            raise RuntimeError("no issuer credentials")
        s = self.settings
        key = new_private_key()
        leaf = issue_leaf(key.public_key(), sentry_spiffe_id(s.trust_domain, s.namespace), creds,
                          ttl=_SERVING_TTL, dns_names=(sentry_server_name(s.namespace),))
        self._serving_gen = self.store.generation
        self._serving_renew = time.time() + (_SERVING_TTL.total_seconds() / 2)
        return grpc.ssl_server_certificate_configuration(
            [(private_key_pem(key), certificates_pem((leaf, *creds.chain)))])

    def _fetch_serving(self) -> Any:
        """Called by gRPC per handshake: a new certificate when due, else None (keep)."""
        if self.store.current is None:
            return None
        if self.store.generation == self._serving_gen and time.time() < self._serving_renew:
            return None
        try:
            return self._serving_config()
        except Exception:
            log.exception("could not re-issue the sentry's serving certificate")
            return None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> int:
        s = self.settings
        self.store.ensure()
        validators, default = build_validators(s)
        self.signer = Signer(self.store, validators, default, ttl=s.ttl, skew=s.skew)
        creds = grpc.dynamic_ssl_server_credentials(self._serving_config(), self._fetch_serving)
        handler = grpc.method_handlers_generic_handler(
            SERVICE, {METHOD: grpc.unary_unary_rpc_method_handler(self._handle)})
        self._server = grpc.aio.server(handlers=[handler], options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE)])
        self.port = self._server.add_secure_port(_hostport(s.listen_address, s.port), creds)
        if not self.port:
            raise ConfigError(f"sentry: cannot listen on {_hostport(s.listen_address, s.port)}")
        await self._server.start()
        self._tasks.append(asyncio.create_task(self._poll()))
        if s.healthz_port:
            self._health = await asyncio.start_server(self._healthz, s.healthz_listen_address,
                                                      s.healthz_port)
        log.info("sentry listening on %s (trust domain %s, validators %s, default %s, workload "
                 "TTL %s, clock skew %s)", _hostport(s.listen_address, self.port), s.trust_domain,
                 ", ".join(validators), default, format_duration(s.ttl.total_seconds()),
                 format_duration(s.skew.total_seconds()))
        return self.port

    async def stop(self, grace: float = 1.0) -> None:
        for t in self._tasks:
            t.cancel()
        if self._health is not None:
            self._health.close()
        if self._server is not None:
            await self._server.stop(grace)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval)
            await asyncio.to_thread(self.store.reload_if_changed)

    async def _handle(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            req = decode_request(request)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        assert self.signer is not None
        try:
            resp = await asyncio.to_thread(self.signer.sign, req)
        except SignError as exc:
            log.info("refused a signing request from %s for app id %r: %s", context.peer(),
                     req.id[:80], exc.message)
            await context.abort(exc.status, exc.message)
        return encode(resp)

    async def _healthz(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            ok = line.split()[1:2] == [b"/healthz"] and self.store.current is not None
            status = b"200 OK" if ok else b"503 Service Unavailable"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (asyncio.TimeoutError, OSError):
            pass
        finally:
            writer.close()
