"""middleware.http.bearer against a local OIDC provider (discovery + JWKS on loopback)."""
from __future__ import annotations

import base64
import json
import time
import warnings

import pytest

import pydapr.plugins.middleware.bearer as bearer
from pydapr.errors import ConfigError, StartupError
from pydapr.plugins.middleware._base import check_url

AUDIENCE = "pydapr-test"


@pytest.fixture
async def bearer_rt(runtime, provider, oidc):
    pipeline, component = oidc
    provider.jwks_down = False

    async def make(**metadata):
        md = {"issuer": provider.issuer, "audience": AUDIENCE, **metadata}
        return await runtime(config=pipeline([("auth", "middleware.http.bearer")]),
                             resources=component("auth", "middleware.http.bearer", **md))
    return make


def authz(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_valid_tokens_pass(bearer_rt, provider, call):
    rt = await bearer_rt()
    for token in (provider.token(), provider.token(key="ec", kid="ec1", alg="ES256"),
                  provider.token(alg="PS256"), provider.token(kid=None)):
        resp = await call(rt, "GET", "/v1.0/echo", authz(token))
        assert resp.status == 200, token
        assert json.loads(resp.body)["headers"]["authorization"] == f"Bearer {token}"
    assert (await call(rt, "GET", "/v1.0/echo", {"authorization": f"bEaReR {provider.token()}"})
            ).status == 200
    # the JWT is the caller's credential to its own sidecar: invocation must not forward it
    assert rt.stash["invoke.sidecar_auth_headers"] == {"authorization"}


def _unsigned(claims) -> str:
    def enc(doc) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()
    return f"{enc({'alg': 'none', 'typ': 'JWT'})}.{enc(claims)}."


def _hs256_with_public_key(provider) -> str:
    """Algorithm confusion: an HMAC token whose secret is the provider's *public* key."""
    import hmac
    import hashlib
    from cryptography.hazmat.primitives import serialization
    pem = provider.rsa.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    now = int(time.time())
    head = enc(json.dumps({"alg": "HS256", "kid": "rsa1"}).encode())
    body = enc(json.dumps({"iss": provider.issuer, "aud": AUDIENCE, "exp": now + 60}).encode())
    sig = enc(hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


@pytest.mark.parametrize("make_header", [
    lambda p: {},
    lambda p: {"authorization": "Bearer"},
    lambda p: {"authorization": "Bearer "},
    lambda p: {"authorization": "b"},
    lambda p: {"authorization": "Bearer short"},
    lambda p: {"authorization": f"Basic {p.token()}"},
    lambda p: authz("not.a.jwt-at-all"),
    lambda p: authz(p.token({"aud": "someone-else"})),
    lambda p: authz(p.token({"iss": "https://other.example"})),
    lambda p: authz(p.token({"exp": int(time.time()) - 120})),     # beyond the 60 s leeway
    lambda p: authz(p.token(drop=("exp",))),                       # exp is required
    lambda p: authz(p.token(drop=("aud",))),
    lambda p: authz(p.token(kid="ec1")),                           # RSA signature, EC key id
    lambda p: authz(p.token(key="ec", kid="ec1", alg="ES256") + "x"),
    lambda p: authz(_unsigned({"iss": p.issuer, "aud": AUDIENCE, "exp": int(time.time()) + 60})),
    lambda p: authz(_hs256_with_public_key(p)),
    lambda p: {"authorization": f"Bearer {p.token()}, Bearer {p.token()}"},
])
async def test_bad_tokens_get_401(bearer_rt, provider, call, make_header):
    rt = await bearer_rt()
    resp = await call(rt, "GET", "/v1.0/echo", make_header(provider))
    assert resp.status == 401 and ("www-authenticate", "Bearer") in resp.headers


async def test_leeway_tolerates_small_clock_skew(bearer_rt, provider, call):
    rt = await bearer_rt(leeway="5m")
    token = provider.token({"exp": int(time.time()) - 120})
    assert (await call(rt, "GET", "/v1.0/echo", authz(token))).status == 200


async def test_explicit_jwks_url_and_key_rotation(bearer_rt, provider, call, monkeypatch):
    monkeypatch.setattr(bearer, "_REFRESH_EVERY", 0.0)
    rt = await bearer_rt(jwksURL=provider.issuer + "/jwks")
    fetches = provider.jwks_fetches
    from cryptography.hazmat.primitives.asymmetric import rsa
    import jwt
    new = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    provider.jwks.append({**jwt.algorithms.RSAAlgorithm.to_jwk(new.public_key(), as_dict=True),
                          "kid": "rsa2"})
    provider.rsa2 = new
    try:
        assert (await call(rt, "GET", "/v1.0/echo", authz(provider.token(key="rsa2", kid="rsa2")))
                ).status == 200
        assert provider.jwks_fetches == fetches + 1
        provider.jwks_down = True  # a refresh is needed and fails: 500, not 401
        resp = await call(rt, "GET", "/v1.0/echo", authz(provider.token(kid="unknown")))
        assert resp.status == 500
    finally:
        provider.jwks.pop()


async def test_unknown_kids_do_not_hammer_the_provider(bearer_rt, provider, call):
    rt = await bearer_rt()
    fetches = provider.jwks_fetches
    for _ in range(5):
        resp = await call(rt, "GET", "/v1.0/echo", authz(provider.token(kid="nope")))
        assert resp.status == 401
    assert provider.jwks_fetches == fetches


async def test_health_probes_pass_without_a_bearer_token(bearer_rt, call):
    rt = await bearer_rt()
    assert (await call(rt, "GET", "/v1.0/healthz")).status == 204
    assert (await call(rt, "GET", "/v1.0/healthz/outbound")).status == 204
    assert (await call(rt, "GET", "/v1.0/metadata")).status == 401


async def test_discovery_must_name_the_same_issuer(bearer_rt, provider):
    with pytest.raises(StartupError, match="discovery document names issuer"):
        await bearer_rt(issuer=provider.issuer + "/")


async def test_unreachable_provider_stops_startup(bearer_rt):
    with pytest.raises(StartupError, match="cannot reach"):
        await bearer_rt(issuer="http://127.0.0.1:9", jwksURL="")


@pytest.mark.parametrize("url, ok", [
    ("https://idp.example/jwks", True), ("http://127.0.0.1:8080/jwks", True),
    ("http://localhost/jwks", True), ("http://[::1]:80/x", True),
    ("http://idp.example/jwks", False), ("ftp://idp.example/x", False), ("/jwks", False),
])
def test_plain_http_only_to_loopback(url, ok):
    if ok:
        assert check_url(url, "jwksURL") == url
    else:
        with pytest.raises(ConfigError):
            check_url(url, "jwksURL")


async def test_malformed_key_material_is_skipped_not_fatal(bearer_rt, provider, call):
    """Ada Logics ADA-DAP-FUZZ-2/3: hostile keys in a JWKS must not take the middleware down."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    provider.weak = weak
    junk = [{**jwt.algorithms.RSAAlgorithm.to_jwk(weak.public_key(), as_dict=True), "kid": "weak"},
            {"kty": "RSA", "kid": "bad1", "n": "!!not-base64!!", "e": "AQAB"},
            {"kty": "EC", "kid": "bad2", "crv": "P-999", "x": "AA", "y": "AA"},
            {"kty": "nope"}, "not-an-object", {"kty": "RSA", "kid": "enc", "use": "enc"}]
    provider.jwks[:0] = junk
    try:
        rt = await bearer_rt()
        assert (await call(rt, "GET", "/v1.0/echo", authz(provider.token()))).status == 200
        assert (await call(rt, "GET", "/v1.0/echo", authz(provider.token(kid="bad1")))).status == 401
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyJWT warns about signing with a weak key
            weak_token = provider.token(key="weak", kid="weak")
        assert (await call(rt, "GET", "/v1.0/echo", authz(weak_token))).status == 401
    finally:
        del provider.jwks[:len(junk)]
