"""pydaprd with --enable-mtls: identity from a real sentry, no private key on disk, env credentials."""
from __future__ import annotations

from pathlib import Path

import pytest

from pydapr.testing import SentryProcess, Sidecar
from pydapr.testing.pki import TestPKI

DOMAIN1 = """
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: appconfig}
spec:
  accessControl: {trustDomain: domain1, defaultAction: allow}
"""


@pytest.fixture(scope="module")
def sentry():
    with SentryProcess() as s:
        yield s


def pem_keys_under(*roots: Path) -> list[Path]:
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                try:
                    if b"PRIVATE KEY" in path.read_bytes():
                        found.append(path)
                except OSError:
                    pass
    return found


def private_env(tmp_path: Path) -> dict[str, str]:
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    return {"HOME": str(home), "TMPDIR": str(tmp), "PYDAPR_HOME": str(home / ".pydapr")}


def test_sidecar_gets_its_svid_and_the_key_never_touches_disk(sentry: SentryProcess,
                                                              tmp_path: Path) -> None:
    env = private_env(tmp_path)
    sc = Sidecar(app_id="orders", config=DOMAIN1, args=sentry.sidecar_args(),
                 env={**sentry.sidecar_env(), **env})
    assert pem_keys_under(sc.dir, tmp_path) == []
    with sc:
        logs = sc.logs()
        assert "identity spiffe://domain1/ns/default/orders: certificate serial" in logs
        assert "issued spiffe://domain1/ns/default/orders" in sentry.logs()
        assert pem_keys_under(sc.dir, tmp_path) == [], "a private key was written to disk"
        assert "PRIVATE KEY" not in logs


def test_issuer_credentials_in_env_warn_once_and_identity_still_comes_from_the_sentry(
        sentry: SentryProcess, tmp_path: Path) -> None:
    creds = sentry.credentials
    env = {**sentry.sidecar_env(), **private_env(tmp_path),
           "DAPR_CERT_CHAIN": (creds / "issuer.crt").read_text(),
           "DAPR_CERT_KEY": (creds / "issuer.key").read_text()}
    with Sidecar(app_id="walkthrough", args=sentry.sidecar_args(), env=env) as sc:
        logs = sc.logs()
        assert logs.count("weakens zero trust") == 1
        assert "issued spiffe://public/ns/default/walkthrough" in sentry.logs()
        assert "identity spiffe://public/ns/default/walkthrough" in logs
        assert "PRIVATE KEY" not in logs


def test_workload_svid_from_an_outside_ca_needs_no_sentry(tmp_path: Path) -> None:
    pki = TestPKI("outside")
    svid = pki.svid(app_id="billing")
    env = {**private_env(tmp_path), "DAPR_TRUST_ANCHORS": pki.root_pem,
           "DAPR_CERT_CHAIN": svid.chain_pem().decode(), "DAPR_CERT_KEY": svid.key_pem().decode()}
    with Sidecar(app_id="billing", args=["--enable-mtls"], env=env) as sc:
        assert "identity spiffe://public/ns/default/billing from DAPR_CERT_CHAIN" in sc.logs()


def test_mtls_without_anchors_stops_start_up_with_a_clear_message(tmp_path: Path) -> None:
    sc = Sidecar(app_id="lost", args=["--enable-mtls", "--sentry-address", "127.0.0.1:1"],
                 env={**private_env(tmp_path), "DAPR_TRUST_ANCHORS": ""}, wait_ready=False)
    sc.start()
    try:
        assert sc.proc.wait(20) != 0
        assert "DAPR_TRUST_ANCHORS" in sc.logs()
    finally:
        sc.stop()
