"""Trust bundles and the anchors source (dapr/kit trustanchors/file cases)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from pydapr.identity import AnchorSource, BundleError, TrustBundle
from pydapr.identity.pem import certificates_pem
from pydapr.testing.pki import TestPKI


@pytest.fixture(scope="module")
def pkis() -> tuple[TestPKI, TestPKI]:
    return TestPKI("one"), TestPKI("two")


def test_multiple_roots_and_comments_around_them(pkis) -> None:
    a, b = pkis
    text = "# bundle\n" + a.root_pem + "garbage between\n" + b.root_pem + "trailing words"
    bundle = TrustBundle.from_pem(text)
    assert len(bundle) == 2 and a.root in bundle and b.root in bundle
    assert TrustBundle.from_pem(a.root_pem + a.root_pem).anchors == (a.root,)  # de-duplicated


@pytest.mark.parametrize("text,fragment", [
    ("", "no PEM 'CERTIFICATE' block"),
    ("just garbage", "no PEM 'CERTIFICATE' block"),
    ("-----BEGIN CERTIFICATE-----\n!!!notbase64!!!\n-----END CERTIFICATE-----\n", "base64"),
    ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "cannot be parsed"),
    ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----\n", "ends as"),
])
def test_unusable_anchors_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(BundleError, match=fragment):
        TrustBundle.from_pem(text, "anchors")


def test_an_intermediate_is_never_an_anchor(pkis) -> None:
    a, _ = pkis
    with pytest.raises(BundleError, match="not a self-signed CA root"):
        TrustBundle.from_pem(certificates_pem([a.issuer]))
    with pytest.raises(BundleError, match="not a self-signed CA root"):
        TrustBundle.from_pem(certificates_pem([a.svid().leaf]))


def test_static_source_and_missing_source(pkis) -> None:
    a, _ = pkis
    assert AnchorSource(a.root_pem).load().anchors == (a.root,)
    assert not AnchorSource(a.root_pem).changed()
    with pytest.raises(BundleError, match="DAPR_TRUST_ANCHORS"):
        AnchorSource("", None)


def test_file_source_notices_replacement_and_garbage(pkis, tmp_path: Path) -> None:
    a, b = pkis
    path = tmp_path / "ca.crt"
    path.write_text(a.root_pem)
    src = AnchorSource(path=path)
    assert src.watched and src.load().anchors == (a.root,) and not src.changed()
    path.write_text(a.root_pem + b.root_pem)
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse clocks
    assert src.changed() and len(src.load()) == 2
    assert not src.changed()
    path.write_text("garbage")
    assert src.changed()
    with pytest.raises(BundleError):
        src.load()
    path.unlink()
    assert src.changed()
    with pytest.raises(BundleError, match="cannot read"):
        src.load()


def test_pem_text_wins_over_the_file(pkis, tmp_path: Path) -> None:
    a, b = pkis
    path = tmp_path / "ca.crt"
    path.write_text(b.root_pem)
    src = AnchorSource(a.root_pem, path)
    assert not src.watched and src.load().anchors == (a.root,)
