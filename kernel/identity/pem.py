"""PEM and key helpers shared by the sidecar's identity and the sentry.

Parsing is defensive (security spec 3.4, ADA-DAP-FUZZ-2/3): every failure of
the underlying library becomes a ``ValueError`` with a message that names what
was being read and never echoes key material. Text outside PEM blocks is
ignored (comments in bundle files are common); a damaged block is an error.
"""
from __future__ import annotations

import base64
import binascii
import os
import re
from pathlib import Path
from typing import Iterable, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .spiffe import SVIDError

__all__ = [
    "PrivateKey", "pem_blocks", "load_certificates", "load_private_key", "certificates_pem",
    "private_key_pem", "new_private_key", "check_public_key", "key_matches", "signing_hash",
    "FileWatch",
]

PrivateKey = Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey]

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END ([A-Z0-9 ]+)-----", re.S)
_ALLOWED_CURVES = {"secp256r1": 256, "secp384r1": 384}
MIN_RSA_BITS = 2048


def _bytes(data: bytes | str) -> bytes:
    return data.encode("ascii", "replace") if isinstance(data, str) else bytes(data)


def pem_blocks(data: bytes | str, what: str = "PEM data") -> list[tuple[str, bytes]]:
    """``(label, der)`` for every PEM block; text between blocks is ignored.

    :raises ValueError: a block is damaged (labels differ, bad base64).
    """
    out = []
    for i, m in enumerate(_BLOCK.finditer(_bytes(data)), 1):
        label, end = m.group(1).decode(), m.group(3).decode()
        if label != end:
            raise ValueError(f"{what}: PEM block {i} begins as {label!r} but ends as {end!r}")
        body = b"".join(m.group(2).split())
        try:
            out.append((label, base64.b64decode(body, validate=True)))
        except (binascii.Error, ValueError):
            raise ValueError(f"{what}: PEM block {i} ({label}) is not valid base64") from None
    return out


def load_certificates(data: bytes | str, what: str = "certificates") -> list[x509.Certificate]:
    """Every ``CERTIFICATE`` block, in order. :raises ValueError: none found, or one is damaged."""
    certs = []
    for i, (label, der) in enumerate(pem_blocks(data, what), 1):
        if label != "CERTIFICATE":
            continue
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except Exception:
            raise ValueError(f"{what}: certificate {i} cannot be parsed") from None
    if not certs:
        raise ValueError(f"{what}: no PEM 'CERTIFICATE' block found")
    return certs


def load_private_key(data: bytes | str, what: str = "private key") -> PrivateKey:
    """One unencrypted private key (PKCS#8, SEC1 or PKCS#1 PEM). :raises ValueError:"""
    try:
        key = serialization.load_pem_private_key(_bytes(data), password=None)
    except Exception:
        raise ValueError(f"{what}: not an unencrypted PEM private key") from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey,
                            ed25519.Ed25519PrivateKey)):
        raise ValueError(f"{what}: unsupported key type {type(key).__name__}")
    return key


def certificates_pem(certs: Iterable[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def private_key_pem(key: PrivateKey) -> bytes:
    """PKCS#8 PEM. Callers keep the result in memory (see :mod:`pydapr.identity.svid`)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def new_private_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 key, the one key type pydapr generates."""
    return ec.generate_private_key(ec.SECP256R1())


def check_public_key(key: object, what: str = "key") -> None:
    """Refuse weak or unexpected keys: only ECDSA P-256/P-384, Ed25519 and RSA >= 2048 pass.

    :raises SVIDError: with check ``"KEY"``.
    """
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _ALLOWED_CURVES:
            raise SVIDError("KEY", f"{what} uses curve {key.curve.name}; only P-256 and P-384 are "
                                   "accepted")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise SVIDError("KEY", f"{what} is RSA {key.key_size}; at least {MIN_RSA_BITS} bits "
                                   "are required")
    elif not isinstance(key, ed25519.Ed25519PublicKey):
        raise SVIDError("KEY", f"{what} has unsupported type {type(key).__name__}; use ECDSA "
                               "P-256/P-384, Ed25519 or RSA >= 2048")


def _spki(key: object) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches(cert: x509.Certificate, key: PrivateKey) -> bool:
    """True if ``key`` is the private half of ``cert``'s public key."""
    return _spki(cert.public_key()) == _spki(key.public_key())


def signing_hash(key: PrivateKey) -> hashes.HashAlgorithm | None:
    """The digest to sign with ``key`` (None for Ed25519, which hashes internally)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


class FileWatch:
    """Notices when any of some files is replaced, rewritten or appears (mtime, size, inode).

    ``changed()`` is cheap (one ``stat`` per file) so callers poll it; it
    reports a change once, then remembers the new state.
    """

    def __init__(self, *paths: str | os.PathLike) -> None:
        self.paths = [Path(p) for p in paths]
        self._seen = self._state()

    def _state(self) -> tuple:
        out = []
        for p in self.paths:
            try:
                st = p.stat()
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    def changed(self) -> bool:
        state = self._state()
        if state == self._seen:
            return False
        self._seen = state
        return True
