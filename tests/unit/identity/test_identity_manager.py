"""Identity lifecycle pieces that need no sentry: static SVIDs, renewal timing, guards."""
from __future__ import annotations

import time

import pytest

from pydapr.identity import AnchorSource, Identity, IdentityError, IdentitySettings, SpiffeID
from pydapr.identity.manager import _retry_delay
from pydapr.testing.pki import TestPKI

APP = SpiffeID("public", "default", "app")


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI("manager")


def make(pki: TestPKI, static=None, **kw) -> Identity:
    return Identity(IdentitySettings(spiffe_id=APP, anchors=AnchorSource(pki.root_pem),
                                     static_svid=static, trust_domains=frozenset({"public"}), **kw))


async def test_static_svid_is_checked_and_used(pki: TestPKI) -> None:
    svid = pki.svid()
    ident = make(pki, static=type(svid)(svid.spiffe_id, (*svid.chain, pki.root), svid.key))
    with pytest.raises(RuntimeError, match="not ready"):
        ident.current()
    await ident.start()
    assert ident.current().leaf == svid.leaf
    assert pki.root not in ident.current().chain  # the root is not sent to peers
    assert ident.client_context().svid is ident.current()
    await ident.stop()


@pytest.mark.parametrize("kwargs,fragment", [
    ({"not_before": -7200, "not_after": -1}, "expired"),
    ({"app_id": "someone-else"}, "expected"),
])
async def test_unusable_static_svid_stops_start_up(pki: TestPKI, kwargs, fragment: str) -> None:
    ident = make(pki, static=pki.svid(**kwargs))
    with pytest.raises(IdentityError, match=fragment):
        await ident.start()


async def test_static_svid_from_a_foreign_ca_is_refused(pki: TestPKI) -> None:
    with pytest.raises(IdentityError, match="does not chain"):
        await make(pki, static=TestPKI("foreign").svid()).start()


def test_renewal_at_half_life_capped_by_the_configured_ttl(pki: TestPKI) -> None:
    now = time.time()
    svid = pki.svid(not_before=-900, not_after=3600)
    svid = type(svid)(svid.spiffe_id, svid.chain, svid.key, received_at=now)
    # half-way through the usable life (from receipt, not from the backdated NotBefore)
    assert abs(svid.renew_at() - (now + 1800)) < 2
    assert abs(make(pki)._renew_at(svid) - (now + 1800)) < 2
    assert abs(make(pki, max_ttl=600)._renew_at(svid) - (now + 300)) < 1


def test_retry_delay_is_bounded() -> None:
    assert _retry_delay(-5) == 0.1 and _retry_delay(0.2) == 0.1
    assert _retry_delay(20) == 5 and _retry_delay(86400) == 10
