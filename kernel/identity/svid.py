"""An X.509-SVID held in memory: certificate chain, private key and SPIFFE ID.

The private key never touches a file system. Python's ``ssl`` module only
loads keys from a path, so :func:`load_cert_chain` hands OpenSSL an anonymous
in-memory file (``memfd_create`` on Linux, read back through
``/proc/self/fd``): the PEM lives in kernel memory only and disappears when the
descriptor closes. Where ``memfd_create`` does not exist, the key is written
only in encrypted form, under a one-time password that never leaves memory, to
a private temporary file that is removed at once.
"""
from __future__ import annotations

import datetime as dt
import os
import ssl
import secrets
import sys
import tempfile
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .pem import PrivateKey, certificates_pem, private_key_pem
from .spiffe import SpiffeID

__all__ = ["SVID", "load_cert_chain"]


@dataclass(frozen=True, eq=False)
class SVID:
    """One workload identity document with its key. Immutable: renewal makes a new one.

    :ivar spiffe_id: the identity the certificate asserts.
    :ivar chain: leaf first, then the intermediates up to (not including) the root.
    :ivar key: the private key of the leaf (never printed: ``repr`` leaves it out).
    :ivar received_at: local time (epoch seconds) when this SVID was obtained.
    :ivar trust_chain: the trust anchors the issuer published with it (PEM roots),
        for information: the verifier trusts only the local anchors.
    """

    spiffe_id: SpiffeID
    chain: tuple[x509.Certificate, ...]
    key: PrivateKey = field(repr=False)
    received_at: float = 0.0
    trust_chain: tuple[x509.Certificate, ...] = field(default=(), repr=False)

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def not_before(self) -> dt.datetime:
        return self.leaf.not_valid_before_utc

    @property
    def not_after(self) -> dt.datetime:
        return self.leaf.not_valid_after_utc

    @property
    def serial(self) -> int:
        return self.leaf.serial_number

    def chain_pem(self) -> bytes:
        return certificates_pem(self.chain)

    def key_pem(self) -> bytes:
        """The key as PKCS#8 PEM bytes, in memory (for gRPC credentials and the like)."""
        return private_key_pem(self.key)

    def renew_at(self) -> float:
        """Epoch seconds at which to renew: half-way through the usable lifetime.

        The usable lifetime starts when the SVID was received (not at the
        backdated NotBefore, which would put the half-way point in the past
        for short TTLs) and ends at NotAfter.
        """
        start = max(self.not_before.timestamp(), self.received_at)
        return start + max(self.not_after.timestamp() - start, 0.0) / 2

    def load_into(self, ctx: ssl.SSLContext) -> None:
        """Install chain and key as ``ctx``'s own certificate, without touching disk."""
        load_cert_chain(ctx, self.chain_pem(), self.key)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def load_cert_chain(ctx: ssl.SSLContext, chain_pem: bytes, key: PrivateKey) -> None:
    """``ctx.load_cert_chain`` from bytes held in memory only.

    :raises ssl.SSLError: the key does not match the certificate, or the PEM is unusable.
    """
    if hasattr(os, "memfd_create") and sys.platform.startswith("linux"):
        fd = os.memfd_create("pydapr-svid", os.MFD_CLOEXEC)
        try:
            _write_all(fd, chain_pem + b"\n" + private_key_pem(key))
            ctx.load_cert_chain(f"/proc/self/fd/{fd}")  # reopened: each open reads from offset 0
        finally:
            os.close(fd)
        return
    _load_encrypted(ctx, chain_pem, key)


def _load_encrypted(ctx: ssl.SSLContext, chain_pem: bytes, key: PrivateKey) -> None:
    """Fallback without memfd (macOS...): the key is written only encrypted under a one-time
    256-bit password that stays in memory, to a private temporary file removed at once."""
    password = secrets.token_bytes(32)
    sealed = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.BestAvailableEncryption(password))
    with tempfile.TemporaryDirectory(prefix="pydapr-svid-") as tmp:  # mode 0700
        path = os.path.join(tmp, "svid.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, chain_pem + b"\n" + sealed)
        finally:
            os.close(fd)
        ctx.load_cert_chain(path, password=password)
