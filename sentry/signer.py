"""Certificate signing: the checks of security spec 2.3 (C1 to C9) and the leaf profile.

:meth:`Signer.sign` is the whole decision, transport-free, so tests drive it
directly. In order:

* C1 the token validator named in the request (or the default) is known and enabled;
* C2 app id, namespace, trust domain and CSR are well formed (shared rules in
  :mod:`pydapr.identity.spiffe`);
* C3/C4 the validator attests the caller (join token, JWT, or nothing for ``insecure``);
* C6 the CSR is a ``CERTIFICATE REQUEST`` PEM block whose self-signature verifies
  (proof of possession), with an acceptable key (P-256/P-384, Ed25519, RSA >= 2048);
* C7 only the CSR's public key is used: its subject, SANs and extensions are ignored;
* C8 the lifetime is the server's (``workloadCertTTL``) and NotBefore is backdated
  by ``allowedClockSkew``; NotAfter never outlives the issuer;
* C9 the leaf: random positive 128-bit serial, empty subject, one critical URI SAN,
  keyUsage digitalSignature (critical), EKU serverAuth + clientAuth, cA=FALSE.

C5 (trust domain from server configuration) belongs to attested platforms; with
the self-hosted validators the sentry signs for the trust domain requested
(default ``public``), as Dapr does, and a JWT binds it through its subject.
"""
from __future__ import annotations

import datetime as dt
import logging
import secrets
from typing import Callable, Mapping

import grpc
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from pydapr.identity.pem import certificates_pem, check_public_key, pem_blocks, signing_hash
from pydapr.identity.protocol import MAX_MESSAGE, SignRequest, SignResponse
from pydapr.identity.spiffe import DEFAULT_TRUST_DOMAIN, SpiffeID, SVIDError

from .ca import CredentialStore, IssuerCredentials
from .validators import SignError, Validator

__all__ = ["Signer", "issue_leaf", "parse_csr", "SignError", "DEFAULT_TTL", "DEFAULT_SKEW"]

log = logging.getLogger("pydapr.sentry")

DEFAULT_TTL = dt.timedelta(hours=24)
DEFAULT_SKEW = dt.timedelta(minutes=15)
_CSR_LABELS = ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST", "CERTIFICATE")


def parse_csr(pem: str) -> x509.CertificateSigningRequest:
    """C6: exactly one CSR block, parsable, self-signature valid, acceptable key.

    :raises SignError: INVALID_ARGUMENT naming the problem.
    """
    if len(pem) > MAX_MESSAGE:
        raise SignError(grpc.StatusCode.INVALID_ARGUMENT, "the CSR is too large")
    try:
        blocks = [b for b in pem_blocks(pem, "the CSR") if b[0] in _CSR_LABELS]
    except ValueError as exc:
        raise SignError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
    if len(blocks) != 1:
        raise SignError(grpc.StatusCode.INVALID_ARGUMENT,
                        f"expected one PEM 'CERTIFICATE REQUEST' block, found {len(blocks)}")
    try:
        csr = x509.load_der_x509_csr(blocks[0][1])
        valid = csr.is_signature_valid
        key = csr.public_key()
    except Exception:
        raise SignError(grpc.StatusCode.INVALID_ARGUMENT, "the CSR cannot be parsed") from None
    if not valid:
        raise SignError(grpc.StatusCode.INVALID_ARGUMENT,
                        "the CSR signature does not verify (no proof of possession of the key)")
    try:
        check_public_key(key, "the CSR's key")
    except SVIDError as exc:
        raise SignError(grpc.StatusCode.INVALID_ARGUMENT, exc.reason) from None
    return csr


def issue_leaf(public_key: object, spiffe_id: SpiffeID, creds: IssuerCredentials, *,
               ttl: dt.timedelta = DEFAULT_TTL, skew: dt.timedelta = DEFAULT_SKEW,
               now: dt.datetime | None = None, dns_names: tuple[str, ...] = ()) -> x509.Certificate:
    """Sign a leaf for ``public_key`` (C8, C9). ``dns_names`` only for the sentry's own certificate."""
    now = now or dt.datetime.now(dt.timezone.utc)
    not_after = min(now + ttl, creds.issuer.not_valid_after_utc)
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(spiffe_id.uri)]
    names += [x509.DNSName(n) for n in dns_names]
    serial = secrets.randbits(128) >> 1 | 1 << 126  # positive, 127 significant bits, never 0
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([])).issuer_name(creds.issuer.subject)
               .public_key(public_key)  # type: ignore[arg-type]
               .serial_number(serial)
               .not_valid_before(now - skew).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                     ExtendedKeyUsageOID.CLIENT_AUTH]),
                              critical=False)
               .add_extension(x509.SubjectAlternativeName(names), critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   creds.key.public_key()), critical=False))
    return builder.sign(creds.key, signing_hash(creds.key))


class Signer:
    """Decides and signs one request (no transport).

    :param store: the issuer credentials (re-checked for replacement on every request).
    :param validators: enabled validators by name (``insecure``, ``jwks``, ``join-token``).
    :param default_validator: used when a request names none.
    :param ttl: workload certificate lifetime (``workloadCertTTL``).
    :param skew: NotBefore backdating (``allowedClockSkew``).
    :param clock: current time, for tests.
    """

    def __init__(self, store: CredentialStore, validators: Mapping[str, Validator],
                 default_validator: str, *, ttl: dt.timedelta = DEFAULT_TTL,
                 skew: dt.timedelta = DEFAULT_SKEW,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.store = store
        self.validators = dict(validators)
        self.default_validator = default_validator
        self.ttl = ttl
        self.skew = skew
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self.issued = 0

    def _validator(self, name: str) -> Validator:
        """C1."""
        name = name or self.default_validator
        if name not in self.validators:
            known = "unknown" if name not in ("insecure", "jwks", "join-token") else "not enabled"
            enabled = ", ".join(sorted(self.validators))
            raise SignError(grpc.StatusCode.INVALID_ARGUMENT,
                            f"token validator {name!r} is {known} on this sentry (enabled: {enabled})")
        return self.validators[name]

    def sign(self, req: SignRequest) -> SignResponse:
        """:raises SignError: with the gRPC status and a message for the caller."""
        validator = self._validator(req.token_validator)
        try:
            spiffe_id = SpiffeID.for_app(req.trust_domain or DEFAULT_TRUST_DOMAIN, req.namespace,
                                         req.id)
        except SVIDError as exc:
            raise SignError(grpc.StatusCode.PERMISSION_DENIED, exc.reason) from None
        if not req.certificate_signing_request.strip():
            raise SignError(grpc.StatusCode.PERMISSION_DENIED, "the CSR is empty")
        validator.validate(req, spiffe_id)
        csr = parse_csr(req.certificate_signing_request)
        self.store.reload_if_changed()
        creds = self.store.current
        if creds is None:
            raise SignError(grpc.StatusCode.UNAVAILABLE,
                            "the issuer credentials are being replaced or are invalid; retry later")
        leaf = issue_leaf(csr.public_key(), spiffe_id, creds, ttl=self.ttl, skew=self.skew,
                          now=self.clock())
        self.issued += 1
        log.info("issued %s (serial %x, valid until %s, validator %s)", spiffe_id, leaf.serial_number,
                 leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"), validator.name)
        return SignResponse(
            workload_certificate=certificates_pem((leaf, *creds.chain)).decode(),
            trust_chain_certificates=[certificates_pem([r]).decode() for r in creds.roots.anchors],
            valid_until=leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"))
