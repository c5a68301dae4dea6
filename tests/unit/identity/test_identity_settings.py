"""Where the sidecar's identity comes from: flags, environment and Configuration."""
from __future__ import annotations

import logging

import pytest

from pydapr.daprd.options import parse
from pydapr.errors import ConfigError
from pydapr.identity import IdentitySettings, SpiffeID
from pydapr.identity.pem import certificates_pem, private_key_pem
from pydapr.identity.settings import ISSUER_KEY_WARNING
from pydapr.resources import Configuration
from pydapr.testing.pki import TestPKI


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI("settings")


def settings(pki: TestPKI, flags=("--enable-mtls", "--sentry-address", "127.0.0.1:1"), spec=None,
             **env: str) -> IdentitySettings | None:
    env = {"DAPR_TRUST_ANCHORS": pki.root_pem, **env}
    options, _ = parse(["--app-id", "app", *flags], env)
    return IdentitySettings.from_options(options, Configuration(spec=spec or {}, source="cfg.yaml"))


def test_mtls_off_means_no_identity(pki: TestPKI) -> None:
    assert settings(pki, flags=()) is None
    s = settings(pki, flags=("--sentry-address", "127.0.0.1:1"), spec={"mtls": {"enabled": True}})
    assert s is not None and s.sentry_address == "127.0.0.1:1"


def test_identity_uses_the_apps_trust_domain_and_namespace(pki: TestPKI) -> None:
    s = settings(pki, NAMESPACE="prod")
    assert s.spiffe_id == SpiffeID("public", "prod", "app")
    s = settings(pki, spec={"accessControl": {"trustDomain": "domain1"}},
                 flags=("--enable-mtls", "--sentry-address", "x:1",
                        "--control-plane-trust-domain", "cp.local"))
    assert s.spiffe_id.trust_domain == "domain1" and s.control_plane_trust_domain == "cp.local"


def test_accepted_trust_domains(pki: TestPKI) -> None:
    spec = {"accessControl": {"trustDomain": "mine", "policies": [
        {"appId": "a", "trustDomain": "partner", "namespace": "default"}]},
        "mtls": {"federatedTrustDomains": ["friend"]}}
    assert settings(pki, spec=spec).trust_domains == {"mine", "partner", "friend"}
    with pytest.raises(ConfigError, match="federatedTrustDomains"):
        settings(pki, spec={"mtls": {"federatedTrustDomains": "friend"}})


def test_bad_trust_domain_is_a_config_error(pki: TestPKI) -> None:
    with pytest.raises(ConfigError, match="cfg.yaml: field spec.accessControl.trustDomain"):
        settings(pki, spec={"accessControl": {"trustDomain": "Bad Domain"}})


def test_anchors_and_sentry_are_required(pki: TestPKI, tmp_path) -> None:
    options, _ = parse(["--app-id", "app", "--enable-mtls", "--sentry-address", "x:1"], {})
    with pytest.raises(ConfigError, match="DAPR_TRUST_ANCHORS"):
        IdentitySettings.from_options(options, Configuration())
    with pytest.raises(ConfigError, match="--sentry-address"):
        settings(pki, flags=("--enable-mtls",))
    s = settings(pki, flags=("--enable-mtls",), spec={"mtls": {"sentryAddress": "cfg:5"}})
    assert s.sentry_address == "cfg:5"
    f = tmp_path / "ca.crt"
    f.write_text(pki.root_pem)
    options, _ = parse(["--app-id", "app", "--enable-mtls", "--sentry-address", "x:1",
                        "--trust-anchors-file", str(f)], {"DAPR_SENTRY_TOKEN_FILE": "/t"})
    s = IdentitySettings.from_options(options, Configuration())
    assert s.anchors.watched and s.token_file == "/t"


def test_mtls_durations(pki: TestPKI) -> None:
    s = settings(pki, spec={"mtls": {"workloadCertTTL": "1h", "allowedClockSkew": "30s"}})
    assert s.max_ttl == 3600 and s.clock_skew == 30
    assert settings(pki).max_ttl is None and settings(pki).clock_skew == 900
    with pytest.raises(ConfigError, match="spec.mtls.workloadCertTTL"):
        settings(pki, spec={"mtls": {"workloadCertTTL": "soon"}})


def test_workload_svid_in_env_is_the_identity_without_sentry(pki: TestPKI) -> None:
    svid = pki.svid(app_id="app")
    s = settings(pki, flags=("--enable-mtls",), DAPR_CERT_CHAIN=svid.chain_pem().decode(),
                 DAPR_CERT_KEY=svid.key_pem().decode())
    assert s.static_svid is not None and s.static_svid.spiffe_id == s.spiffe_id
    other = pki.svid(app_id="other")
    with pytest.raises(ConfigError, match="asserts spiffe://public/ns/default/other"):
        settings(pki, DAPR_CERT_CHAIN=other.chain_pem().decode(), DAPR_CERT_KEY=other.key_pem().decode())


def test_issuer_credentials_in_env_warn_once_and_are_ignored(pki: TestPKI, caplog) -> None:
    env = {"DAPR_CERT_CHAIN": certificates_pem([pki.issuer]).decode(),
           "DAPR_CERT_KEY": private_key_pem(pki.issuer_key).decode()}
    with caplog.at_level(logging.WARNING, logger="pydapr.identity"):
        s = settings(pki, **env)
    assert s.static_svid is None and s.sentry_address == "127.0.0.1:1"
    warnings = [r for r in caplog.records if "weakens zero trust" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].getMessage() == ISSUER_KEY_WARNING
    assert pki.issuer_key.private_numbers().private_value.to_bytes(32, "big").hex() not in caplog.text


@pytest.mark.parametrize("which,fragment", [
    ("chain only", "must be set together"),
    ("mismatch", "does not match"),
    ("plain leaf", "neither an issuer CA nor a workload SVID"),
    ("garbage", "DAPR_CERT_CHAIN"),
])
def test_bad_env_credentials_stop_start_up(pki: TestPKI, which: str, fragment: str) -> None:
    svid = pki.svid()
    plain = pki.leaf(uris=[], dns=["host.example"])
    env = {
        "chain only": {"DAPR_CERT_CHAIN": svid.chain_pem().decode()},
        "mismatch": {"DAPR_CERT_CHAIN": svid.chain_pem().decode(),
                     "DAPR_CERT_KEY": pki.svid().key_pem().decode()},
        "plain leaf": {"DAPR_CERT_CHAIN": plain.chain_pem().decode(),
                       "DAPR_CERT_KEY": plain.key_pem().decode()},
        "garbage": {"DAPR_CERT_CHAIN": "nope", "DAPR_CERT_KEY": svid.key_pem().decode()},
    }[which]
    with pytest.raises(ConfigError, match=fragment):
        settings(pki, **env)
