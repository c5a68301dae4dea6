"""middleware.http.oauth2 (authorization code) and oauth2clientcredentials, local provider."""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

CLIENT = {"clientID": "client-1", "clientSecret": "client-secret-9"}


@pytest.fixture
async def oauth_rt(runtime, provider, oidc):
    pipeline, component = oidc

    async def make(type_: str, **metadata):
        md = {**CLIENT, "tokenURL": provider.issuer + "/token", **metadata}
        return await runtime(config=pipeline([("oauth", type_)]),
                             resources=component("oauth", type_, **md))
    return make


def _cookie(resp) -> str:
    value = dict(resp.headers)["set-cookie"]
    assert "HttpOnly" in value and "SameSite=Lax" in value
    return value.split(";")[0]


async def test_authorization_code_flow(oauth_rt, provider, call):
    rt = await oauth_rt("middleware.http.oauth2", authURL="https://idp.example/authorize",
                        redirectURL="http://127.0.0.1:3500/v1.0/echo", scopes="openid,profile",
                        authHeaderName="X-Token")
    first = await call(rt, "GET", "/v1.0/echo", query="page=2")
    assert first.status == 302
    location = urlsplit(dict(first.headers)["location"])
    assert location.netloc == "idp.example"
    query = parse_qs(location.query)
    assert query["client_id"] == ["client-1"] and query["scope"] == ["openid profile"]
    assert "client-secret-9" not in dict(first.headers)["location"]
    cookie = _cookie(first)

    callback = await call(rt, "GET", "/v1.0/echo", {"cookie": cookie},
                          query=f"state={query['state'][0]}&code=good-code")
    assert callback.status == 302 and dict(callback.headers)["location"] == "/v1.0/echo?page=2"
    form, _ = provider.token_requests[-1]
    assert form["grant_type"] == ["authorization_code"]
    assert form["redirect_uri"] == ["http://127.0.0.1:3500/v1.0/echo"]

    # signed in: the token header is set, and a caller's forged copies are dropped
    resp = await call(rt, "GET", "/v1.0/echo", {"cookie": cookie, "x-token": "Bearer forged"})
    assert resp.status == 200
    assert json.loads(resp.body)["headers"]["x-token"] == "Bearer ac-token"


@pytest.mark.parametrize("callback", ["state=forged&code=good-code", "code=good-code&state="])
async def test_callback_with_a_foreign_state_is_refused(oauth_rt, call, callback):
    rt = await oauth_rt("middleware.http.oauth2", authURL="https://idp.example/authorize")
    first = await call(rt, "GET", "/v1.0/echo")
    resp = await call(rt, "GET", "/v1.0/echo", {"cookie": _cookie(first)}, query=callback)
    if "state=forged" in callback:
        assert resp.status == 400 and b"invalid state" in resp.body
    else:
        assert resp.status == 302  # an empty state starts the flow again
    no_cookie = await call(rt, "GET", "/v1.0/echo", query="state=x&code=good-code")
    assert no_cookie.status == 400


async def test_bad_code_and_open_redirect(oauth_rt, call):
    rt = await oauth_rt("middleware.http.oauth2", authURL="https://idp.example/authorize")
    first = await call(rt, "GET", "//evil.example/x")
    state = parse_qs(urlsplit(dict(first.headers)["location"]).query)["state"][0]
    bad = await call(rt, "GET", "/v1.0/echo", {"cookie": _cookie(first)},
                     query=f"state={state}&code=bad-code")
    assert bad.status == 500 and bad.body == b"error exchanging token"
    good = await call(rt, "GET", "/v1.0/echo", {"cookie": _cookie(first)},
                      query=f"state={state}&code=good-code")
    assert dict(good.headers)["location"] == "/evil.example/x"  # a path, never another host


async def test_path_filter_limits_the_protected_paths(oauth_rt, call):
    rt = await oauth_rt("middleware.http.oauth2", authURL="https://idp.example/authorize",
                        pathFilter="^/v1.0/echo/async")
    assert (await call(rt, "GET", "/v1.0/echo")).status == 200
    assert (await call(rt, "GET", "/v1.0/echo/async")).status == 302


@pytest.mark.parametrize("auth_style", [0, 1, 2])
async def test_client_credentials_token_is_cached_and_replaces_caller_copies(
        oauth_rt, provider, call, auth_style):
    before = len(provider.token_requests)
    rt = await oauth_rt("middleware.http.oauth2clientcredentials", headerName="Authorization",
                        scopes="a,b", endpointParamsQuery="audience=api&resource=r1",
                        authStyle=auth_style)
    seen = []
    for _ in range(3):
        resp = await call(rt, "GET", "/v1.0/echo", {"authorization": "Bearer forged"})
        assert resp.status == 200
        seen.append(json.loads(resp.body)["headers"]["authorization"])
    assert len(set(seen)) == 1 and seen[0].startswith("Bearer cc-") and "forged" not in seen[0]
    form, basic = provider.token_requests[-1]
    assert len(provider.token_requests) - before == 1  # one fetch for three requests
    assert form["scope"] == ["a b"] and form["audience"] == ["api"] and form["resource"] == ["r1"]
    assert bool(basic) is (auth_style in (0, 2))


async def test_client_credentials_failure_is_not_forwarded(oauth_rt, provider, call, caplog):
    provider.token_status = 500
    try:
        rt = await oauth_rt("middleware.http.oauth2clientcredentials", headerName="X-Auth",
                            authStyle=1, pathFilter="^/v1.0/echo$")
        resp = await call(rt, "GET", "/v1.0/echo")
        assert resp.status == 502 and b"could not obtain an OAuth2 token" in resp.body
        assert (await call(rt, "GET", "/v1.0/echo/async")).status == 200  # filtered out: untouched
        assert "client-secret-9" not in caplog.text
    finally:
        provider.token_status = 200
