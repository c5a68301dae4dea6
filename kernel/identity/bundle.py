"""Trust bundles: the root certificates a verifier accepts.

A bundle holds only self-signed CA roots. An intermediate placed in a trust
store would itself become an anchor (OpenSSL's partial-chain mode, security
spec 2.4), so :meth:`TrustBundle.from_pem` refuses anything that is not a root.
During a root rotation the bundle simply holds both roots (overlap).

:class:`AnchorSource` gives the sidecar its anchors from ``DAPR_TRUST_ANCHORS``
(static PEM text) or from a file that is watched: a replaced file yields a new
bundle, and an unparsable one is an error (fail closed, as dapr/kit does),
never a silent keep or drop of trust.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from .pem import FileWatch, certificates_pem, load_certificates

__all__ = ["TrustBundle", "BundleError", "AnchorSource"]

_SHA256 = hashes.SHA256()


class BundleError(ValueError):
    """Trust anchors are missing or unusable; the message names the source."""


def _is_self_signed_root(cert: x509.Certificate) -> bool:
    if cert.subject != cert.issuer:
        return False
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    if not bc.ca:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:
        return False
    return True


@dataclass(frozen=True)
class TrustBundle:
    """An immutable set of trust anchors (self-signed roots), in file order, without duplicates."""

    anchors: tuple[x509.Certificate, ...]
    source: str = ""

    @classmethod
    def from_pem(cls, data: bytes | str, source: str = "trust anchors") -> TrustBundle:
        """:raises BundleError: no certificate, a damaged one, or one that is not a CA root."""
        try:
            certs = load_certificates(data, source)
        except ValueError as exc:
            raise BundleError(str(exc)) from None
        seen: dict[bytes, x509.Certificate] = {}
        for i, cert in enumerate(certs, 1):
            if not _is_self_signed_root(cert):
                name = cert.subject.rfc4514_string() or "no subject"
                raise BundleError(f"{source}: certificate {i} ({name}) is not a self-signed CA "
                                  "root; only roots may be trust anchors")
            seen.setdefault(cert.fingerprint(_SHA256), cert)
        return cls(tuple(seen.values()), source)

    @classmethod
    def of(cls, *anchors: x509.Certificate, source: str = "trust anchors") -> TrustBundle:
        return cls.from_pem(certificates_pem(anchors), source)

    @property
    def pem(self) -> bytes:
        return certificates_pem(self.anchors)

    def fingerprints(self) -> frozenset[bytes]:
        return frozenset(c.fingerprint(_SHA256) for c in self.anchors)

    def __contains__(self, cert: object) -> bool:
        return isinstance(cert, x509.Certificate) and cert.fingerprint(_SHA256) in self.fingerprints()

    def __len__(self) -> int:
        return len(self.anchors)

    def same_as(self, other: TrustBundle) -> bool:
        return self.fingerprints() == other.fingerprints()

    def digest(self) -> str:
        """A short stable name for logs (first 12 hex digits over the sorted fingerprints)."""
        return hashlib.sha256(b"".join(sorted(self.fingerprints()))).hexdigest()[:12]


class AnchorSource:
    """Where the sidecar's trust anchors come from: PEM text, or a watched file.

    :param pem: anchors as PEM text (``DAPR_TRUST_ANCHORS``); wins over ``path``.
    :param path: a file of PEM anchors, re-read when it changes (see :meth:`poll`).
    """

    def __init__(self, pem: str | bytes = "", path: str | os.PathLike | None = None) -> None:
        if not pem and not path:
            raise BundleError("mTLS needs trust anchors: set DAPR_TRUST_ANCHORS to the root "
                              "certificate(s) in PEM, or pass --trust-anchors-file")
        self.pem = pem
        self.path = Path(path) if (path and not pem) else None
        self._watch = FileWatch(self.path) if self.path else None

    @property
    def watched(self) -> bool:
        return self.path is not None

    def load(self) -> TrustBundle:
        """Read the anchors now. :raises BundleError: missing, empty or unusable."""
        if self.path is None:
            return TrustBundle.from_pem(self.pem, "DAPR_TRUST_ANCHORS")
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise BundleError(f"{self.path}: cannot read the trust anchors ({exc.strerror})") from None
        return TrustBundle.from_pem(data, str(self.path))

    def changed(self) -> bool:
        """True once after the file was replaced or rewritten (always False for PEM text)."""
        return self._watch is not None and self._watch.changed()
