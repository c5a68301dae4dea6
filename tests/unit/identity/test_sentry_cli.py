"""``pydapr sentry`` flags and ``--config`` -> settings."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pydapr.errors import ConfigError
from pydapr.sentry.cli import build_parser, main, settings_from_args


def settings(*argv: str, env: dict[str, str] | None = None):
    return settings_from_args(build_parser().parse_args(list(argv)), env or {})


def config(tmp_path: Path, mtls: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: daprsystem}\n"
                    f"spec:\n  mtls: {mtls}\n")
    return str(path)


def test_defaults_follow_dapr_with_loopback() -> None:
    s = settings("--issuer-credentials", "/c")
    assert (s.trust_domain, s.port, s.listen_address, s.namespace) == ("localhost", 50001,
                                                                       "127.0.0.1", "default")
    assert s.ttl == dt.timedelta(hours=24) and s.skew == dt.timedelta(minutes=15)
    assert settings("--issuer-credentials", "/c", env={"NAMESPACE": "dapr-system"}).namespace == \
        "dapr-system"


def test_config_sets_ttl_skew_and_validators(tmp_path: Path) -> None:
    path = config(tmp_path, "{workloadCertTTL: 2s, allowedClockSkew: 1m, tokenValidators: "
                            "[{name: jwks, options: {source: /j.json}}, "
                            "{name: join-token, options: {path: /t.yaml}}]}")
    s = settings("--issuer-credentials", "/c", "--config", path)
    assert s.ttl == dt.timedelta(seconds=2) and s.skew == dt.timedelta(minutes=1)
    assert (s.jwks_source, s.join_tokens) == ("/j.json", "/t.yaml")
    assert settings("--issuer-credentials", "/c", "--config", path,
                    "--jwks-source", "/flag.json").jwks_source == "/flag.json"  # flag wins


@pytest.mark.parametrize("mtls,fragment", [
    ("{workloadCertTTL: forever}", "spec.mtls.workloadCertTTL"),
    ("{workloadCertTTL: 100ms}", "at least 1s"),
    ("{tokenValidators: [{name: jwks}]}", "options.source is required"),
])
def test_bad_config_values(tmp_path: Path, mtls: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        settings("--issuer-credentials", "/c", "--config", config(tmp_path, mtls))


def test_main_reports_bad_flags(capsys: pytest.CaptureFixture) -> None:
    assert main(["--port", "x"]) == 2
    assert "pydapr sentry" in capsys.readouterr().err
    assert main(["--mode", "kubernetes"]) == 2
