"""The SVID verifier (security spec 2.1): a generated certificate matrix, each refusal with its reason."""
from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pydapr.identity import SpiffeID, SVIDError, TrustBundle, verify_svid
from pydapr.identity.pem import new_private_key
from pydapr.testing.pki import KU_CA, TestPKI, weak_ec_key

ID = "spiffe://public/ns/default/app"


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI("main")


@pytest.fixture(scope="module")
def foreign() -> TestPKI:
    return TestPKI("foreign")


def test_good_svid_verifies_and_returns_its_id(pki: TestPKI) -> None:
    svid = pki.leaf(ID)
    assert verify_svid(svid.chain, pki.bundle) == SpiffeID("public", "default", "app")
    # DER bytes and a root at the end of the chain are accepted too
    der = [c.public_bytes(Encoding.DER) for c in svid.chain] + [pki.root]
    assert verify_svid(der, pki.bundle).app_id == "app"


def _refused(chain, bundle, check: str, fragment: str, **kw) -> SVIDError:
    with pytest.raises(SVIDError) as info:
        verify_svid(chain, bundle, **kw)
    assert info.value.check == check, info.value
    assert fragment in info.value.reason, info.value.reason
    return info.value


MATRIX = [
    # (name, leaf kwargs, check, reason fragment)
    ("expired", {"not_before": -7200, "not_after": -60}, "V1", "expired at"),
    ("not yet valid", {"not_before": 600, "not_after": 7200}, "V1", "not valid before"),
    ("CA leaf", {"ca": True}, "V7", "is a CA"),
    ("two URI SANs", {"uris": [ID, "spiffe://public/ns/default/other"]}, "V2", "2 URI SANs"),
    ("a second non-spiffe URI", {"uris": [ID, "https://example.com/"]}, "V2", "2 URI SANs"),
    ("no URI SAN", {"uris": [], "dns": ["app.example"]}, "V2", "0 URI SANs"),
    ("no SAN at all", {"uris": []}, "V2", "0 URI SANs"),
    ("no digitalSignature", {"key_usage": {"key_encipherment": True}}, "V8", "digitalSignature"),
    ("no keyUsage", {"key_usage": None}, "V8", "no keyUsage"),
    ("leaf may sign certificates", {"key_usage": KU_CA}, "V8", "certificate or CRL signing"),
    ("serverAuth only", {"eku": [ExtendedKeyUsageOID.SERVER_AUTH]}, "V9", "clientAuth"),
    ("clientAuth only", {"eku": [ExtendedKeyUsageOID.CLIENT_AUTH]}, "V9", "serverAuth"),
    ("SAN not critical with empty subject", {"san_critical": False}, "V10", "not critical"),
    ("https scheme", {"uri": "https://public/ns/default/app"}, "V3", "spiffe://"),
    ("upper-case trust domain", {"uri": "spiffe://PUBLIC/ns/default/app"}, "V4", "lowercase"),
    ("port in trust domain", {"uri": "spiffe://public:443/ns/default/app"}, "V4", "port"),
    ("query", {"uri": "spiffe://public/ns/default/app?x=1"}, "V3", "query"),
    ("dot segment", {"uri": "spiffe://public/ns/../app"}, "V5", "'..'"),
    ("root ID as a leaf", {"uri": "spiffe://public"}, "V6", "no path"),
    ("extra path segment", {"uri": "spiffe://public/ns/default/app/extra"}, "V5", "form"),
    ("not Dapr's profile", {"uri": "spiffe://public/workload/app"}, "V5", "form"),
    ("10 KB URI", {"uri": "spiffe://public/ns/default/" + "a" * 10_000}, "V11", "2048"),
]


@pytest.mark.parametrize("name,kwargs,check,fragment", MATRIX, ids=[m[0] for m in MATRIX])
def test_matrix_bad_leaf_is_refused_with_a_reason(pki: TestPKI, name, kwargs, check, fragment) -> None:
    kwargs = dict(kwargs)
    uri = kwargs.pop("uri", ID)
    svid = pki.leaf(uri, **kwargs)
    _refused(svid.chain, pki.bundle, check, fragment)


def test_foreign_anchor_is_refused(pki: TestPKI, foreign: TestPKI) -> None:
    _refused(foreign.leaf(ID).chain, pki.bundle, "V1", "does not chain to a trusted root")


def test_leaf_signed_by_an_untrusted_issuer_claiming_our_issuer_name(pki: TestPKI) -> None:
    imposter_key = new_private_key()
    imposter = pki.ca(pki.issuer.subject, imposter_key, None, None)  # self-signed, same name
    svid = pki.leaf(ID, issuer=(imposter, imposter_key))
    _refused(svid.chain, pki.bundle, "V1", "does not chain")


def test_issuer_without_ca_flag_cannot_sign_leaves(pki: TestPKI) -> None:
    fake_issuer = pki.leaf("spiffe://public/ns/default/issuer")  # a leaf acting as an issuer
    svid = pki.leaf(ID, issuer=(fake_issuer.leaf, fake_issuer.key))
    _refused(svid.chain, pki.bundle, "V1", "does not chain")


def test_wrong_trust_domain_is_refused_when_domains_are_scoped(pki: TestPKI) -> None:
    svid = pki.leaf("spiffe://evil/ns/default/app")
    assert verify_svid(svid.chain, pki.bundle).trust_domain == "evil"  # same CA: passes TLS (V1)
    _refused(svid.chain, pki.bundle, "V13", "'evil'", trust_domains={"public", "domain1"})


def test_another_apps_valid_svid_is_refused_when_an_id_is_pinned(pki: TestPKI) -> None:
    other = pki.leaf("spiffe://public/ns/default/other")
    _refused(other.chain, pki.bundle, "V12", "expected",
             expected_id=SpiffeID("public", "default", "app"))
    _refused(other.chain, pki.bundle, "V12", "expected",
             expected_id=SpiffeID.any_trust_domain("default", "app"))
    ns = pki.leaf("spiffe://public/ns/prod/app")
    _refused(ns.chain, pki.bundle, "V12", "expected",
             expected_id=SpiffeID.any_trust_domain("default", "app"))
    td = pki.leaf("spiffe://domain1/ns/default/app")
    _refused(td.chain, pki.bundle, "V12", "expected", expected_id=SpiffeID("public", "default", "app"))
    assert verify_svid(td.chain, pki.bundle,
                       expected_id=SpiffeID.any_trust_domain("default", "app")).trust_domain == "domain1"


def test_weak_rsa_key_is_refused(pki: TestPKI) -> None:
    svid = pki.leaf(ID, key=rsa.generate_private_key(65537, 1024))
    _refused(svid.chain, pki.bundle, "KEY", "RSA 1024")


def test_weak_curve_is_refused(pki: TestPKI) -> None:
    key = weak_ec_key()
    if key is None:
        pytest.skip("this OpenSSL build has no P-192")
    _refused(pki.leaf(ID, key=key).chain, pki.bundle, "KEY", "secp192r1")


def test_rsa_2048_is_accepted(pki: TestPKI) -> None:
    svid = pki.leaf(ID, key=rsa.generate_private_key(65537, 2048))
    assert verify_svid(svid.chain, pki.bundle).app_id == "app"


def test_eku_absent_is_accepted(pki: TestPKI) -> None:
    assert verify_svid(pki.leaf(ID, eku=None).chain, pki.bundle).app_id == "app"


def test_subject_present_with_non_critical_san_is_accepted(pki: TestPKI) -> None:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app")])
    assert verify_svid(pki.leaf(ID, subject=subject, san_critical=False).chain, pki.bundle)


def test_expired_intermediate_is_refused(pki: TestPKI) -> None:
    key = new_private_key()
    old = pki.ca(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old issuer")]), key, pki.root,
                 pki.root_key, not_after=-10)
    svid = pki.leaf(ID, issuer=(old, key), not_after=3600)
    _refused(svid.chain, pki.bundle, "V1", "does not chain")


def test_verification_time_is_injectable_and_has_no_leeway_for_peers(pki: TestPKI) -> None:
    svid = pki.leaf(ID, not_before=-60, not_after=60)
    later = pki.now + dt.timedelta(seconds=61)
    _refused(svid.chain, pki.bundle, "V1", "expired", now=later)
    early = pki.leaf(ID, not_before=30, not_after=600)
    _refused(early.chain, pki.bundle, "V1", "not valid before")
    assert verify_svid(early.chain, pki.bundle, leeway=60).app_id == "app"


def test_empty_and_overlong_chains_are_refused(pki: TestPKI) -> None:
    _refused([], pki.bundle, "V1", "no certificate")
    svid = pki.leaf(ID)
    _refused([svid.leaf] * 7, pki.bundle, "V1", "at most")
    _refused([b"not a certificate"], pki.bundle, "V1", "cannot be parsed")


def test_root_overlap_bundle_trusts_both_roots(pki: TestPKI, foreign: TestPKI) -> None:
    both = TrustBundle.of(pki.root, foreign.root)
    assert verify_svid(pki.leaf(ID).chain, both)
    assert verify_svid(foreign.leaf(ID).chain, both)
