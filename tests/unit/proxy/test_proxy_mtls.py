"""The proxy loop over mTLS with SVIDs minted in-process: pinning, caller identity, refusal."""
from __future__ import annotations

import asyncio

import pytest

from pydapr.identity import SpiffeID, SVID, client_context, server_context, verify_peer
from pydapr.identity.pem import new_private_key
from pydapr.proxy import ProxyClient, ProxyError, ProxyServer
from pydapr.proxy_tls import ALPN, MutualTLS
from pydapr.sentry.ca import generate_credentials
from pydapr.sentry.signer import issue_leaf


class StaticIdentity:
    """Just enough of :class:`pydapr.identity.Identity` for :class:`MutualTLS`."""

    def __init__(self, creds, app_id: str, td: str = "public") -> None:
        key = new_private_key()
        sid = SpiffeID.for_app(td, "default", app_id)
        self.svid = SVID(sid, (issue_leaf(key.public_key(), sid, creds), *creds.chain), key)
        self.bundle = creds.roots

    def server_context(self, alpn=None):
        return server_context(self.svid, self.bundle, alpn=alpn)

    def client_context(self, alpn=None):
        return client_context(self.svid, self.bundle, alpn=alpn)

    def verify_peer(self, ssl_object, expected_id=None):
        return verify_peer(ssl_object, expected_id)


@pytest.fixture(scope="module")
def creds():
    return generate_credentials("localhost")


async def test_callee_learns_the_caller_from_the_session_and_caller_pins_the_callee(creds):
    seen = []

    async def handler(stream):
        seen.append(stream.peer_id)
        await stream.send([(":status", "200")], b"ok")

    srv = ProxyServer(handler, MutualTLS(StaticIdentity(creds, "callee")))
    port = await srv.start()
    client = ProxyClient(MutualTLS(StaticIdentity(creds, "caller")))
    s = await client.open("127.0.0.1", port, "spiffe://public/ns/default/callee")
    await s.send([(":path", "x")], b"")
    await s.response()
    assert await s.read_all(10) == b"ok"
    assert seen == ["spiffe://public/ns/default/caller"]
    assert s.conn.transport.get_extra_info("ssl_object").selected_alpn_protocol() == ALPN
    with pytest.raises(ProxyError) as info:  # another app's valid SVID is not the callee (V12)
        await client.open("127.0.0.1", port, "spiffe://public/ns/default/someone-else")
    assert not info.value.retryable
    client.close()
    await srv.stop(0.2)


async def test_plain_caller_is_refused_by_an_mtls_callee(creds):
    async def handler(stream):  # pragma: no cover - must never run
        raise AssertionError("reached")

    srv = ProxyServer(handler, MutualTLS(StaticIdentity(creds, "callee")))
    port = await srv.start()
    client = ProxyClient()
    with pytest.raises(ProxyError):  # refused when connecting, or when the stream is sent
        s = await client.open("127.0.0.1", port)
        await s.send([(":path", "x")], b"")
        await asyncio.wait_for(s.response(), 5)
    client.close()
    await srv.stop(0.2)


async def test_caller_from_an_untrusted_ca_is_refused(creds):
    calls = []

    async def handler(stream):
        calls.append(1)
        await stream.send([(":status", "200")], b"")

    srv = ProxyServer(handler, MutualTLS(StaticIdentity(creds, "callee")))
    port = await srv.start()
    stranger = ProxyClient(MutualTLS(StaticIdentity(generate_credentials("localhost"), "caller")))
    with pytest.raises(ProxyError):
        s = await stranger.open("127.0.0.1", port, "spiffe://public/ns/default/callee")
        await s.send([(":path", "x")], b"")
        await asyncio.wait_for(s.response(), 5)
    assert calls == []
    stranger.close()
    await srv.stop(0.2)
