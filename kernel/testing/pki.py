"""Certificates for tests, generated at test time (no private key is ever committed).

:class:`TestPKI` is a root and an issuer (ECDSA P-256) with a :meth:`TestPKI.leaf`
factory whose knobs produce every kind of bad SVID the verifier must refuse::

    pki = TestPKI()
    good = pki.leaf("spiffe://public/ns/default/app")         # an SVID like the sentry's
    expired = pki.leaf(uri, not_after=-60)                    # seconds relative to now
    two_uris = pki.leaf(uri, uris=[uri, "https://x"])
    verify_svid(good.chain, pki.bundle)

``leaf()`` returns an :class:`pydapr.identity.SVID` (chain and key), ready for
:func:`pydapr.identity.server_context` and friends.
"""
from __future__ import annotations

import datetime as dt
import time
from typing import Any, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..identity.bundle import TrustBundle
from ..identity.pem import PrivateKey, certificates_pem, new_private_key, private_key_pem, signing_hash
from ..identity.spiffe import SpiffeID
from ..identity.svid import SVID

__all__ = ["TestPKI", "KU_LEAF", "KU_CA", "weak_ec_key"]

KU_LEAF = {"digital_signature": True}
KU_CA = {"digital_signature": True, "key_cert_sign": True, "crl_sign": True}
_KU_FIELDS = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
              "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
_BOTH = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]


def _key_usage(flags: dict[str, bool]) -> x509.KeyUsage:
    return x509.KeyUsage(**{f: bool(flags.get(f, False)) for f in _KU_FIELDS})


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class TestPKI:
    """A root and an issuer under it; :meth:`leaf` issues test certificates.

    :param name: distinguishes the subjects of several PKIs in one test.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, name: str = "test") -> None:
        self.now = dt.datetime.now(dt.timezone.utc)
        self.root_key = new_private_key()
        self.root = self.ca(_name(f"{name} root"), self.root_key, None, None, path_length=1)
        self.issuer_key = new_private_key()
        self.issuer = self.ca(_name(f"{name} issuer"), self.issuer_key, self.root, self.root_key,
                              path_length=0)

    @property
    def bundle(self) -> TrustBundle:
        return TrustBundle.of(self.root)

    @property
    def root_pem(self) -> str:
        return certificates_pem([self.root]).decode()

    def ca(self, subject: x509.Name, key: PrivateKey, parent: x509.Certificate | None,
           parent_key: PrivateKey | None, *, path_length: int | None = 0,
           not_after: float = 86400.0) -> x509.Certificate:
        signer = parent_key or key
        return (x509.CertificateBuilder().subject_name(subject)
                .issuer_name(parent.subject if parent is not None else subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(self.now - dt.timedelta(hours=1))
                .not_valid_after(self.now + dt.timedelta(seconds=not_after))
                .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
                .add_extension(_key_usage(KU_CA), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    signer.public_key()), critical=False)
                .sign(signer, signing_hash(signer)))

    def leaf(self, uri: str = "spiffe://public/ns/default/app", *, uris: Sequence[str] | None = None,
             key: Any = None, ca: bool = False, key_usage: dict[str, bool] | None = KU_LEAF,
             eku: Sequence[x509.ObjectIdentifier] | None = tuple(_BOTH),
             not_before: float = -60.0, not_after: float = 3600.0, san_critical: bool = True,
             subject: x509.Name | None = None, dns: Sequence[str] = (),
             issuer: tuple[x509.Certificate, PrivateKey] | None = None) -> SVID:
        """A leaf; times are seconds relative to now; ``None`` for ``key_usage``/``eku`` omits them."""
        key = key or new_private_key()
        parent, parent_key = issuer or (self.issuer, self.issuer_key)
        names = [x509.UniformResourceIdentifier(u) for u in (uris if uris is not None else [uri])]
        names += [x509.DNSName(d) for d in dns]
        b = (x509.CertificateBuilder().subject_name(subject or x509.Name([]))
             .issuer_name(parent.subject).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(self.now + dt.timedelta(seconds=not_before))
             .not_valid_after(self.now + dt.timedelta(seconds=not_after))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 parent_key.public_key()), critical=False))
        if names:
            b = b.add_extension(x509.SubjectAlternativeName(names), critical=san_critical)
        if key_usage is not None:
            b = b.add_extension(_key_usage(key_usage), critical=True)
        if eku is not None:
            b = b.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        cert = b.sign(parent_key, signing_hash(parent_key))
        chain = (cert, parent) if parent is not self.root else (cert,)
        try:
            sid = SpiffeID.parse(uri)
        except ValueError:
            sid = SpiffeID("invalid", "invalid", "invalid")
        return SVID(sid, chain, key, received_at=time.time())

    def svid(self, trust_domain: str = "public", namespace: str = "default",
             app_id: str = "app", **kwargs: Any) -> SVID:
        """A good SVID for ``spiffe://<trust_domain>/ns/<namespace>/<app_id>``."""
        return self.leaf(SpiffeID(trust_domain, namespace, app_id).uri, **kwargs)

    def credentials_pem(self) -> tuple[bytes, bytes, bytes]:
        """``(ca.crt, issuer.crt, issuer.key)`` contents, for a sentry credentials folder."""
        return (certificates_pem([self.root]), certificates_pem([self.issuer]),
                private_key_pem(self.issuer_key))


def weak_ec_key() -> PrivateKey | None:
    """A P-192 key when the OpenSSL build still has the curve, else None."""
    try:
        return ec.generate_private_key(ec.SECP192R1())  # type: ignore[return-value]
    except Exception:
        return None
