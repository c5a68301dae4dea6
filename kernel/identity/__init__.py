"""Workload identity for sidecar-to-sidecar mTLS: SPIFFE X.509-SVIDs, their renewal and verification.

This package is the identity half of zero-trust service invocation. The proxy
loop, name resolution and access control build on the API below; everything
here is transport-neutral (``ssl.SSLContext`` objects and a verifier).

Getting the sidecar's identity (``runtime.identity``, set at boot when mTLS is on)::

    identity = runtime.identity                # an Identity, or None when mTLS is off
    identity.spiffe_id                         # SpiffeID('public', 'default', 'myapp')
    svid = identity.current()                  # the live SVID: .chain, .key, .not_after, ...

Serving (callee side)::

    ctx = identity.server_context(alpn=["pydapr-proxy/1"])    # once; follows rotation itself
    server = await asyncio.start_server(handle, host, port, ssl=ctx)

    async def handle(reader, writer):
        ssl_object = writer.get_extra_info("ssl_object")
        try:
            caller = identity.verify_peer(ssl_object)         # SpiffeID of the calling sidecar
        except SVIDError as exc:                              # exc.check ('V1'..'V13'), exc.reason
            writer.close(); return                            # before reading a single byte
        ...  # ACL: caller.trust_domain, caller.namespace, caller.app_id

Calling (caller side)::

    ctx = identity.client_context(alpn=["pydapr-proxy/1"])    # per new connection: cheap, cached
    reader, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=None)
    callee = identity.verify_peer(writer.get_extra_info("ssl_object"),
                                  SpiffeID.any_trust_domain(namespace, app_id))   # V12 pin

Both contexts require and verify a peer certificate chained to the trust
anchors (OpenSSL, during the handshake); ``verify_peer`` then applies the full
SPIFFE checks and refuses peers from trust domains the app does not accept
(``identity.trust_domains``: its own, those its access-control policies name,
and ``spec.mtls.federatedTrustDomains``). On refusal close the connection; the
ACL's "unknown caller" path is for connections *without* mTLS only.

Rotation: ``client_context()`` always returns the current generation (call it
per connection); a ``server_context()`` switches each new handshake to the
current certificate; open connections finish on the one they started with.
``identity.subscribe(callback)`` is told about every new SVID (e.g. to refresh
pooled connections); ``identity.generation`` counts SVID and bundle changes.

Without an :class:`Identity` (tools, tests): :func:`verify_svid` checks a chain
against a :class:`TrustBundle`; :func:`server_context` / :func:`client_context`
build contexts from one :class:`SVID`; :func:`verify_peer` works on any
connection made with them.

Modules: :mod:`.spiffe` (IDs), :mod:`.pem` (PEM and keys), :mod:`.bundle`
(anchors), :mod:`.svid` (in-memory SVIDs), :mod:`.verify` (the verifier and TLS
contexts), :mod:`.protocol` (the sentry's wire format), :mod:`.client` (the
signing RPC), :mod:`.settings` (flags/env/Configuration rules), :mod:`.manager`
(:class:`Identity`).
"""
from __future__ import annotations

from .bundle import AnchorSource, BundleError, TrustBundle
from .manager import Identity, IdentityError
from .settings import IdentitySettings
from .spiffe import DEFAULT_TRUST_DOMAIN, SpiffeID, SVIDError
from .svid import SVID
from .verify import SpiffeContext, client_context, peer_chain, server_context, verify_peer, verify_svid

__all__ = [
    "Identity", "IdentityError", "IdentitySettings", "SpiffeID", "SVIDError", "SVID",
    "TrustBundle", "BundleError", "AnchorSource", "SpiffeContext", "DEFAULT_TRUST_DOMAIN",
    "verify_svid", "verify_peer", "peer_chain", "server_context", "client_context",
]
