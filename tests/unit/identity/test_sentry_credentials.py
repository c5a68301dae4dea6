"""Issuer credentials: generation, validation on load (Dapr's ca/validate.go cases), hot reload."""
from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from pydapr.identity.pem import certificates_pem, private_key_pem
from pydapr.sentry import CredentialsError, CredentialStore
from pydapr.sentry.ca import validate_credentials
from pydapr.testing.pki import TestPKI


def write(folder: Path, ca: bytes, cert: bytes, key: bytes, stamp: int | None = None) -> None:
    for name, data in (("ca.crt", ca), ("issuer.crt", cert), ("issuer.key", key)):
        (folder / name).write_bytes(data)
        if stamp is not None:
            os.utime(folder / name, ns=(stamp, stamp))


def test_generated_when_absent(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    creds = CredentialStore(folder, "example.org").ensure()
    assert stat.S_IMODE((folder / "issuer.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    root, issuer = creds.roots.anchors[0], creds.issuer
    for cert in (root, issuer):
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        assert cert.public_key().curve.name == "secp256r1"
        life = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert dt.timedelta(days=365) <= life <= dt.timedelta(days=366)
    assert issuer.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    again = CredentialStore(folder, "example.org").ensure()  # loaded, not regenerated
    assert again.issuer == issuer and again.roots.same_as(creds.roots)


def test_partial_credentials_are_refused(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text(TestPKI().root_pem)
    with pytest.raises(CredentialsError, match="issuer.crt, issuer.key missing"):
        CredentialStore(tmp_path).ensure()


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI("creds")


def test_operator_credentials_load_with_comments_and_root_in_chain(pki: TestPKI) -> None:
    ca, cert, key = pki.credentials_pem()
    creds = validate_credentials(b"# roots\n" + ca, cert + ca + b"\n# end", key)
    assert creds.chain == (pki.issuer,)  # the root is stripped from the issuer chain


def test_long_chain_in_order(pki: TestPKI) -> None:
    from pydapr.identity.pem import new_private_key
    k2 = new_private_key()
    mid = pki.ca(x509.Name.from_rfc4514_string("CN=sub issuer"), k2, pki.issuer, pki.issuer_key)
    ca, cert, _ = pki.credentials_pem()
    creds = validate_credentials(ca, certificates_pem([mid, pki.issuer]), private_key_pem(k2))
    assert creds.chain == (mid, pki.issuer)
    with pytest.raises(CredentialsError, match="wrong order"):
        validate_credentials(ca, certificates_pem([pki.issuer, mid]), private_key_pem(k2))


@pytest.mark.parametrize("case,fragment", [
    ("key mismatch", "does not match"),
    ("foreign chain", "foreign chain"),
    ("issuer in anchors", "not a self-signed CA root"),
    ("leaf as issuer", "not allowed to sign"),
    ("only roots", "holds only roots"),
    ("garbage key", "not an unencrypted PEM private key"),
    ("empty anchors", "no PEM"),
])
def test_invalid_credentials_are_refused(pki: TestPKI, case: str, fragment: str) -> None:
    other = TestPKI("other")
    ca, cert, key = pki.credentials_pem()
    leaf = pki.svid()
    variants = {
        "key mismatch": (ca, cert, other.credentials_pem()[2]),
        "foreign chain": (ca, other.credentials_pem()[1], other.credentials_pem()[2]),
        "issuer in anchors": (ca + cert, cert, key),
        "leaf as issuer": (ca, leaf.chain_pem(), leaf.key_pem()),
        "only roots": (ca, ca, key),
        "garbage key": (ca, cert, b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        "empty anchors": (b"", cert, key),
    }
    with pytest.raises(CredentialsError, match=fragment):
        validate_credentials(*variants[case])


def test_replaced_credentials_are_picked_up_and_half_writes_fail_closed(tmp_path: Path) -> None:
    first, second = TestPKI("first"), TestPKI("second")
    write(tmp_path, *first.credentials_pem(), stamp=1)
    store = CredentialStore(tmp_path)
    store.ensure()
    assert store.current.issuer == first.issuer and not store.reload_if_changed()
    ca, cert, key = second.credentials_pem()
    (tmp_path / "issuer.crt").write_bytes(cert)  # the operator has written one file of three
    assert not store.reload_if_changed()
    assert store.current is None and "foreign chain" in store.error
    write(tmp_path, ca + first.credentials_pem()[0], cert, key, stamp=3)  # overlap: both roots
    assert store.reload_if_changed()
    assert store.current.issuer == second.issuer and len(store.current.roots) == 2
    assert store.error == "" and store.generation == 2
