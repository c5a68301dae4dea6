"""The sentry's gRPC surface in-process: status codes, the serving certificate pin, health."""
from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from pydapr.identity import SpiffeID, TrustBundle
from pydapr.identity.client import SentryClient, SentryError
from pydapr.identity.pem import certificates_pem, new_private_key, private_key_pem
from pydapr.identity.protocol import METHOD_PATH, SignRequest, sentry_server_name
from pydapr.sentry import SentryServer, SentrySettings, issue_leaf
from pydapr.testing import free_port


@pytest.fixture
async def sentry(tmp_path: Path):
    server = SentryServer(SentrySettings(str(tmp_path / "certs"), port=0, healthz_port=free_port()))
    await server.start()
    yield server
    await server.stop(0)


def bundle_of(server: SentryServer) -> TrustBundle:
    return server.store.current.roots


async def raw_call(server: SentryServer, payload: bytes) -> grpc.aio.AioRpcError:
    creds = grpc.ssl_channel_credentials(bundle_of(server).pem)
    opts = [("grpc.ssl_target_name_override", sentry_server_name("default"))]
    async with grpc.aio.secure_channel(f"127.0.0.1:{server.port}", creds, options=opts) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.unary_unary(METHOD_PATH)(payload, timeout=5)
    return info.value


@pytest.mark.parametrize("payload,fragment", [
    (b"not json", "not a JSON object"), (b"[]", "not a JSON object"),
    (b'{"id": "a"}', "'namespace' is required"), (b'{"id": 1, "namespace": "d"}', "must be a string"),
])
async def test_malformed_messages_are_invalid_argument(sentry: SentryServer, payload: bytes,
                                                       fragment: str) -> None:
    err = await raw_call(sentry, payload)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and fragment in err.details()


async def test_refusals_travel_as_status_codes(sentry: SentryServer) -> None:
    client = SentryClient(f"127.0.0.1:{sentry.port}")
    bad = [(SignRequest("a.b", "default", "csr"), grpc.StatusCode.PERMISSION_DENIED, "dot"),
           (SignRequest("a", "default", "csr", token_validator="jwks"),
            grpc.StatusCode.INVALID_ARGUMENT, "not enabled"),
           (SignRequest("a", "default", "garbage"), grpc.StatusCode.INVALID_ARGUMENT, "found 0")]
    for req, code, fragment in bad:
        with pytest.raises(SentryError) as info:
            await client.sign(req, bundle_of(sentry))
        assert info.value.code == code and fragment in info.value.message


async def test_serving_certificate_carries_the_sentry_id_and_pinned_name(sentry: SentryServer) -> None:
    ctx = ssl.create_default_context(cadata=bundle_of(sentry).pem.decode())
    ctx.set_alpn_protocols(["h2"])
    _, writer = await asyncio.open_connection("127.0.0.1", sentry.port, ssl=ctx,
                                              server_hostname=sentry_server_name("default"))
    leaf = x509.load_der_x509_certificate(writer.get_extra_info("ssl_object").getpeercert(True))
    writer.close()
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://localhost/ns/default/dapr-sentry"]
    assert san.get_values_for_type(x509.DNSName) == [sentry_server_name("default")]


async def test_a_workload_cannot_impersonate_the_sentry(sentry: SentryServer) -> None:
    """A valid SVID from the same CA, without the sentry's DNS name, fails the client's pin."""
    key = new_private_key()
    leaf = issue_leaf(key.public_key(), SpiffeID("public", "default", "mallory"), sentry.store.current)
    creds = grpc.ssl_server_credentials(
        [(private_key_pem(key), certificates_pem((leaf, *sentry.store.current.chain)))])
    fake = grpc.aio.server()
    port = fake.add_secure_port("127.0.0.1:0", creds)
    await fake.start()
    try:
        with pytest.raises(SentryError) as info:
            await SentryClient(f"127.0.0.1:{port}", timeout=3).sign(
                SignRequest("a", "default", "csr"), bundle_of(sentry))
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        await fake.stop(0)


async def test_healthz(sentry: SentryServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", sentry.settings.healthz_port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    writer.close()
