"""SPIFFE ID grammar (V3 to V6, V11) and the CA's identity rules (C2)."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from pydapr.identity import SpiffeID, SVIDError
from pydapr.identity.spiffe import parse_uri, validate_app_id, validate_namespace

GOOD = [
    ("spiffe://public/ns/default/app", ("public", "default", "app")),
    ("spiffe://a.b-c_d/ns/my-ns.1/App_2", ("a.b-c_d", "my-ns.1", "App_2")),
    ("spiffe://public/ns/default/" + "a" * 64, ("public", "default", "a" * 64)),
]

BAD = [
    ("spiffe:/public/ns/default/app", "V3"),
    ("SPIFFE://public/ns/default/app", "V3"),
    ("spiffe://", "V4"),
    ("spiffe:///ns/default/app", "V4"),
    ("spiffe://user@public/ns/default/app", "V4"),
    ("spiffe://public:8443/ns/default/app", "V4"),
    ("spiffe://Public/ns/default/app", "V4"),
    ("spiffe://%70ublic/ns/default/app", "V4"),
    ("spiffe://" + "a" * 256 + "/ns/default/app", "V4"),
    ("spiffe://public/ns/default/app?x", "V3"),
    ("spiffe://public/ns/default/app#f", "V3"),
    ("spiffe://public/ns//app", "V5"),
    ("spiffe://public/ns/default/app/", "V5"),
    ("spiffe://public/ns/./app", "V5"),
    ("spiffe://public/ns/default/..", "V5"),
    ("spiffe://public/ns/default/a%2Fb", "V5"),
    ("spiffe://public/ns/default/a b", "V5"),
    ("spiffe://public", "V6"),
    ("spiffe://public/ns/default", "V5"),
    ("spiffe://public/ns/default/app/extra", "V5"),  # decision 5: Dapr ignores extras, we refuse
    ("spiffe://public/namespace/default/app", "V5"),
    ("spiffe://public/ns/default/my.app", "V5"),  # Dapr app ids have no dots
    ("spiffe://public/ns/default/" + "a" * 2100, "V11"),
]


@pytest.mark.parametrize("uri,parts", GOOD)
def test_good_ids_parse(uri: str, parts: tuple[str, str, str]) -> None:
    sid = SpiffeID.parse(uri)
    assert (sid.trust_domain, sid.namespace, sid.app_id) == parts
    assert sid.uri == uri and str(sid) == uri


@pytest.mark.parametrize("uri,check", BAD)
def test_bad_ids_are_refused_with_the_rule(uri: str, check: str) -> None:
    with pytest.raises(SVIDError) as info:
        SpiffeID.parse(uri)
    assert info.value.check == check, info.value


@pytest.mark.parametrize("app_id,ok", [
    ("a" * 64, True), ("a" * 65, False), ("", False), ("my.app", False), ("my app", False),
    ("app-1_X", True), ("app/x", False)])
def test_app_id_rules_match_dapr(app_id: str, ok: bool) -> None:
    if ok:
        assert validate_app_id(app_id) == app_id
    else:
        with pytest.raises(SVIDError) as info:
            validate_app_id(app_id)
        assert info.value.check == "C2"


@pytest.mark.parametrize("ns", ["", ".", "..", "a/b", "a b"])
def test_bad_namespaces(ns: str) -> None:
    with pytest.raises(SVIDError):
        validate_namespace(ns)


def test_matching_with_and_without_trust_domain() -> None:
    sid = SpiffeID("td1", "ns", "app")
    assert sid.matches(SpiffeID.any_trust_domain("ns", "app"))
    assert sid.matches(SpiffeID("td1", "ns", "app"))
    assert not sid.matches(SpiffeID("td2", "ns", "app"))
    assert not sid.matches(SpiffeID.any_trust_domain("ns", "other"))
    assert str(SpiffeID.any_trust_domain("ns", "app")) == "spiffe://*/ns/ns/app"


# Reference grammar (SPIFFE-ID sections 2.1 and 2.2, lowercase as go-spiffe, plus Dapr's profile)
_REF = re.compile(r"spiffe://[a-z0-9._-]{1,255}/ns/(?!\.{1,2}/)[A-Za-z0-9._-]+/[A-Za-z0-9_-]{1,64}")
_ALPHABET = "abcAZ019._-/:@%?#% \u00e9"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=40), st.text(alphabet=_ALPHABET, max_size=12),
       st.text(alphabet=_ALPHABET, max_size=12))
def test_parser_accepts_exactly_the_reference_grammar(td: str, ns: str, app: str) -> None:
    uri = f"spiffe://{td}/ns/{ns}/{app}"
    try:
        SpiffeID.parse(uri)
        accepted = True
    except SVIDError:
        accepted = False
    assert accepted == bool(_REF.fullmatch(uri)), uri


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_parser_never_crashes_on_arbitrary_text(text: str) -> None:
    try:
        parse_uri(text)
    except SVIDError:
        pass
