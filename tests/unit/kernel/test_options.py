"""pydaprd flags and environment -> Options (precedence: flag, environment, default)."""
from __future__ import annotations

import pytest

from pydapr.daprd.options import parse
from pydapr.errors import ConfigError


def test_defaults_are_daprs_and_loopback():
    o, _ = parse(["--app-id", "a"], env={})
    assert (o.dapr_http_port, o.dapr_grpc_port) == (3500, 50001)
    assert o.dapr_listen_addresses == ["127.0.0.1"]
    assert o.max_body_size == 4 << 20
    assert o.namespace == "default" and o.app_port is None


def test_single_dash_long_flags_are_accepted():
    o, _ = parse(["-app-id", "a", "-app-port", "3000", "-dapr-http-port", "3601"], env={})
    assert (o.app_id, o.app_port, o.dapr_http_port) == ("a", 3000, 3601)


@pytest.mark.parametrize("argv,needle", [
    (["--app-id", "a", "--no-such-flag"], "--no-such-flag"),
    ([], "--app-id is required"),
    (["--app-id", "a.b"], "invalid --app-id"),
    (["--app-id", "a", "--app-port", "x"], "--app-port"),
    (["--app-id", "a", "--max-body-size", "lots"], "invalid size"),
])
def test_bad_flags_fail_with_a_message_naming_them(argv, needle):
    with pytest.raises(ConfigError, match=None) as ei:
        parse(argv, env={})
    assert needle in str(ei.value)


@pytest.mark.parametrize("argv,expected", [
    (["--dapr-http-max-request-size", "8"], 8 << 20),
    (["--max-body-size", "512Ki"], 512 << 10),
    (["--max-body-size", "1Mi", "--dapr-http-max-request-size", "8"], 1 << 20),
])
def test_body_limit_flags(argv, expected):
    o, _ = parse(["--app-id", "a", *argv], env={})
    assert o.max_body_size == expected


def test_environment_fills_what_flags_do_not():
    env = {"NAMESPACE": "prod", "DAPR_API_TOKEN": "t0k", "APP_API_TOKEN": "app",
           "DAPR_CONTROLPLANE_TRUST_DOMAIN": "cluster.local"}
    o, _ = parse(["--app-id", "a"], env=env)
    assert (o.namespace, o.api_token, o.app_api_token) == ("prod", "t0k", "app")
    assert o.control_plane_trust_domain == "cluster.local"
    o, _ = parse(["--app-id", "a", "--control-plane-trust-domain", "td"], env=env)
    assert o.control_plane_trust_domain == "td"


def test_tokens_are_not_in_repr():
    o, _ = parse(["--app-id", "a"], env={"DAPR_API_TOKEN": "supersecret"})
    assert "supersecret" not in repr(o)


def test_boolean_flags_accept_bare_and_valued_forms():
    o, _ = parse(["--app-id", "a", "--enable-mtls", "--log-as-json=false"], env={})
    assert o.enable_mtls is True and o.log_as_json is False
    o, _ = parse(["--app-id", "a", "--listen", "x"] if False else ["--app-id", "a",
                 "--dapr-listen-addresses", "127.0.0.1,::1"], env={})
    assert o.dapr_listen_addresses == ["127.0.0.1", "::1"]
