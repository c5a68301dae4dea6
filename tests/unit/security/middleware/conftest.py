"""A local OIDC provider on loopback: discovery, JWKS and a token endpoint, with keys made here."""
from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

AUDIENCE = "pydapr-test"
CLIENT_ID, CLIENT_SECRET = "client-1", "client-secret-9"


class Provider:
    def __init__(self) -> None:
        import jwt
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        rsa_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key(), as_dict=True)
        ec_jwk = jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key(), as_dict=True)
        self.jwks: list[dict[str, Any]] = [{**rsa_jwk, "kid": "rsa1", "use": "sig"},
                                           {**ec_jwk, "kid": "ec1", "alg": "ES256"}]
        self.jwks_down = False
        self.jwks_fetches = 0
        self.token_requests: list[tuple[dict[str, list[str]], str]] = []
        self.token_status = 200
        self.issuer = ""  # set once the server listens

    def token(self, claims: dict[str, Any] | None = None, *, key: str = "rsa",
              kid: str | None = "rsa1", alg: str = "RS256", drop: tuple[str, ...] = ()) -> str:
        import jwt
        now = int(time.time())
        body = {"iss": self.issuer, "aud": AUDIENCE, "sub": "user-1", "iat": now, "exp": now + 300,
                **(claims or {})}
        for name in drop:
            body.pop(name, None)
        headers = {"kid": kid} if kid else {}
        return jwt.encode(body, getattr(self, key), algorithm=alg, headers=headers)

    # -- HTTP ---------------------------------------------------------------------------------

    def answer(self, method: str, path: str, body: bytes, headers: Any) -> tuple[int, Any]:
        if path == "/.well-known/openid-configuration":
            return 200, {"issuer": self.issuer, "jwks_uri": self.issuer + "/jwks",
                         "token_endpoint": self.issuer + "/token"}
        if path == "/jwks":
            self.jwks_fetches += 1
            return (503, {"error": "down"}) if self.jwks_down else (200, {"keys": self.jwks})
        if path == "/token" and method == "POST":
            form = parse_qs(body.decode())
            self.token_requests.append((form, headers.get("authorization", "")))
            basic = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            client_ok = headers.get("authorization") == basic or (
                form.get("client_id") == [CLIENT_ID]
                and form.get("client_secret") == [CLIENT_SECRET])
            if not client_ok:
                return 401, {"error": "invalid_client"}
            if self.token_status != 200:
                return self.token_status, {"error": "server_error"}
            grant = form.get("grant_type", [""])[0]
            if grant == "client_credentials":
                return 200, {"access_token": f"cc-{len(self.token_requests)}",
                             "token_type": "Bearer", "expires_in": 3600}
            if grant == "authorization_code" and form.get("code") == ["good-code"]:
                return 200, {"access_token": "ac-token", "token_type": "Bearer", "expires_in": 3600}
            return 400, {"error": "invalid_grant"}
        return 404, {"error": "not found"}


@pytest.fixture(scope="module")
def provider():
    prov = Provider()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            status, doc = prov.answer(self.command, self.path, body, self.headers)
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    prov.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield prov
    server.shutdown()
    server.server_close()


def pipeline(handlers: list[tuple[str, str]], field: str = "httpPipeline") -> str:
    """A Configuration whose ``field`` lists ``(name, type)`` handlers."""
    items = ", ".join(f"{{name: {n}, type: {t}}}" for n, t in handlers)
    return (f"kind: Configuration\nmetadata: {{name: p}}\nspec:\n  {field}:\n"
            f"    handlers: [{items}]\n")


def component(name: str, type_: str, **metadata: Any) -> str:
    items = "".join(f"\n  - {{name: {k}, value: {json.dumps(str(v))}}}"
                    for k, v in metadata.items())
    return (f"---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: {name}}}\n"
            f"spec:\n  type: {type_}\n  version: v1\n  metadata:{items or ' []'}\n")


@pytest.fixture
def oidc():
    """Helpers to write pipeline Configurations and middleware Components."""
    return pipeline, component
