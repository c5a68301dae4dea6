"""TLS helpers: contexts that require peer certificates, then strict SPIFFE checks on the peer."""
from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest

from pydapr.identity import (SpiffeID, SVIDError, client_context, peer_chain, server_context,
                             verify_peer)
from pydapr.identity.svid import _load_encrypted
from pydapr.testing.pki import TestPKI


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI("tls")


async def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> tuple[Any, Any]:
    """Connect once. Returns (server side, client side): the server's SSLObject, or None when the
    server refused the client; the client's SSLObject, or the exception it got."""
    accepted: list[Any] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer.get_extra_info("ssl_object"))
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    client: Any
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
                                                      server_hostname=None)
        client = writer.get_extra_info("ssl_object")
        try:
            await asyncio.wait_for(reader.read(), 5)  # b"ok", or the server's alert (TLS 1.3)
        except (ssl.SSLError, ConnectionError):
            pass
        writer.close()
    except (ssl.SSLError, ConnectionError, OSError) as exc:
        client = exc
    server.close()
    return (accepted[0] if accepted else None), client


async def test_mutual_tls_both_sides_learn_the_peer_id(pki: TestPKI) -> None:
    a, b = pki.svid(app_id="caller"), pki.svid(app_id="callee")
    srv, cli = await handshake(server_context(b, pki.bundle, trust_domains={"public"}),
                               client_context(a, pki.bundle, trust_domains={"public"}))
    assert verify_peer(srv) == SpiffeID("public", "default", "caller")
    assert verify_peer(cli, SpiffeID.any_trust_domain("default", "callee")).app_id == "callee"
    assert len(peer_chain(cli)) == 3  # leaf, issuer and the root OpenSSL verified against


async def test_client_without_certificate_fails_the_handshake(pki: TestPKI) -> None:
    plain = ssl.create_default_context(cadata=pki.root_pem)
    plain.check_hostname = False
    srv, cli = await handshake(server_context(pki.svid(), pki.bundle), plain)
    assert srv is None, "the server accepted a client without a certificate"


async def test_client_from_a_foreign_ca_fails_the_handshake(pki: TestPKI) -> None:
    foreign = TestPKI("foreign")
    srv, cli = await handshake(server_context(pki.svid(), pki.bundle),
                               client_context(foreign.svid(), pki.bundle))
    assert srv is None


async def test_client_rejects_a_server_from_a_foreign_ca(pki: TestPKI) -> None:
    foreign = TestPKI("foreign")
    _, cli = await handshake(server_context(foreign.svid(), foreign.bundle),
                             client_context(pki.svid(), pki.bundle))
    assert isinstance(cli, ssl.SSLError)
    assert "certificate verify failed" in str(cli)


async def test_expired_peer_fails_the_handshake(pki: TestPKI) -> None:
    expired = pki.svid(app_id="old", not_before=-7200, not_after=-10)
    _, cli = await handshake(server_context(expired, pki.bundle),
                             client_context(pki.svid(), pki.bundle))
    assert isinstance(cli, ssl.SSLError)


async def test_foreign_trust_domain_passes_tls_but_not_verify_peer(pki: TestPKI) -> None:
    evil = pki.svid(trust_domain="evil", app_id="caller")
    srv, _ = await handshake(server_context(pki.svid(), pki.bundle, trust_domains={"public"}),
                             client_context(evil, pki.bundle))
    with pytest.raises(SVIDError) as info:
        verify_peer(srv)
    assert info.value.check == "V13"


async def test_server_with_another_apps_valid_svid_is_refused_by_the_pin(pki: TestPKI) -> None:
    _, cli = await handshake(server_context(pki.svid(app_id="mallory"), pki.bundle),
                             client_context(pki.svid(app_id="caller"), pki.bundle))
    with pytest.raises(SVIDError) as info:
        verify_peer(cli, SpiffeID.any_trust_domain("default", "callee"))
    assert info.value.check == "V12" and "mallory" in info.value.reason


async def test_a_ca_leaf_is_refused_by_openssl_or_by_verify_peer(pki: TestPKI) -> None:
    srv, _ = await handshake(server_context(pki.svid(), pki.bundle),
                             client_context(pki.svid(app_id="c", ca=True), pki.bundle))
    if isinstance(srv, ssl.SSLObject):
        with pytest.raises(SVIDError) as info:
            verify_peer(srv)
        assert info.value.check == "V7"


def test_verify_peer_needs_a_bundle_for_foreign_contexts(pki: TestPKI) -> None:
    class Fake:
        context = ssl.create_default_context()
    with pytest.raises(TypeError, match="bundle="):
        verify_peer(Fake())  # type: ignore[arg-type]


def test_contexts_have_strict_settings(pki: TestPKI) -> None:
    for ctx in (server_context(pki.svid(), pki.bundle), client_context(pki.svid(), pki.bundle)):
        assert ctx.verify_mode == ssl.CERT_REQUIRED
        assert ctx.verify_flags & ssl.VERIFY_X509_STRICT
        assert not ctx.verify_flags & getattr(ssl, "VERIFY_X509_PARTIAL_CHAIN", 0)
        assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
        assert not ctx.check_hostname


def test_fallback_without_memfd_loads_an_encrypted_key_and_leaves_no_file(
        pki: TestPKI, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    svid = pki.svid()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _load_encrypted(ctx, svid.chain_pem(), svid.key)
    with pytest.raises(ssl.SSLError):
        _load_encrypted(ctx, svid.chain_pem(), pki.svid().key)  # key mismatch is detected
    assert list(tmp_path.iterdir()) == []


def test_svid_repr_never_shows_the_key(pki: TestPKI) -> None:
    svid = pki.svid()
    assert "PRIVATE" not in repr(svid) and "key=" not in repr(svid)
