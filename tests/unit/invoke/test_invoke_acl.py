"""Access-control decision tables (security spec 1.3: P1-P8, R0-R11, M1-M6, decisions 1-5)."""
from __future__ import annotations

import logging

import pytest

from pydapr.errors import ConfigError
from pydapr.plugins.invoke.acl import OperationRule, OperationTrie, parse_access_control, parse_spiffe_id


def sid(app: str, ns: str = "ns1", td: str = "public") -> str:
    return f"spiffe://{td}/ns/{ns}/{app}"


# the policy of Dapr's pkg/acl/acl_test.go
DAPR_SPEC = {
    "defaultAction": "deny",
    "trustDomain": "public",
    "policies": [
        {"appId": "app1", "defaultAction": "allow", "trustDomain": "public", "namespace": "ns1",
         "operations": [{"name": "/op1", "httpVerb": ["POST", "GET"], "action": "allow"},
                        {"name": "/op2", "httpVerb": ["*"], "action": "deny"}]},
        {"appId": "app2", "defaultAction": "deny", "trustDomain": "domain1", "namespace": "ns2",
         "operations": [{"name": "/op3/a/*", "httpVerb": ["PUT", "GET"], "action": "allow"},
                        {"name": "/op4", "httpVerb": ["POST"], "action": "allow"}]},
        {"appId": "app3", "trustDomain": "domain1", "namespace": "ns1",
         "operations": [{"name": "/op5", "httpVerb": ["POST"], "action": "allow"}]},
        {"appId": "app4", "defaultAction": "deny", "trustDomain": "public", "namespace": "ns1",
         "operations": [{"name": "/op6", "action": "allow"},
                        {"name": "/op7/a/b/*", "action": "allow"},
                        {"name": "/op7/a/b/c/f", "action": "allow"},
                        {"name": "/op7/a/b*", "action": "allow"},
                        {"name": "/op7/c/**", "action": "allow"}]},
    ],
}


@pytest.fixture(scope="module")
def http_acl():
    return parse_access_control(DAPR_SPEC, grpc=False)


@pytest.fixture(scope="module")
def grpc_acl():
    return parse_access_control(DAPR_SPEC, grpc=True)


@pytest.mark.parametrize("caller,op,verb,allowed", [
    (sid("appX"), "op1", "POST", False),                          # unknown app: global deny
    (sid("app1", td="private"), "op1", "POST", False),            # wrong trust domain (R4)
    (sid("app1", ns="abcd"), "op1", "POST", False),               # wrong namespace (R3)
    (None, "op1", "POST", False),                                 # nil identity (R2)
    (sid("app1"), "opX", "POST", True),                           # no rule: app default (R6)
    (sid("app1"), "Op2", "POST", False),                          # lower-cased, /op2 * deny (R9)
    (sid("app1"), "op1", "GET", True),                            # R8
    (sid("app1"), "op1", "PUT", True),                            # verb not listed: app default (R10)
    (sid("app2", "ns2", "domain1"), "op4", "PUT", False),         # POST only: app default deny
    (sid("app3", "ns1", "domain1"), "op5", "PUT", False),         # no app default: global deny
    (sid("app2", "ns2", "domain1"), "op4", "POST", True),
    (sid("app2", "ns2", "domain1"), "/op4", "POST", True),
    (sid("app2", "ns2", "domain1"), "op4", "", False),            # verb NONE: app default (R11)
    (sid("app2", "ns2", "domain1"), "/op3/a", "PUT", True),       # /op3/a/* covers /op3/a (M4)
    (sid("app2", "ns2", "domain1"), "/op3/a/b", "PUT", True),
    (sid("app2", "ns2", "domain1"), "/op3/b/b", "PUT", False),
])
def test_dapr_http_cases(http_acl, caller, op, verb, allowed):
    assert http_acl.check(caller, op, verb).allowed is allowed


@pytest.mark.parametrize("caller,op,allowed", [
    (sid("app2", "ns2", "domain1"), "/OP4", False),               # case-sensitive for gRPC
    (sid("app2", "ns2", "domain1"), "op4", True),
    (sid("app4"), "op6", True),
    (sid("app4"), "op7/a/b/c", True),
    (sid("app4"), "op7/a/b/c/d", False),
    (sid("app4"), "op7/a/b/c/f", True),
    (sid("app4"), "op7/a/bc", True),
    (sid("app4"), "op7/c/d/e", True),
])
def test_dapr_grpc_cases(grpc_acl, caller, op, allowed):
    assert grpc_acl.check(caller, op, "").allowed is allowed


def test_no_acl_allows_everything():                                # R0 / P1
    assert parse_access_control(None, grpc=False) is None
    assert parse_access_control({}, grpc=False) is None
    assert parse_access_control({"defaultAction": "", "trustDomain": "", "policies": []},
                                grpc=False) is None


@pytest.mark.parametrize("spec,allowed", [
    ({"trustDomain": "public"}, False),                               # P2: policies absent: deny
    ({"trustDomain": "public", "policies": []}, True),                # explicit empty list: allow
    ({"defaultAction": "ALLOW"}, True),                               # P8: case-insensitive allow
    ({"defaultAction": "alow"}, False),                               # P8: typo denies
    ({"defaultAction": "deny"}, False),
])
def test_global_default(spec, allowed):
    acl = parse_access_control(spec, grpc=False)
    assert acl.check(None, "x", "GET").allowed is allowed


def test_decision_1_empty_default_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="pydapr.acl"):
        acl = parse_access_control({"trustDomain": "public", "policies": [
            {"appId": "a", "trustDomain": "public", "namespace": "default"}]}, grpc=False,
            source="cfg.yaml")
    assert acl.default_action == "deny"
    assert "cfg.yaml" in caplog.text and "denied" in caplog.text


def test_global_trust_domain_defaults_to_public():                   # P3
    acl = parse_access_control({"defaultAction": "deny"}, grpc=False)
    assert acl.trust_domain == "public"


@pytest.mark.parametrize("missing", ["appId", "trustDomain", "namespace"])
def test_policy_without_required_field_is_rejected(missing):         # P4
    policy = {"appId": "a", "trustDomain": "public", "namespace": "default"}
    del policy[missing]
    with pytest.raises(ConfigError, match=missing):
        parse_access_control({"defaultAction": "deny", "policies": [policy]}, grpc=False,
                             source="cfg.yaml")


def test_duplicate_policy_overwrites(caplog):                         # P5
    spec = {"defaultAction": "deny", "policies": [
        {"appId": "a", "trustDomain": "public", "namespace": "ns", "defaultAction": "allow"},
        {"appId": "a", "trustDomain": "public", "namespace": "ns", "defaultAction": "deny"}]}
    acl = parse_access_control(spec, grpc=False)
    assert acl.check(sid("a", "ns"), "x", "GET").allowed is False


@pytest.mark.parametrize("verb", ["get", "Post", "FETCH", ""])
def test_decision_4_bad_verbs_stop_startup(verb):                    # P7 / decision 4
    spec = {"defaultAction": "deny", "policies": [
        {"appId": "a", "trustDomain": "public", "namespace": "ns",
         "operations": [{"name": "/x", "httpVerb": [verb], "action": "allow"}]}]}
    with pytest.raises(ConfigError, match="operations\\[0\\].httpVerb"):
        parse_access_control(spec, grpc=False)


def test_leading_slash_added_and_http_lowercased():                  # P6
    spec = {"defaultAction": "deny", "policies": [
        {"appId": "a", "trustDomain": "public", "namespace": "ns",
         "operations": [{"name": "Orders", "httpVerb": ["GET"], "action": "allow"}]}]}
    assert parse_access_control(spec, grpc=False).check(sid("a", "ns"), "/ORDERS", "GET").allowed
    grpc = parse_access_control(spec, grpc=True)
    assert grpc.check(sid("a", "ns"), "Orders", "").allowed
    assert not grpc.check(sid("a", "ns"), "orders", "").allowed


@pytest.mark.parametrize("caller", [
    "spiffe://public/ns/ns1",                  # too few segments
    "spiffe://public/xx/ns1/app1",             # 2nd segment not "ns"
    "spiffe://public/ns//app1",                # empty namespace
    "spiffe://public/ns/ns1/",                 # empty app
    "spiffe://public/ns/ns1/app1/extra",       # decision 5: extra segments denied
    "https://public/ns/ns1/app1",
])
def test_r1_malformed_caller_id_is_denied_even_with_allow_default(caller):
    acl = parse_access_control({"defaultAction": "allow"}, grpc=False)
    d = acl.check(caller, "x", "GET")
    assert d.allowed is False and d.by == "malformed-id"


def test_parse_spiffe_id():
    assert parse_spiffe_id("spiffe://td/ns/n/a") == ("td", "n", "a")
    assert parse_spiffe_id("spiffe://td/ns/n/a/b") is None


def _trie(*names: str) -> OperationTrie:
    t = OperationTrie()
    for n in names:
        t.put(n, OperationRule(n))
    return t


def _hit(trie: OperationTrie, op: str) -> str | None:
    r = trie.search(op)
    return None if r is None else r.name


@pytest.mark.parametrize("rules,op,expected", [
    (("/o/**", "/o/admin"), "/o/admin", "/o/**"),       # M1 first match in insertion order
    (("/o/admin", "/o/**"), "/o/admin", "/o/admin"),
    (("/a",), "/a", "/a"), (("/a",), "/a/b/c", "/a"), (("/a",), "/ab", None),      # M3 prefix
    (("/op1",), "/op10", None),
    (("/a/*",), "/a", "/a/*"), (("/a/*",), "/a/b", "/a/*"), (("/a/*",), "/a/b/c", None),  # M4, M2
    (("/a/**",), "/a/b", "/a/**"), (("/a/**",), "/a/b/c", "/a/**"),
    (("/a*",), "/a", "/a*"), (("/a*",), "/abc", "/a*"), (("/a*",), "/abc/d", "/a*"),
    (("/a/*/c",), "/a/b/c", None),                      # M5 middle * never matches
    (("/a/**/c",), "/a/b/c", "/a/**/c"),                # M5 middle ** = exactly one segment
    (("/a/**/c",), "/a/b/x/c", None),
    (("/*x",), "/abx", "/*x"), (("/a*c",), "/abbc", "/a*c"), (("/a*c",), "/abcd", None),
    (("/",), "/", "/"),
])
def test_operation_matching(rules, op, expected):
    assert _hit(_trie(*rules), op) == expected


def test_m6_acl_does_not_normalise():
    t = _trie("/admin")
    assert _hit(t, "/x/../admin") is None
    assert _hit(t, "/admin%2F..") is None


def test_linter_warns_about_shadowed_and_dead_rules(caplog):
    spec = {"defaultAction": "deny", "policies": [
        {"appId": "a", "trustDomain": "public", "namespace": "ns", "operations": [
            {"name": "/o/**", "httpVerb": ["*"], "action": "allow"},
            {"name": "/o/admin", "httpVerb": ["*"], "action": "deny"},
            {"name": "/p/*/q", "httpVerb": ["*"], "action": "allow"}]}]}
    with caplog.at_level(logging.WARNING, logger="pydapr.acl"):
        parse_access_control(spec, grpc=False)
    assert "shadowed by the earlier rule '/o/**'" in caplog.text
    assert "'/p/*/q' never matches" in caplog.text
