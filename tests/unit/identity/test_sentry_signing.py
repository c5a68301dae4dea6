"""Sentry signing decisions: checks C1 to C9 of security spec 2.3, driven without a transport."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pydapr.identity import SpiffeID, TrustBundle, verify_svid
from pydapr.identity.pem import load_certificates, new_private_key
from pydapr.identity.protocol import SignRequest
from pydapr.sentry import CredentialStore, Signer, SignError
from pydapr.sentry.validators import InsecureValidator
from pydapr.testing.pki import weak_ec_key

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def make_csr(key=None, *, extra: bool = False, label: str = "CERTIFICATE REQUEST") -> str:
    key = key or new_private_key()
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if extra:  # everything here must be ignored (C7)
        b = (x509.CertificateSigningRequestBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin")]))
             .add_extension(x509.SubjectAlternativeName([
                 x509.UniformResourceIdentifier("spiffe://evil/ns/kube-system/admin"),
                 x509.DNSName("sentry.example")]), critical=False)
             .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True))
    pem = b.sign(key, hashes.SHA256()).public_bytes(Encoding.PEM).decode()
    return pem.replace("CERTIFICATE REQUEST", label)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> CredentialStore:
    s = CredentialStore(tmp_path_factory.mktemp("creds"), "localhost")
    s.ensure()
    return s


@pytest.fixture
def signer(store: CredentialStore) -> Signer:
    return Signer(store, {"insecure": InsecureValidator()}, "insecure",
                  ttl=dt.timedelta(hours=2), skew=dt.timedelta(minutes=15), clock=lambda: NOW)


def req(**kw) -> SignRequest:
    base = {"id": "app", "namespace": "default", "certificate_signing_request": make_csr()}
    base.update(kw)
    return SignRequest(**base)


def refused(signer: Signer, request: SignRequest, status: grpc.StatusCode, fragment: str) -> None:
    with pytest.raises(SignError) as info:
        signer.sign(request)
    assert info.value.status == status, info.value.message
    assert fragment in info.value.message, info.value.message


def issued(signer: Signer, request: SignRequest) -> list[x509.Certificate]:
    return load_certificates(signer.sign(request).workload_certificate)


# -- C1 validator ------------------------------------------------------------------------------

def test_c1_unknown_or_disabled_validator_is_invalid_argument(signer: Signer) -> None:
    refused(signer, req(token_validator="kubernetes"), grpc.StatusCode.INVALID_ARGUMENT, "unknown")
    refused(signer, req(token_validator="jwks"), grpc.StatusCode.INVALID_ARGUMENT, "not enabled")
    assert issued(signer, req(token_validator="insecure"))


# -- C2 identity rules ------------------------------------------------------------------------

@pytest.mark.parametrize("fields,fragment", [
    ({"id": ""}, "app id is empty"),
    ({"id": "a" * 65}, "65 characters"),
    ({"id": "my.app"}, "contains a dot"),
    ({"namespace": ""}, "namespace is empty"),
    ({"namespace": "a/b"}, "namespace"),
    ({"trust_domain": "Evil:443"}, "trust domain"),
    ({"certificate_signing_request": "  "}, "CSR is empty"),
])
def test_c2_malformed_identity_is_permission_denied(signer: Signer, fields: dict, fragment: str) -> None:
    refused(signer, req(**fields), grpc.StatusCode.PERMISSION_DENIED, fragment)


def test_c2_app_id_of_64_characters_is_fine(signer: Signer) -> None:
    leaf = issued(signer, req(id="a" * 64))[0]
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
        .get_values_for_type(x509.UniformResourceIdentifier) == [f"spiffe://public/ns/default/{'a' * 64}"]


def test_trust_domain_defaults_to_public_and_a_requested_one_is_signed(signer: Signer,
                                                                       store: CredentialStore) -> None:
    for td, expect in (("", "public"), ("domain1", "domain1")):
        chain = issued(signer, req(trust_domain=td))
        assert verify_svid(chain, store.current.roots, now=NOW) == SpiffeID(expect, "default", "app")


# -- C6 CSR ----------------------------------------------------------------------------------

def _tampered() -> str:
    pem = make_csr()
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(Encoding.DER))
    der[-1] ^= 0x01  # the last byte of the signature
    return x509.load_der_x509_csr(bytes(der)).public_bytes(Encoding.PEM).decode()


@pytest.mark.parametrize("csr,fragment", [
    ("hello", "found 0"),
    (make_csr(label="PUBLIC KEY"), "found 0"),
    (make_csr() + make_csr(), "found 2"),
    ("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", "cannot be parsed"),
    ("-----BEGIN CERTIFICATE REQUEST-----\n%%%\n-----END CERTIFICATE REQUEST-----\n", "base64"),
    (_tampered(), "proof of possession"),
    (make_csr(rsa.generate_private_key(65537, 1024)), "RSA 1024"),
])
def test_c6_bad_csr_is_invalid_argument(signer: Signer, csr: str, fragment: str) -> None:
    refused(signer, req(certificate_signing_request=csr), grpc.StatusCode.INVALID_ARGUMENT, fragment)


def test_c6_weak_curve_is_refused(signer: Signer) -> None:
    key = weak_ec_key()
    if key is None:
        pytest.skip("this OpenSSL build has no P-192")
    refused(signer, req(certificate_signing_request=make_csr(key)),
            grpc.StatusCode.INVALID_ARGUMENT, "secp192r1")


def test_c6_legacy_certificate_label_is_tolerated(signer: Signer) -> None:
    assert issued(signer, req(certificate_signing_request=make_csr(label="CERTIFICATE")))


# -- C7 only the public key ------------------------------------------------------------------

def test_c7_everything_but_the_public_key_is_ignored(signer: Signer) -> None:
    key = new_private_key()
    leaf = issued(signer, req(certificate_signing_request=make_csr(key, extra=True)))[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://public/ns/default/app"]
    assert san.get_values_for_type(x509.DNSName) == []
    assert len(leaf.subject) == 0
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert leaf.public_key().public_numbers() == key.public_key().public_numbers()


# -- C8 lifetime -------------------------------------------------------------------------------

def test_c8_ttl_is_the_servers_and_not_before_is_backdated(signer: Signer) -> None:
    leaf = issued(signer, req())[0]
    assert leaf.not_valid_before_utc == NOW - dt.timedelta(minutes=15)
    assert leaf.not_valid_after_utc == NOW + dt.timedelta(hours=2)


def test_c8_a_leaf_never_outlives_its_issuer(store: CredentialStore) -> None:
    long = Signer(store, {"insecure": InsecureValidator()}, "insecure",
                  ttl=dt.timedelta(days=5000))
    leaf = load_certificates(long.sign(req()).workload_certificate)[0]
    assert leaf.not_valid_after_utc == store.current.issuer.not_valid_after_utc


# -- C9 leaf profile ---------------------------------------------------------------------------

def test_c9_leaf_profile(signer: Signer, store: CredentialStore) -> None:
    resp = signer.sign(req())
    chain = load_certificates(resp.workload_certificate)
    leaf = chain[0]
    assert chain[1:] == list(store.current.chain)
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert not ku.value.key_encipherment
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical
    assert 0 < leaf.serial_number < 2 ** 128
    serials = {issued(signer, req())[0].serial_number for _ in range(5)}
    assert len(serials) == 5
    bundle = TrustBundle.from_pem("".join(resp.trust_chain_certificates))
    assert bundle.same_as(store.current.roots)
    assert resp.valid_until == (NOW + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert verify_svid(chain, bundle, now=NOW).app_id == "app"


def test_unusable_credentials_mean_unavailable(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path, "localhost")
    store.ensure()
    store.current = None  # as while the files are being replaced
    s = Signer(store, {"insecure": InsecureValidator()}, "insecure")
    refused(s, req(), grpc.StatusCode.UNAVAILABLE, "retry later")
