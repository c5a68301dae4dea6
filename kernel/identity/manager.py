"""The sidecar's live identity: obtain, renew and rotate its SVID; hand out TLS contexts.

Life of an :class:`Identity`:

1. ``await start()`` loads the trust anchors, then either takes the static
   SVID from ``DAPR_CERT_CHAIN``/``DAPR_CERT_KEY`` or generates a P-256 key in
   memory, sends a CSR to the sentry and verifies what comes back (chain to the
   local anchors, exactly this sidecar's SPIFFE ID, matching key). It retries
   until ``startup_timeout`` and then raises :class:`~pydapr.errors.StartupError`.
2. A renewal task renews half-way through the certificate's usable life with a
   fresh key; failures are retried (every ``remaining/4`` seconds, between
   0.1 s and 10 s) and logged, never fatal while the current SVID is valid.
3. With ``--trust-anchors-file`` a watch task re-reads the anchors when the file
   changes; if the current SVID no longer chains to them it renews at once. An
   unparsable anchors file is fatal (``on_fatal``), as in dapr/kit: trust is
   neither silently kept nor silently dropped.

Each new SVID or bundle is a new *generation*. :meth:`Identity.client_context`
returns the current generation's context, so new outbound connections use the
new certificate while open ones finish on the old. :meth:`Identity.server_context`
returns a context meant to stay on a listening socket: at every handshake its
``sni_callback`` switches the connection to the current generation's context
(OpenSSL's ``SSL_set_SSL_CTX``), so a server never needs restarting.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import TYPE_CHECKING, Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from ..errors import StartupError
from .bundle import BundleError, TrustBundle
from .client import SentryClient
from .pem import key_matches, load_certificates, new_private_key
from .protocol import SignRequest
from .settings import IdentitySettings
from .spiffe import SpiffeID, SVIDError
from .svid import SVID
from .verify import SpiffeContext, client_context, server_context, verify_peer, verify_svid

if TYPE_CHECKING:
    from ..runtime import Runtime

__all__ = ["Identity", "IdentityError"]

log = logging.getLogger("pydapr.identity")

_MIN_WAIT = 0.05


class IdentityError(StartupError):
    """The identity cannot be obtained or has become unusable."""


def _retry_delay(remaining: float) -> float:
    return min(10.0, max(0.1, remaining / 4))


class Identity:
    """This sidecar's SVID, kept fresh. See the module docstring.

    :param settings: from :meth:`IdentitySettings.from_options`.
    :param client: the sentry client (default: one for ``settings.sentry_address``).
    :param clock: epoch seconds, for tests.
    :param on_fatal: called with a message when trust can no longer be decided
        (unparsable anchors file); the sidecar stops.
    """

    def __init__(self, settings: IdentitySettings, *, client: SentryClient | None = None,
                 clock: Callable[[], float] = time.time,
                 on_fatal: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.client = client or (SentryClient(settings.sentry_address,
                                              settings.control_plane_namespace)
                                 if settings.sentry_address else None)
        self.clock = clock
        self.on_fatal = on_fatal
        self.generation = 0
        self.renewals = 0
        self.failed = ""
        self._svid: SVID | None = None
        self._bundle: TrustBundle | None = None
        self._contexts: dict[tuple[str, tuple[str, ...]], SpiffeContext] = {}
        self._server_keys: set[tuple[str, ...]] = set()
        self._subscribers: list[Callable[[SVID], None]] = []
        self._tasks: list[asyncio.Task] = []
        self._renew_now = asyncio.Event()
        self._warned_bundle = False

    @classmethod
    def for_runtime(cls, runtime: Runtime) -> Identity | None:
        """The identity of a sidecar (not started), or None when mTLS is off.

        Stopping on fatal trust errors goes through ``runtime.request_shutdown(1)``.
        :raises ConfigError: the flags, environment or Configuration are inconsistent.
        """
        settings = IdentitySettings.from_options(runtime.options, runtime.config)
        if settings is None:
            return None
        return cls(settings, on_fatal=lambda _msg: runtime.request_shutdown(1))

    # -- public API ----------------------------------------------------------------------------

    @property
    def spiffe_id(self) -> SpiffeID:
        return self.settings.spiffe_id

    @property
    def trust_domains(self) -> frozenset[str]:
        """Peer trust domains accepted at the TLS layer (V13)."""
        return self.settings.trust_domains

    @property
    def bundle(self) -> TrustBundle:
        if self._bundle is None:
            raise RuntimeError("identity not started")
        return self._bundle

    @property
    def ready(self) -> bool:
        return self._svid is not None and not self.failed

    def current(self) -> SVID:
        """The live SVID (chain and key). :raises RuntimeError: before :meth:`start` succeeded."""
        if self._svid is None:
            raise RuntimeError("identity not ready: await Identity.start() first")
        return self._svid

    def client_context(self, alpn: Sequence[str] | None = None) -> SpiffeContext:
        """The context for a new outbound connection (current generation; cached, cheap).

        Call it per connection (or per pool refresh) so that connections opened
        after a rotation present the new certificate.
        """
        return self._context("client", tuple(alpn or ()))

    def server_context(self, alpn: Sequence[str] | None = None) -> SpiffeContext:
        """A context for a listening socket that follows rotation by itself (see module doc)."""
        key = tuple(alpn or ())
        self._server_keys.add(key)
        ctx = server_context(self.current(), self.bundle, trust_domains=self.trust_domains,
                             alpn=key or None)

        def switch(ssl_object: object, server_name: str | None, _ctx: object) -> None:
            try:
                latest = self._context("server", key)
                if ssl_object.context is not latest:  # type: ignore[attr-defined]
                    ssl_object.context = latest  # type: ignore[attr-defined]
            except Exception:  # never break a handshake from here; it proceeds on the old context
                log.exception("could not switch a connection to the current certificate")
            return None

        ctx.sni_callback = switch
        return ctx

    def verify_peer(self, ssl_object: object, expected_id: SpiffeID | None = None) -> SpiffeID:
        """:func:`pydapr.identity.verify_peer` for a connection made with this identity's contexts."""
        return verify_peer(ssl_object, expected_id)  # type: ignore[arg-type]

    def subscribe(self, callback: Callable[[SVID], None]) -> Callable[[], None]:
        """Call ``callback(svid)`` after every rotation; returns an unsubscribe function."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Load anchors and obtain the first SVID. :raises IdentityError:"""
        s = self.settings
        try:
            self._bundle = s.anchors.load()
        except BundleError as exc:
            raise IdentityError(str(exc)) from None
        log.info("trust anchors loaded (%d root(s), bundle %s)", len(self._bundle),
                 self._bundle.digest())
        if s.static_svid is not None:
            self._install(self._checked_static(s.static_svid))
        else:
            await self._first_svid()
            self._tasks.append(asyncio.create_task(self._renew_loop(), name="identity-renew"))
        if s.anchors.watched:
            self._tasks.append(asyncio.create_task(self._watch_anchors(), name="identity-anchors"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()

    # -- obtaining SVIDs -----------------------------------------------------------------------

    def _checked_static(self, svid: SVID) -> SVID:
        try:
            verify_svid(svid.chain, self.bundle, expected_id=self.spiffe_id,
                        now=_utc(self.clock()))
        except SVIDError as exc:
            raise IdentityError(f"DAPR_CERT_CHAIN is not a usable SVID for {self.spiffe_id}: "
                                f"{exc}") from None
        log.info("identity %s from DAPR_CERT_CHAIN (outside CA), valid until %s; it cannot be "
                 "renewed", svid.spiffe_id, svid.not_after)
        chain = tuple(c for c in svid.chain if c not in self.bundle)
        return SVID(svid.spiffe_id, chain, svid.key, svid.received_at)

    async def _first_svid(self) -> None:
        deadline = time.monotonic() + self.settings.startup_timeout
        delay = 0.2
        while True:
            try:
                self._install(await self._request())
                return
            except Exception as exc:
                if time.monotonic() + delay > deadline:
                    raise IdentityError(f"could not obtain an identity from the sentry at "
                                        f"{self.settings.sentry_address}: {exc}") from None
                log.warning("no identity yet (retrying in %.1fs): %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _token(self) -> str:
        path = self.settings.token_file
        if not path:
            return ""
        with open(path, encoding="utf-8") as f:  # re-read: tokens rotate
            return f.read().strip()

    async def _request(self) -> SVID:
        """One CSR round trip, verified. :raises Exception: any failure (the caller retries)."""
        assert self.client is not None
        sid = self.spiffe_id
        key = new_private_key()
        csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
               .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(sid.uri)]),
                              critical=True)
               .sign(key, hashes.SHA256()))
        req = SignRequest(id=sid.app_id, namespace=sid.namespace, trust_domain=sid.trust_domain,
                          certificate_signing_request=csr.public_bytes(Encoding.PEM).decode(),
                          token=self._token(), token_validator=self.settings.token_validator)
        bundle = self.bundle
        resp = await self.client.sign(req, bundle)
        chain = load_certificates(resp.workload_certificate, "the sentry's certificate chain")
        if not key_matches(chain[0], key):
            raise SVIDError("C7", "the sentry returned a certificate for another key")
        now = self.clock()
        verify_svid(chain, bundle, expected_id=sid, now=_utc(now), leeway=self.settings.clock_skew)
        published = TrustBundle.from_pem("".join(resp.trust_chain_certificates) or bundle.pem,
                                         "the sentry's trust bundle")
        if not published.same_as(bundle) and not self._warned_bundle:
            self._warned_bundle = True
            log.warning("the sentry publishes trust anchors (bundle %s) that differ from this "
                        "sidecar's (bundle %s): update DAPR_TRUST_ANCHORS or the anchors file; "
                        "only the local anchors are trusted", published.digest(), bundle.digest())
        return SVID(sid, tuple(c for c in chain if c not in bundle), key, received_at=now,
                    trust_chain=published.anchors)

    def _install(self, svid: SVID) -> None:
        """Make ``svid`` current: a new generation, fresh contexts, subscribers told."""
        self._svid = svid
        self._new_generation()
        log.info("identity %s: certificate serial %x valid until %s (generation %d)",
                 svid.spiffe_id, svid.serial, svid.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
                 self.generation)
        for cb in list(self._subscribers):
            try:
                cb(svid)
            except Exception:
                log.exception("identity rotation subscriber failed")

    def _new_generation(self) -> None:
        self.generation += 1
        self._contexts = {}
        for key in self._server_keys:  # build now, not inside a handshake
            self._context("server", key)

    def _context(self, role: str, alpn: tuple[str, ...]) -> SpiffeContext:
        ctx = self._contexts.get((role, alpn))
        if ctx is None:
            build = server_context if role == "server" else client_context
            ctx = build(self.current(), self.bundle, trust_domains=self.trust_domains,
                        alpn=alpn or None)
            self._contexts[(role, alpn)] = ctx
        return ctx

    # -- background tasks ----------------------------------------------------------------------

    def _renew_at(self, svid: SVID) -> float:
        at = svid.renew_at()
        if self.settings.max_ttl:
            at = min(at, svid.received_at + self.settings.max_ttl / 2)
        return at

    async def _renew_loop(self) -> None:
        while True:
            svid = self.current()
            wait = max(self._renew_at(svid) - self.clock(), _MIN_WAIT)
            try:
                await asyncio.wait_for(self._renew_now.wait(), wait)
            except asyncio.TimeoutError:
                pass
            self._renew_now.clear()
            while True:
                try:
                    self._install(await self._request())
                    self.renewals += 1
                    break
                except Exception as exc:
                    remaining = svid.not_after.timestamp() - self.clock()
                    delay = _retry_delay(remaining)
                    log.warning("certificate renewal failed (current one %s; retrying in %.1fs): %s",
                                f"expires in {remaining:.0f}s" if remaining > 0 else "has EXPIRED",
                                delay, exc)
                    await asyncio.sleep(delay)

    async def _watch_anchors(self) -> None:
        anchors = self.settings.anchors
        while True:
            await asyncio.sleep(self.settings.poll_interval)
            if not anchors.changed():
                continue
            try:
                bundle = anchors.load()
            except BundleError:
                await asyncio.sleep(0.2)  # a writer may be half-way through; look once more
                try:
                    bundle = anchors.load()
                except BundleError as exc:
                    self._fatal(f"trust anchors became unusable: {exc}")
                    return
            if bundle.same_as(self.bundle):
                continue
            log.info("trust anchors changed: bundle %s -> %s (%d root(s))", self.bundle.digest(),
                     bundle.digest(), len(bundle))
            self._bundle = bundle
            self._new_generation()
            try:
                verify_svid(self.current().chain, bundle, now=_utc(self.clock()))
            except SVIDError as exc:
                if self.client is None:
                    log.error("the SVID from DAPR_CERT_CHAIN no longer verifies against the new "
                              "anchors and cannot be renewed: %s", exc)
                else:
                    log.info("the current certificate does not chain to the new anchors: renewing")
                    self._renew_now.set()

    def _fatal(self, message: str) -> None:
        self.failed = message
        log.error("%s; stopping (fail closed)", message)
        if self.on_fatal is not None:
            self.on_fatal(message)


def _utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
