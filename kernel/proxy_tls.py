"""Transport security for the proxy loop: plain TCP, or mTLS with SPIFFE X.509-SVIDs.

:class:`TransportSecurity` is the seam between the proxy loop and the identity
package (``pydapr.identity``): the loop asks it for the TLS contexts of each
new connection and has it verify the peer right after the handshake. The
caller side pins the exact SPIFFE id it expects; the callee side learns the
caller's id. :data:`PLAINTEXT` is used when mTLS is off.
"""
from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .identity import Identity
    from .runtime import Runtime

__all__ = ["TransportSecurity", "Plaintext", "PLAINTEXT", "MutualTLS", "transport_security", "spiffe_id",
           "ALPN"]


#: the ALPN name both sides of a proxy connection offer
ALPN = "pydapr-proxy/1"


def spiffe_id(trust_domain: str, namespace: str, app_id: str) -> str:
    """Dapr's SPIFFE id of an app: ``spiffe://<td>/ns/<namespace>/<app-id>``."""
    return f"spiffe://{trust_domain}/ns/{namespace}/{app_id}"


class TransportSecurity(Protocol):
    """What the proxy loop needs from the identity layer."""

    #: True when connections are TLS and peers are verified
    enabled: bool

    def server_context(self) -> ssl.SSLContext | None:
        """The context the listener uses (it must present the current SVID on each handshake)."""

    def client_context(self) -> ssl.SSLContext | None:
        """A context for one new outgoing connection, with the current SVID."""

    def verify_caller(self, ssl_object: Any) -> str:
        """Callee side: verify the caller's SVID; return its SPIFFE id; raise to refuse it."""

    def verify_callee(self, ssl_object: Any, expected_id: str | None) -> None:
        """Caller side: verify the callee's SVID and that its id is exactly ``expected_id``."""


class Plaintext:
    """mTLS off: plain TCP; callers are unverified (``peer_id`` is None)."""

    enabled = False

    def server_context(self) -> None:
        return None

    def client_context(self) -> None:
        return None

    def verify_caller(self, ssl_object: Any) -> str:  # pragma: no cover - never called
        raise RuntimeError("plaintext transport has no peer to verify")

    def verify_callee(self, ssl_object: Any, expected_id: str | None) -> None:  # pragma: no cover
        raise RuntimeError("plaintext transport has no peer to verify")


PLAINTEXT = Plaintext()


class MutualTLS:
    """mTLS with this sidecar's :class:`pydapr.identity.Identity` (SVIDs from the sentry).

    The listener's context switches every handshake to the current SVID; each
    outgoing connection takes the current client context, so renewals reach
    new connections while open ones finish on the certificate they started with.
    """

    enabled = True

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self._server: ssl.SSLContext | None = None

    def server_context(self) -> ssl.SSLContext:
        if self._server is None:
            self._server = self.identity.server_context(alpn=[ALPN])
        return self._server

    def client_context(self) -> ssl.SSLContext:
        return self.identity.client_context(alpn=[ALPN])

    def verify_caller(self, ssl_object: Any) -> str:
        return self.identity.verify_peer(ssl_object).uri

    def verify_callee(self, ssl_object: Any, expected_id: str | None) -> None:
        from .identity import SpiffeID
        self.identity.verify_peer(ssl_object, SpiffeID.parse(expected_id) if expected_id else None)


def transport_security(runtime: Runtime) -> TransportSecurity:
    """:class:`MutualTLS` when the sidecar has an identity (``--enable-mtls``), else plain TCP."""
    identity = getattr(runtime, "identity", None)
    return PLAINTEXT if identity is None else MutualTLS(identity)
