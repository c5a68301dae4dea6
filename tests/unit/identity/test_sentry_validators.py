"""Attestation before signing (C3, C4): join tokens, JWKS-signed JWTs, and the insecure rule."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import grpc
import jwt
import pytest
from jwt.algorithms import ECAlgorithm

from pydapr.errors import ConfigError
from pydapr.identity import SpiffeID
from pydapr.identity.pem import new_private_key
from pydapr.identity.protocol import SignRequest
from pydapr.sentry import SentrySettings, SignError
from pydapr.sentry.server import build_validators
from pydapr.sentry.validators import JoinTokenValidator, JWKSValidator

APP = SpiffeID("public", "default", "app")
AUD = "spiffe://localhost/ns/default/dapr-sentry"
TOKEN = "s3cret-token-for-app-0001"


def request(token: str = "", app: str = "app", ns: str = "default") -> SignRequest:
    return SignRequest(id=app, namespace=ns, certificate_signing_request="x", token=token)


def denied(validator, req: SignRequest, sid: SpiffeID, fragment: str) -> None:
    with pytest.raises(SignError) as info:
        validator.validate(req, sid)
    assert info.value.status == grpc.StatusCode.PERMISSION_DENIED
    assert fragment in info.value.message
    assert req.token == "" or req.token not in info.value.message  # never echo the token


# -- join tokens -----------------------------------------------------------------------------

@pytest.fixture
def tokens(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.yaml"
    path.write_text(f"app: {TOKEN}\nprod/app: prod-only-token-000001\nother: other-app-token-00001\n")
    return path


def test_join_token_accepts_the_right_token_only(tokens: Path) -> None:
    v = JoinTokenValidator(tokens)
    v.validate(request(TOKEN), APP)
    denied(v, request(""), APP, "join token is required")
    denied(v, request(TOKEN[:-1] + "X"), APP, "not valid for app id 'app'")
    denied(v, request("other-app-token-00001"), APP, "not valid")  # another app's token
    denied(v, request(TOKEN, app="ghost"), SpiffeID("public", "default", "ghost"), "not valid")


def test_namespaced_entry_takes_precedence(tokens: Path) -> None:
    v = JoinTokenValidator(tokens)
    prod = SpiffeID("public", "prod", "app")
    v.validate(request("prod-only-token-000001", ns="prod"), prod)
    denied(v, request(TOKEN, ns="prod"), prod, "not valid")


def test_tokens_are_reloaded_and_can_be_revoked(tokens: Path) -> None:
    v = JoinTokenValidator(tokens)
    tokens.write_text("other: other-app-token-00001\n")
    os.utime(tokens, ns=(1, 1))
    denied(v, request(TOKEN), APP, "not valid")
    tokens.write_text("[broken")
    os.utime(tokens, ns=(2, 2))
    denied(v, request("other-app-token-00001", app="other"), SpiffeID("public", "default", "other"),
           "not valid")  # an unusable file revokes everything (fail closed)


@pytest.mark.parametrize("text,fragment", [
    ("app: short", "shorter than"), ("- a\n- b", "mapping"), ("app: 12345678901234567890x: [", "YAML"),
    ("app: [1, 2]", "must be strings")])
def test_bad_token_files_are_refused_at_start(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=fragment):
        JoinTokenValidator(path)


# -- JWKS ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keys():
    return new_private_key(), new_private_key()


@pytest.fixture
def jwks(tmp_path: Path, keys) -> Path:
    jwk = ECAlgorithm.to_jwk(keys[0].public_key(), as_dict=True)
    jwk.update(kid="k1", alg="ES256", use="sig")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return path


def token(key, kid: str = "k1", **claims) -> str:
    now = int(time.time())
    body = {"aud": AUD, "sub": APP.uri, "exp": now + 300, "iat": now}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key, algorithm="ES256", headers={"kid": kid})


def test_jwks_accepts_a_valid_token(jwks: Path, keys) -> None:
    JWKSValidator(str(jwks), AUD).validate(request(token(keys[0])), APP)


@pytest.mark.parametrize("make,fragment", [
    (lambda k: "", "JWT is required"),
    (lambda k: "not-a-jwt", "not a JWT"),
    (lambda k: token(k[0], aud="spiffe://localhost/ns/default/other"), "audience"),
    (lambda k: token(k[0], sub="spiffe://public/ns/default/admin"), "subject"),
    (lambda k: token(k[0], exp=int(time.time()) - 400), "expired"),
    (lambda k: token(k[0], nbf=int(time.time()) + 400), "not valid yet"),
    (lambda k: token(k[0], exp=None), "not valid"),
    (lambda k: token(k[1]), "not valid"),                       # right kid, wrong key
    (lambda k: token(k[1], kid="k2"), "not signed by a key"),  # unknown kid
    (lambda k: jwt.encode({"aud": AUD, "sub": APP.uri, "exp": int(time.time()) + 60}, "x" * 32,
                          algorithm="HS256", headers={"kid": "k1"}), "HS256"),
])
def test_jwks_refusals(jwks: Path, keys, make, fragment: str) -> None:
    denied(JWKSValidator(str(jwks), AUD), request(make(keys)), APP, fragment)


def test_jwks_clock_skew_leeway(jwks: Path, keys) -> None:
    JWKSValidator(str(jwks), AUD).validate(request(token(keys[0], exp=int(time.time()) - 60)), APP)


def test_jwks_file_must_hold_keys(tmp_path: Path) -> None:
    (tmp_path / "j.json").write_text('{"keys": []}')
    with pytest.raises(ValueError, match="usable key"):
        JWKSValidator(str(tmp_path / "j.json"), AUD)


# -- which validators are enabled ----------------------------------------------------------------

def test_insecure_only_on_loopback(tmp_path: Path, tokens: Path) -> None:
    for addr in ("127.0.0.1", "::1", "localhost"):
        validators, default = build_validators(SentrySettings(str(tmp_path), listen_address=addr))
        assert default == "insecure"
    for addr in ("0.0.0.0", "", "10.1.2.3"):
        with pytest.raises(ConfigError, match="insecure validator"):
            build_validators(SentrySettings(str(tmp_path), listen_address=addr))
    validators, default = build_validators(SentrySettings(str(tmp_path), listen_address="0.0.0.0",
                                                          join_tokens=str(tokens)))
    assert default == "join-token" and "insecure" not in validators


def test_a_real_validator_disables_insecure(tmp_path: Path, jwks: Path, tokens: Path) -> None:
    validators, default = build_validators(SentrySettings(str(tmp_path), jwks_source=str(jwks),
                                                          join_tokens=str(tokens)))
    assert list(validators) == ["jwks", "join-token"] and default == "jwks"
