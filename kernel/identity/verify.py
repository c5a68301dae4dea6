"""The SPIFFE X.509-SVID verifier (security spec 2.1, checks V1 to V13) and TLS helpers.

Python's ``ssl`` has no per-connection verification callback (spec 2.4), so
verification happens in two layers:

1. During the handshake OpenSSL verifies the peer's chain against the trust
   anchors (``CERT_REQUIRED``, ``VERIFY_X509_STRICT``, partial chains off,
   hostname checks off: SVIDs carry no host names). This is V1.
2. Right after the handshake, before a byte of the request is read, the
   caller runs :func:`verify_peer`. It takes the verified chain from the
   connection and runs :func:`verify_svid`: RFC 5280 path validation again
   with ``cryptography`` (defence in depth, and the only layer when a chain
   is checked outside TLS), then the SPIFFE leaf rules V2 to V11, weak-key
   refusal, the trust-domain scope V13 and, on the client side, the pin on the
   callee's expected ID V12.

Every refusal raises :class:`~pydapr.identity.SVIDError` whose ``check``
names the rule and whose ``reason`` says what is wrong.

:func:`server_context` and :func:`client_context` build contexts from one
SVID; they are :class:`SpiffeContext` instances that remember the bundle,
the accepted trust domains and the issuer chain, so that
``verify_peer(ssl_object)`` needs nothing else. For contexts that follow
certificate rotation use :class:`pydapr.identity.Identity`.
"""
from __future__ import annotations

import datetime as dt
import ssl
from typing import Any, Collection, Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification as xv
from cryptography.x509.oid import ExtendedKeyUsageOID

from .bundle import TrustBundle
from .pem import check_public_key
from .spiffe import SpiffeID, SVIDError
from .svid import SVID

__all__ = [
    "verify_svid", "verify_peer", "peer_chain", "server_context", "client_context",
    "SpiffeContext", "MAX_CHAIN_LENGTH",
]

#: longest chain accepted from a peer (leaf, intermediates, root)
MAX_CHAIN_LENGTH = 6
_SHA256 = hashes.SHA256()
_BOTH_EKU = {ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth", ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth"}


def _certificate(item: x509.Certificate | bytes) -> x509.Certificate:
    if isinstance(item, x509.Certificate):
        return item
    try:
        return x509.load_der_x509_certificate(bytes(item))
    except Exception:
        raise SVIDError("V1", "a certificate in the chain cannot be parsed") from None


def _fmt(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ext(cert: x509.Certificate, cls: type) -> Any:
    try:
        return cert.extensions.get_extension_for_class(cls)
    except x509.ExtensionNotFound:
        return None
    except Exception:  # a duplicate or malformed extension
        raise SVIDError("V1", f"the certificate has a malformed {cls.__name__} extension") from None


def _check_time(leaf: x509.Certificate, when: dt.datetime, leeway: float) -> dt.datetime:
    """V1 (validity window), first so that an expired SVID says so plainly. Returns the check time."""
    nb, na = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if when > na:
        raise SVIDError("V1", f"the certificate expired at {_fmt(na)} (now {_fmt(when)})")
    if when < nb:
        if (nb - when).total_seconds() > leeway:
            raise SVIDError("V1", f"the certificate is not valid before {_fmt(nb)} (now {_fmt(when)})")
        return nb
    return when


def _path_validate(leaf: x509.Certificate, rest: Sequence[x509.Certificate], bundle: TrustBundle,
                   when: dt.datetime) -> None:
    """V1: RFC 5280 path validation to one of the anchors (cryptography's verifier, webpki CA rules)."""
    if not bundle.anchors:
        raise SVIDError("V1", "no trust anchors are configured")
    anchors = bundle.fingerprints()
    intermediates = [c for c in rest if c.fingerprint(_SHA256) not in anchors]
    builder = (xv.PolicyBuilder().store(xv.Store(list(bundle.anchors))).time(when)
               .max_chain_depth(MAX_CHAIN_LENGTH)
               .extension_policies(ca_policy=xv.ExtensionPolicy.webpki_defaults_ca(),
                                   ee_policy=xv.ExtensionPolicy.permit_all()))
    try:
        builder.build_client_verifier().verify(leaf, intermediates)
    except xv.VerificationError as exc:
        detail = str(exc).replace("validation failed: ", "")
        raise SVIDError("V1", f"the certificate does not chain to a trusted root ({detail})") from None


def _leaf_id(leaf: x509.Certificate) -> SpiffeID:
    """V2 to V6 and V11: exactly one URI SAN, a well-formed workload SPIFFE ID."""
    san = _ext(leaf, x509.SubjectAlternativeName)
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier) if san else []
    if len(uris) != 1:
        raise SVIDError("V2", f"the certificate has {len(uris)} URI SANs; an SVID has exactly one")
    sid = SpiffeID.parse(uris[0])
    if len(leaf.subject) == 0 and not san.critical:
        raise SVIDError("V10", "the subject is empty but the SAN extension is not critical")
    return sid


def _leaf_profile(leaf: x509.Certificate) -> None:
    """V7 to V9 and the key check."""
    bc = _ext(leaf, x509.BasicConstraints)
    if bc is not None and bc.value.ca:
        raise SVIDError("V7", "the certificate is a CA (basicConstraints cA=TRUE); an SVID leaf "
                              "must not be")
    ku = _ext(leaf, x509.KeyUsage)
    if ku is None:
        raise SVIDError("V8", "the certificate has no keyUsage extension")
    if not ku.value.digital_signature:
        raise SVIDError("V8", "keyUsage lacks digitalSignature")
    if ku.value.key_cert_sign or ku.value.crl_sign:
        raise SVIDError("V8", "keyUsage allows certificate or CRL signing; a leaf must not")
    eku = _ext(leaf, x509.ExtendedKeyUsage)
    if eku is not None:
        missing = [name for oid, name in _BOTH_EKU.items() if oid not in eku.value]
        if missing:
            raise SVIDError("V9", f"extendedKeyUsage lacks {' and '.join(missing)}; an SVID that "
                                  "has the extension needs both serverAuth and clientAuth")
    check_public_key(leaf.public_key(), "the certificate's key")


def verify_svid(chain: Sequence[x509.Certificate | bytes], bundle: TrustBundle, *,
                expected_id: SpiffeID | None = None, trust_domains: Collection[str] | None = None,
                now: dt.datetime | None = None, leeway: float = 0.0) -> SpiffeID:
    """Verify an X.509-SVID chain and return the SPIFFE ID it proves.

    :param chain: leaf first, then intermediates (``x509.Certificate`` or DER bytes);
        a root at the end is allowed and ignored.
    :param bundle: the trust anchors.
    :param expected_id: pin (V12): the ID must match it; an empty trust domain
        in ``expected_id`` matches any accepted one.
    :param trust_domains: the trust domains accepted (V13); None accepts any
        domain the anchors sign for.
    :param now: the verification time (aware UTC); default: the current time.
    :param leeway: seconds a NotBefore may lie in the future (only for a sidecar
        checking its own fresh certificate against the issuer's clock; peers get none).
    :raises SVIDError: the first failed check, with its number and a reason.
    """
    if not chain:
        raise SVIDError("V1", "no certificate was presented")
    if len(chain) > MAX_CHAIN_LENGTH:
        raise SVIDError("V1", f"the chain has {len(chain)} certificates, at most "
                              f"{MAX_CHAIN_LENGTH} are accepted")
    certs = [_certificate(c) for c in chain]
    leaf = certs[0]
    when = _check_time(leaf, now or dt.datetime.now(dt.timezone.utc), leeway)
    _path_validate(leaf, certs[1:], bundle, when)
    sid = _leaf_id(leaf)
    _leaf_profile(leaf)
    if trust_domains is not None and sid.trust_domain not in trust_domains:
        accepted = ", ".join(sorted(trust_domains)) or "none"
        raise SVIDError("V13", f"{sid} is in trust domain {sid.trust_domain!r}, which is not "
                               f"accepted here (accepted: {accepted})")
    if expected_id is not None and not sid.matches(expected_id):
        raise SVIDError("V12", f"the peer is {sid}, expected {expected_id}")
    return sid


# ----------------------------------------------------------------------------------- TLS


class SpiffeContext(ssl.SSLContext):
    """An ``ssl.SSLContext`` that remembers what :func:`verify_peer` needs.

    :ivar bundle: the trust anchors loaded into it.
    :ivar trust_domains: accepted peer trust domains (None: any).
    :ivar intermediates: this side's issuer chain, used to rebuild a peer's
        chain when the ``ssl`` module cannot return the verified chain.
    :ivar svid: the SVID this context presents.
    """

    bundle: TrustBundle
    trust_domains: frozenset[str] | None
    intermediates: tuple[x509.Certificate, ...]
    svid: SVID


def _context(protocol: int, svid: SVID, bundle: TrustBundle, trust_domains: Iterable[str] | None,
             alpn: Sequence[str] | None) -> SpiffeContext:
    ctx = SpiffeContext(protocol)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if protocol == ssl.PROTOCOL_TLS_CLIENT:
        ctx.check_hostname = False  # SVIDs name workloads by URI SAN, checked in verify_peer
    else:
        ctx.options |= ssl.OP_NO_TICKET
    ctx.verify_mode = ssl.CERT_REQUIRED
    flags = ctx.verify_flags | ssl.VERIFY_X509_STRICT
    partial = getattr(ssl, "VERIFY_X509_PARTIAL_CHAIN", 0)
    ctx.verify_flags = flags & ~partial
    ctx.load_verify_locations(cadata=bundle.pem.decode("ascii"))
    svid.load_into(ctx)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    ctx.bundle = bundle
    ctx.trust_domains = None if trust_domains is None else frozenset(trust_domains)
    ctx.intermediates = tuple(svid.chain[1:])
    ctx.svid = svid
    return ctx


def server_context(svid: SVID, bundle: TrustBundle, *, trust_domains: Iterable[str] | None = None,
                   alpn: Sequence[str] | None = None) -> SpiffeContext:
    """A server context presenting ``svid`` and requiring a client certificate chained to ``bundle``."""
    return _context(ssl.PROTOCOL_TLS_SERVER, svid, bundle, trust_domains, alpn)


def client_context(svid: SVID, bundle: TrustBundle, *, trust_domains: Iterable[str] | None = None,
                   alpn: Sequence[str] | None = None) -> SpiffeContext:
    """A client context presenting ``svid`` and requiring a server certificate chained to ``bundle``.

    Hostname checking is off; call :func:`verify_peer` with the expected ID after connecting.
    """
    return _context(ssl.PROTOCOL_TLS_CLIENT, svid, bundle, trust_domains, alpn)


def _der(item: Any) -> bytes:
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    return item.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]


def peer_chain(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> list[bytes]:
    """The peer's chain as verified by OpenSSL (DER, leaf first), or just the leaf.

    Python 3.13 has ``get_verified_chain()``; 3.10 to 3.12 have the same call on
    the private ``_sslobj``. Without either only the leaf is returned.
    """
    getter = getattr(ssl_object, "get_verified_chain", None)
    if getter is None:
        getter = getattr(getattr(ssl_object, "_sslobj", None), "get_verified_chain", None)
    chain = [_der(c) for c in (getter() or [])] if getter is not None else []
    if not chain:
        leaf = ssl_object.getpeercert(binary_form=True)
        chain = [leaf] if leaf else []
    return chain


_FROM_CONTEXT: Any = object()


def verify_peer(ssl_object: ssl.SSLObject | ssl.SSLSocket, expected_id: SpiffeID | None = None, *,
                bundle: TrustBundle | None = None,
                trust_domains: Collection[str] | None = _FROM_CONTEXT,
                now: dt.datetime | None = None) -> SpiffeID:
    """Verify the peer of a finished TLS handshake; return its SPIFFE ID.

    Call it before reading any request bytes (server side) or sending any
    (client side, with ``expected_id`` set to the callee's ID).

    :param ssl_object: ``transport.get_extra_info("ssl_object")`` or an ``SSLSocket``.
    :param expected_id: the ID the peer must have (V12), e.g.
        ``SpiffeID.any_trust_domain(namespace, app_id)`` for a callee.
    :param bundle: anchors; default: those of the connection's :class:`SpiffeContext`.
    :param trust_domains: accepted trust domains; default: the context's.
    :raises SVIDError: the peer is not acceptable (close the connection).
    """
    ctx = ssl_object.context
    if bundle is None:
        bundle = getattr(ctx, "bundle", None)
        if bundle is None:
            raise TypeError("verify_peer: the connection's context is not a SpiffeContext; pass "
                            "bundle=")
    if trust_domains is _FROM_CONTEXT:
        trust_domains = getattr(ctx, "trust_domains", None)
    chain = peer_chain(ssl_object)
    if not chain:
        raise SVIDError("V1", "the peer presented no certificate")
    if len(chain) == 1:
        chain += [c.public_bytes(Encoding.DER) for c in getattr(ctx, "intermediates", ())]
    return verify_svid(chain, bundle, expected_id=expected_id, trust_domains=trust_domains, now=now)
