"""Service invocation with mTLS (sentry, SVIDs): the access-control tables against real processes.

Follows the self-hosted walkthrough: start the sentry, export its root as
DAPR_TRUST_ANCHORS, start each sidecar with --enable-mtls --sentry-address and
--config. Every denied case also checks that the app's handler was never hit.
"""
from __future__ import annotations

import json

import pytest

ONLY_PUBLIC = """
accessControl:
  defaultAction: deny
  trustDomain: public
  policies:
  - appId: appa
    defaultAction: deny
    trustDomain: public
    namespace: default
    operations:
    - {name: /public, httpVerb: ['*'], action: allow}
"""

DENY_LIST = """
accessControl:
  defaultAction: allow
  trustDomain: public
  policies:
  - appId: appa
    defaultAction: allow
    trustDomain: public
    namespace: default
    operations:
    - {name: /neworder, httpVerb: ['*'], action: deny}
"""


@pytest.fixture(scope="module")
def mesh(sentry, apps, sidecars, config_yaml):
    env = {"DAPR_TRUST_ANCHORS": sentry.anchors}
    args = sentry.sidecar_args()
    strict, lenient = apps(), apps()
    b = sidecars("appb", app_port=strict.port, env=env, args=args, config=config_yaml(ONLY_PUBLIC))
    sidecars("appd", app_port=lenient.port, env=env, args=args, config=config_yaml(DENY_LIST))
    a = sidecars("appa", env=env, args=args)
    other_ns = sidecars("appa", env={**env, "NAMESPACE": "ns2"}, args=args)
    foreign = sidecars("appx", env=env, args=args,
                       config=config_yaml("accessControl: {trustDomain: evil}"))
    return {"a": a, "b": b, "ns2": other_ns, "foreign": foreign, "strict": strict,
            "lenient": lenient}


def invoke(sc, target, method, verb="POST"):
    status, _, body = sc.request(verb, f"/v1.0/invoke/{target}/method/{method}", b"x")
    return status, body


# security spec 1.4; pydapr answers 400 where the method holds a forbidden character
# (decision 8: Dapr's HTTP server cleans the path first and answers 403 there)
@pytest.mark.parametrize("method,status,seen", [
    ("public", 200, "/public"),
    ("unauthorized", 403, None),
    ("public%23/../unauthorized", 400, None),
    ("public%3F/../unauthorized", 400, None),
    ("public%23/../../unauthorized", 400, None),
    ("public/sub%23/../../unauthorized", 400, None),
    ("public%0D/../unauthorized", 400, None),
    ("public%25/../unauthorized", 403, None),
    ("public%2F..%2Funauthorized", 403, None),
    ("admin%2F..%2Fpublic", 200, "/public"),
    ("admin%2F..%2F..%2Fpublic", 200, "/public"),
    ("admin%2Fsecret%2F..%2F..%2Fpublic", 200, "/public"),
    ("..%2Fpublic", 200, "/public"),
    ("admin%3Fignored", 400, None),
    ("admin%00public", 400, None),
    ("admin%23%3F%25bypass", 400, None),
    ("test%00stream", 400, None),
    ("test%0Dstream", 400, None),
    ("admin%25stream", 403, None),
    ("admin%22stream", 403, None),
    ("admin%2Astream", 403, None),
    ("admin%5Cstream", 403, None),
    ("admin%5C..%5Cpublic", 403, None),
    ("admin%2F..%5C..%2Fpublic", 403, None),
])
def test_reserved_characters_and_acl(mesh, method, status, seen):
    got, body = invoke(mesh["a"], "appb", method)
    assert got == status, body
    if seen is not None:
        assert json.loads(body)["path"] == seen
    elif status == 403:
        err = json.loads(body)
        assert err["errorCode"] == "ERR_DIRECT_INVOKE"
        assert "spiffe://public/ns/default/appa" in err["message"] and "verb: POST" in err["message"]
        if method == "unauthorized":  # the denial is logged by the callee's sidecar
            assert ("invocation denied: id spiffe://public/ns/default/appa operation unauthorized "
                    "verb POST") in mesh["b"].logs()
    hits = mesh["strict"].hits
    assert hits["/unauthorized"] == 0 and not any("admin" in p or "test" in p for p in hits)


@pytest.mark.parametrize("path,expected", [("/admin/../public", 200), ("/admin%2F..%2Fpublic", 200),
                                           ("/test%23stream", 400)])
def test_header_form_is_canonicalised_the_same_way(mesh, path, expected):
    status, _, body = mesh["a"].request("POST", path, b"x", {"dapr-app-id": "appb"})
    assert status == expected
    if status == 200:
        assert json.loads(body)["path"] == "/public"


@pytest.mark.parametrize("method,expected", [
    ("neworder", 403), ("neworder/../neworder", 403), ("..%2Fneworder", 403), ("newOrdeR", 403),
    ("neworde%2572", 200),   # evaluated and dispatched as neworde%72: it is not /neworder
])
def test_dap_02_013_deny_list_bypasses(mesh, method, expected):
    status, body = invoke(mesh["a"], "appd", method)
    assert status == expected, body
    if status == 200:
        assert json.loads(body)["path"] == "/neworde%72"
    assert mesh["lenient"].hits["/neworder"] == 0


def test_identity_headers_come_from_the_certificate(mesh):
    status, _, body = mesh["a"].request("POST", "/v1.0/invoke/appb/method/public", b"x",
                                        {"dapr-caller-app-id": "appz"})
    headers = json.loads(body)["header_lists"]
    assert status == 200
    assert headers["dapr-caller-app-id"] == ["appa"] and headers["dapr-caller-namespace"] == ["default"]


def test_same_app_id_in_another_namespace_is_not_the_policy_subject(mesh):
    status, body = invoke(mesh["ns2"], "appb.default", "public")
    assert status == 403
    assert "spiffe://public/ns/ns2/appa" in json.loads(body)["message"]
    status, body = invoke(mesh["ns2"], "appd.default", "anything")
    assert status == 200  # appd's global default is allow


def test_foreign_trust_domain_is_refused_at_the_tls_layer(mesh):
    before = sum(mesh["strict"].hits.values())
    status, body = invoke(mesh["foreign"], "appb", "public")
    assert status == 500 and json.loads(body)["errorCode"] == "ERR_DIRECT_INVOKE"
    assert sum(mesh["strict"].hits.values()) == before
