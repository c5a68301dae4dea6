"""A real sentry process issues SVIDs to the identity client over TLS; renewal and root rotation."""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from pathlib import Path

import pytest
from cryptography import x509

from pydapr.identity import (AnchorSource, Identity, IdentityError, IdentitySettings, SpiffeID,
                             SVIDError, verify_svid)
from pydapr.testing import SentryProcess
from pydapr.testing.pki import TestPKI

TWO_SECONDS = """
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: daprsystem}
spec:
  mtls: {workloadCertTTL: 2s, allowedClockSkew: 15m}
"""


def identity(sentry: SentryProcess, app: str = "app", *, anchors: str | None = None,
             anchors_file: Path | None = None, token_file: str = "",
             startup_timeout: float = 10.0) -> Identity:
    source = AnchorSource(anchors if anchors is not None else ("" if anchors_file else
                                                                sentry.anchors_pem), anchors_file)
    return Identity(IdentitySettings(
        spiffe_id=SpiffeID.for_app("public", "default", app), anchors=source,
        sentry_address=sentry.address, trust_domains=frozenset({"public"}), token_file=token_file,
        poll_interval=0.1, startup_timeout=startup_timeout))


async def eventually(check, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def sentry():
    with SentryProcess() as s:
        yield s


async def test_sentry_process_issues_an_svid_over_tls(sentry: SentryProcess) -> None:
    ident = identity(sentry, "checkout")
    await ident.start()
    try:
        svid = ident.current()
        assert svid.spiffe_id == SpiffeID("public", "default", "checkout")
        assert verify_svid(svid.chain, ident.bundle, expected_id=svid.spiffe_id)
        lifetime = svid.not_after - svid.not_before
        assert abs(lifetime.total_seconds() - (24 * 3600 + 15 * 60)) < 5  # TTL 24 h + 15 min skew
        assert "issued spiffe://public/ns/default/checkout" in sentry.logs()
    finally:
        await ident.stop()


async def test_a_sidecar_with_foreign_anchors_cannot_talk_to_the_sentry(sentry: SentryProcess) -> None:
    ident = identity(sentry, anchors=TestPKI("foreign").root_pem, startup_timeout=0.5)
    with pytest.raises(IdentityError, match="could not obtain an identity"):
        await ident.start()


async def test_renewal_with_a_two_second_ttl_and_connections_across_rotation() -> None:
    with SentryProcess(config=TWO_SECONDS) as sentry:
        a, b = identity(sentry, "a"), identity(sentry, "b")
        await a.start()
        await b.start()
        server_ctx = b.server_context(alpn=["test/1"])
        callers: list[SpiffeID] = []

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            callers.append(b.verify_peer(writer.get_extra_info("ssl_object")))
            while data := await reader.read(100):
                writer.write(data)
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]

        async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
            r, w = await asyncio.open_connection("127.0.0.1", port, ssl=a.client_context(["test/1"]),
                                                 server_hostname=None)
            peer = a.verify_peer(w.get_extra_info("ssl_object"),
                                 SpiffeID.any_trust_domain("default", "b"))
            assert peer.app_id == "b"
            served = x509.load_der_x509_certificate(w.get_extra_info("ssl_object").getpeercert(True))
            return r, w, served.serial_number

        try:
            first = a.current()
            r1, w1, served1 = await connect()
            assert served1 == b.current().serial
            await eventually(lambda: a.renewals >= 3 and b.renewals >= 3, what="three renewals")
            assert a.current() is not first and a.current().serial != first.serial
            assert a.generation >= 4
            w1.write(b"still here")  # the connection opened before the rotations keeps working
            assert await asyncio.wait_for(r1.readexactly(10), 5) == b"still here"
            b_serial = b.current().serial
            r2, w2, served2 = await connect()  # a new connection presents the current certificate
            assert served2 != served1 and served2 in (b_serial, b.current().serial)
            assert callers[-1] == SpiffeID("public", "default", "a")
            for w in (w1, w2):
                w.close()
            log = sentry.logs()
            assert log.count("issued spiffe://public/ns/default/a") >= 4
        finally:
            server.close()
            await a.stop()
            await b.stop()


async def test_join_token_validator_over_the_wire(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("app: correct-horse-battery-staple\n")
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("correct-horse-battery-staple\n")
    bad.write_text("wrong-horse-battery-staple\n")
    with SentryProcess(args=["--join-tokens", str(tokens)]) as sentry:
        ident = identity(sentry, token_file=str(good))
        await ident.start()
        assert ident.current().spiffe_id.app_id == "app"
        await ident.stop()
        with pytest.raises(IdentityError, match="PERMISSION_DENIED: the join token is not valid"):
            await identity(sentry, token_file=str(bad), startup_timeout=0.3).start()
        assert "correct-horse" not in sentry.logs() and "wrong-horse" not in sentry.logs()


def test_insecure_sentry_refuses_a_non_loopback_address() -> None:
    sentry = SentryProcess(args=["--listen-address", "0.0.0.0"])
    sentry.start(wait=False)
    try:
        assert sentry.proc.wait(20) == 1
        assert "insecure validator" in sentry.logs()
    finally:
        sentry.stop()


async def test_root_replacement_with_overlap(tmp_path: Path) -> None:
    """Sidecars trust old+new roots while the sentry switches issuers; then the old root goes."""
    with SentryProcess(config=TWO_SECONDS) as sentry:
        anchors = tmp_path / "anchors.pem"
        old_root = sentry.anchors_pem
        anchors.write_text(old_root)
        ident = identity(sentry, anchors_file=anchors)
        await ident.start()
        try:
            old_svid = ident.current()
            new = TestPKI("new")
            anchors.write_text(old_root + new.root_pem)  # 1. distribute the new root (overlap)
            await eventually(lambda: len(ident.bundle) == 2, what="the overlap bundle")
            ca, cert, key = new.credentials_pem()
            creds = sentry.credentials
            (creds / "issuer.key").write_bytes(key)  # 2. the sentry switches issuer, no restart
            (creds / "issuer.crt").write_bytes(cert)
            (creds / "ca.crt").write_bytes(ca + old_root.encode())
            await eventually(lambda: ident.current().chain[-1].issuer == new.root.subject,
                             what="an SVID from the new issuer")
            new_svid = ident.current()
            for svid in (old_svid, new_svid):  # during the overlap both generations verify
                during = svid.not_after - dt.timedelta(seconds=1)
                assert verify_svid(svid.chain, ident.bundle, now=during).app_id == "app"
            anchors.write_text(new.root_pem)  # 3. retire the old root
            os.utime(anchors, None)
            await eventually(lambda: len(ident.bundle) == 1, what="the new-only bundle")
            with pytest.raises(SVIDError) as info:
                verify_svid(old_svid.chain, ident.bundle, now=old_svid.not_before)
            assert info.value.check == "V1"
            gen = ident.renewals
            await eventually(lambda: ident.renewals > gen + 1, what="renewals after the rotation")
            assert verify_svid(ident.current().chain, ident.bundle).app_id == "app"
        finally:
            await ident.stop()


async def test_unparsable_anchors_file_is_fatal(tmp_path: Path, sentry: SentryProcess) -> None:
    anchors = tmp_path / "anchors.pem"
    anchors.write_text(sentry.anchors_pem)
    fatal: list[str] = []
    ident = identity(sentry, anchors_file=anchors)
    ident.on_fatal = fatal.append
    await ident.start()
    try:
        anchors.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        await eventually(lambda: bool(fatal), what="the fatal callback")
        assert "trust anchors became unusable" in fatal[0] and not ident.ready
    finally:
        await ident.stop()


async def test_renewal_survives_a_sentry_restart(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    first = SentryProcess(credentials=certs, config=TWO_SECONDS).start()
    ident = identity(first)
    await ident.start()
    try:
        first.stop()
        before = ident.renewals
        await eventually(lambda: ident.current().not_after.timestamp() < time.time(),
                         what="the SVID to expire while the sentry is down")
        assert ident.renewals == before
        with SentryProcess(credentials=certs, config=TWO_SECONDS, port=first.port):
            await eventually(lambda: ident.renewals > before, what="renewal after the restart")
            assert ident.current().not_after.timestamp() > time.time()
    finally:
        await ident.stop()
