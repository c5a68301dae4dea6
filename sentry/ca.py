"""The sentry's issuer credentials: create, load, validate and hot-reload them.

The credentials directory holds three files (names configurable, Dapr's defaults):

* ``ca.crt``: the trust anchors, one or more self-signed roots (two during a
  root rotation with overlap); published to workloads as the trust bundle;
* ``issuer.crt``: the issuer certificate, optionally followed by
  intermediates up to a root (a root in this file is dropped);
* ``issuer.key``: the issuer's private key, mode 0600.

When all three are absent the sentry creates a self-signed root and an issuer
(ECDSA P-256, valid one year); when some but not all exist it refuses to
start rather than overwrite material an operator put there. Loaded material is
validated as Dapr's ``ca/validate.go`` does: anchors are self-signed roots, the
issuer chain is in order and ends at an anchor, the key matches the issuer,
and the issuer is a CA allowed to sign certificates.

:class:`CredentialStore` watches the files (mtime, size, inode). Replaced
credentials are validated and used from the next request on; while the files
are inconsistent (half-replaced) or invalid the store has no current
credentials and signing answers UNAVAILABLE: the sentry fails closed rather
than keep signing with material the operator meant to retire.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from pydapr.identity.bundle import BundleError, TrustBundle
from pydapr.identity.pem import (FileWatch, PrivateKey, certificates_pem, key_matches,
                                 load_certificates, load_private_key, new_private_key,
                                 private_key_pem, signing_hash)

__all__ = ["IssuerCredentials", "CredentialsError", "CredentialStore", "generate_credentials",
           "validate_credentials", "CA_LIFETIME"]

log = logging.getLogger("pydapr.sentry")

#: lifetime of a generated root and issuer
CA_LIFETIME = dt.timedelta(days=365)


class CredentialsError(ValueError):
    """The issuer credentials are missing, inconsistent or unusable; the message says which file."""


@dataclass(frozen=True)
class IssuerCredentials:
    """A validated root bundle, issuer chain and issuer key.

    :ivar roots: the trust anchors (``ca.crt``).
    :ivar chain: the issuer first, then intermediates, without the root.
    :ivar key: the issuer's private key (kept out of ``repr``).
    """

    roots: TrustBundle
    chain: tuple[x509.Certificate, ...]
    key: PrivateKey = field(repr=False)

    @property
    def issuer(self) -> x509.Certificate:
        return self.chain[0]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pydapr"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca_cert(subject: x509.Name, key: PrivateKey, issuer: x509.Name, signer: PrivateKey,
             path_length: int, now: dt.datetime) -> x509.Certificate:
    pub = key.public_key()
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer).public_key(pub)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=15)).not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                           critical=False)
            .sign(signer, signing_hash(signer)))


def generate_credentials(trust_domain: str, now: dt.datetime | None = None) -> IssuerCredentials:
    """A new self-signed root and an issuer under it (ECDSA P-256, one year)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    root_key, issuer_key = new_private_key(), new_private_key()
    root_name = _name(f"pydapr root CA ({trust_domain})")
    root = _ca_cert(root_name, root_key, root_name, root_key, 1, now)
    issuer = _ca_cert(_name(f"pydapr issuer ({trust_domain})"), issuer_key, root_name, root_key, 0,
                      now)
    return IssuerCredentials(TrustBundle.of(root, source="generated root"), (issuer,), issuer_key)


def _check_ca(cert: x509.Certificate, what: str) -> None:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise CredentialsError(f"{what} is not a CA certificate (basicConstraints and keyUsage "
                               "are required)") from None
    if not bc.ca or not ku.key_cert_sign:
        raise CredentialsError(f"{what} is not allowed to sign certificates (needs cA=TRUE and "
                               "keyCertSign)")
    pub = cert.public_key()
    if not isinstance(pub, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        raise CredentialsError(f"{what} has a {type(pub).__name__}; pydapr's verifier accepts "
                               "ECDSA or RSA CA keys only")


def validate_credentials(roots_pem: bytes, issuer_pem: bytes, key_pem: bytes,
                         where: str = "credentials", now: dt.datetime | None = None
                         ) -> IssuerCredentials:
    """Parse and cross-check the three PEM files. :raises CredentialsError: naming the problem."""
    now = now or dt.datetime.now(dt.timezone.utc)
    try:
        roots = TrustBundle.from_pem(roots_pem, f"{where}: trust anchors")
        certs = load_certificates(issuer_pem, f"{where}: issuer certificate")
        key = load_private_key(key_pem, f"{where}: issuer key")
    except (BundleError, ValueError) as exc:
        raise CredentialsError(str(exc)) from None
    chain = [c for c in certs if c not in roots]
    if not chain:
        raise CredentialsError(f"{where}: the issuer certificate file holds only roots")
    for root in roots.anchors:
        _check_ca(root, f"{where}: root {root.subject.rfc4514_string()}")
    for i, cert in enumerate(chain):
        what = f"{where}: issuer chain certificate {i + 1}"
        _check_ca(cert, what)
        if cert.not_valid_after_utc <= now:
            raise CredentialsError(f"{what} expired at {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z")
        parents = chain[i + 1:i + 2] or [r for r in roots.anchors if r.subject == cert.issuer]
        if not any(_issued_by(cert, p) for p in parents):
            raise CredentialsError(f"{what} is not signed by the next certificate in the chain or "
                                   "by a root in the trust anchors (wrong order or foreign chain)")
    if not key_matches(chain[0], key):
        raise CredentialsError(f"{where}: the issuer key does not match the issuer certificate")
    return IssuerCredentials(roots, tuple(chain), key)


def _issued_by(cert: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(parent)
        return True
    except Exception:
        return False


class CredentialStore:
    """The credentials directory: created when empty, loaded, and watched for replacement.

    :param directory: ``--issuer-credentials``.
    :param trust_domain: used in the names of generated certificates.
    """

    def __init__(self, directory: str | os.PathLike, trust_domain: str = "localhost", *,
                 ca_filename: str = "ca.crt", cert_filename: str = "issuer.crt",
                 key_filename: str = "issuer.key") -> None:
        self.dir = Path(directory).expanduser()
        self.trust_domain = trust_domain
        self.paths = (self.dir / ca_filename, self.dir / cert_filename, self.dir / key_filename)
        self.current: IssuerCredentials | None = None
        self.error = ""
        self.generation = 0
        self._watch: FileWatch | None = None
        self._lock = threading.Lock()

    def ensure(self) -> IssuerCredentials:
        """Create credentials when none exist, else load them. :raises CredentialsError:"""
        present = [p.exists() for p in self.paths]
        if not any(present):
            self._write(generate_credentials(self.trust_domain))
            log.info("created a self-signed root and issuer in %s", self.dir)
        elif not all(present):
            missing = ", ".join(p.name for p, ok in zip(self.paths, present) if not ok)
            raise CredentialsError(f"{self.dir}: {missing} missing while the other credential "
                                   "files exist; supply all three or none (none: the sentry "
                                   "creates them)")
        self._watch = FileWatch(*self.paths)
        self.current = self._load()
        self.generation += 1
        return self.current

    def _load(self) -> IssuerCredentials:
        try:
            data = [p.read_bytes() for p in self.paths]
        except OSError as exc:
            raise CredentialsError(f"{exc.filename}: cannot read ({exc.strerror})") from None
        return validate_credentials(*data, where=str(self.dir))

    def reload_if_changed(self) -> bool:
        """Re-read the files when they changed; True when new valid credentials are in use.

        Thread-safe: the signer calls it from worker threads, the poller from the event loop.
        """
        with self._lock:
            return self._reload()

    def _reload(self) -> bool:
        if self._watch is None or not self._watch.changed():
            return False
        try:
            creds = self._load()
        except CredentialsError as exc:
            if self.current is not None or exc.args[0] != self.error:
                log.error("issuer credentials unusable, signing is suspended until fixed: %s", exc)
            self.current, self.error = None, str(exc)
            return False
        self.current, self.error = creds, ""
        self.generation += 1
        log.info("issuer credentials reloaded from %s (issuer %s, %d trust anchor(s))", self.dir,
                 creds.issuer.subject.rfc4514_string(), len(creds.roots))
        return True

    def _write(self, creds: IssuerCredentials) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        ca, cert, key = self.paths
        _atomic_write(key, private_key_pem(creds.key), 0o600)
        _atomic_write(cert, certificates_pem(creds.chain), 0o644)
        _atomic_write(ca, creds.roots.pem, 0o644)


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write through a temporary file created with ``mode`` from the start, then rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
