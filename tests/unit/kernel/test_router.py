"""Route matcher behaviour, run against both twins (``impl`` = py / cy, see conftest)."""
from __future__ import annotations

import pytest

from pydapr.errors import MalformedPath


@pytest.fixture
def router(router_cls):
    r = router_cls()
    r.add(("GET",), "/v1.0/healthz", "healthz")
    r.add(("GET", "DELETE"), "/v1.0/state/{store}/{key}", "state.key")
    r.add(("POST", "PUT"), "/v1.0/state/{store}/bulk", "state.bulk")
    r.add(("POST",), "/v1.0/publish/{pubsub}/{topic*}", "publish")
    r.add(("*",), "/v1.0/invoke/{app}/method/{method*}", "invoke")
    return r


# -- priority and backtracking ----------------------------------------------------------


@pytest.fixture
def layered(router_cls):
    r = router_cls()
    r.add(("GET",), "/a/b/c", "literal")
    r.add(("GET",), "/a/{x}/d", "param")
    r.add(("GET",), "/a/{rest*}", "catch-all")
    return r


@pytest.mark.parametrize(("path", "expected"), [
    ("/a/b/c", ("literal", {})),
    ("/a/b/d", ("param", {"x": "b"})),  # literal b has no d: back off to {x}
    ("/a/z/d", ("param", {"x": "z"})),
    ("/a/b/e", ("catch-all", {"rest": "b/e"})),  # neither b/… nor {x}/… fits
    ("/a/b/c/d", ("catch-all", {"rest": "b/c/d"})),
    ("/a/b", ("catch-all", {"rest": "b"})),
    ("/a", ("catch-all", {"rest": ""})),
    ("/b", None),
])
def test_literal_beats_param_beats_catch_all(layered, path, expected):
    assert layered.match("GET", path) == expected


def test_param_beats_catch_all_at_the_same_node(router_cls):
    r = router_cls()
    r.add(("GET",), "/s/{x}", "param")
    r.add(("GET",), "/s/{rest*}", "catch-all")
    assert r.match("GET", "/s/k") == ("param", {"x": "k"})
    assert r.match("GET", "/s/k/l") == ("catch-all", {"rest": "k/l"})


def test_backtracking_drops_the_abandoned_parameters(router_cls):
    r = router_cls()
    r.add(("GET",), "/{a}/{b}/x", "deep")
    r.add(("GET",), "/{c}/y", "shallow")
    assert r.match("GET", "/1/y") == ("shallow", {"c": "1"})
    assert r.match("GET", "/1/2/x") == ("deep", {"a": "1", "b": "2"})


def test_verb_mismatch_backtracks_to_another_route(router_cls):
    r = router_cls()
    r.add(("GET",), "/a/b", "literal")
    r.add(("POST",), "/a/{x}", "param")
    assert r.match("POST", "/a/b") == ("param", {"x": "b"})
    assert r.match("GET", "/a/c") is None


# -- slashes ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/v1.0/state/s/k",
    "/v1.0/state/s/k/",
    "//v1.0//state///s/k//",
    "v1.0/state/s/k",
])
def test_trailing_and_double_slashes_collapse(router, path):
    assert router.match("GET", path) == ("state.key", {"store": "s", "key": "k"})


def test_empty_path_and_root(router_cls):
    r = router_cls()
    r.add(("GET",), "/", "root")
    assert r.match("GET", "/") == ("root", {})
    assert r.match("GET", "") == ("root", {})
    assert r.match("GET", "///") == ("root", {})
    assert r.match("GET", "/x") is None


# -- catch-all -------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "rest"), [
    ("/v1.0/invoke/app/method/api/v2/items", "api/v2/items"),
    ("/v1.0/invoke/app/method/a%2Fb%20c", "a%2Fb%20c"),  # stays percent-encoded
    ("/v1.0/invoke/app/method/a%zz", "a%zz"),  # not decoded, so not malformed
    ("/v1.0/invoke/app/method/a//b/", "a//b/"),  # inner empties and trailing / kept
    ("/v1.0/invoke/app/method//a", "a"),  # empties before the first segment are not
    ("/v1.0/invoke/app/method", ""),
    ("/v1.0/invoke/app/method/", ""),
    ("/v1.0/invoke/app/method///", ""),
])
def test_catch_all_is_the_raw_remainder(router, path, rest):
    assert router.match("PATCH", path) == ("invoke", {"app": "app", "method": rest})


def test_catch_all_only_route(router_cls):
    r = router_cls()
    r.add(("*",), "/{all*}", "all")
    assert r.match("GET", "") == ("all", {"all": ""})
    assert r.match("GET", "//x//y") == ("all", {"all": "x//y"})


# -- percent-decoding ------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "decoded"), [
    ("plain", "plain"),
    ("%41%62c", "Abc"),
    ("a%2Fb", "a/b"),  # an encoded slash is data, not a separator
    ("%C3%A9t%c3%a9", "été"),
    ("caf%C3%A9%20noir", "café noir"),
    ("é%20€", "é €"),  # non-ASCII input mixed with escapes
    ("%25zz", "%zz"),
    ("%41" * 120, "A" * 120),  # longer than the compiled twin's stack buffer
])
def test_params_are_percent_decoded(router, raw, decoded):
    assert router.match("GET", f"/v1.0/state/store/{raw}") == ("state.key", {"store": "store", "key": decoded})


@pytest.mark.parametrize("raw", ["%zz", "a%4", "a%", "%%41", "%4g", "x%G1"])
def test_bad_escape_raises_malformed_path(router, raw):
    with pytest.raises(MalformedPath, match="invalid percent-escape"):
        router.match("GET", f"/v1.0/state/store/{raw}")
    assert issubclass(MalformedPath, ValueError)


def test_bad_escape_only_matters_in_the_winning_route(router):
    assert router.match("GET", "/v1.0/nothing/%zz") is None
    with pytest.raises(MalformedPath):  # {store} of the winning route is decoded
        router.match("POST", "/v1.0/state/%zz/bulk")


def test_params_are_exact_str(router_cls):
    class Path(str):
        pass

    r = router_cls()
    r.add(("GET",), "/x/{a}/{b*}", 1)
    value, params = r.match("GET", Path("/x/é%41/€/😀"))
    assert params == {"a": "éA", "b": "€/😀"}
    assert all(type(v) is str for v in params.values())


# -- methods ---------------------------------------------------------------------------


def test_method_specific_route_beats_wildcard(router_cls):
    r = router_cls()
    r.add(("*",), "/x", "any")
    r.add(("GET",), "/x", "get")
    assert r.match("GET", "/x") == ("get", {})
    assert r.match("POST", "/x") == ("any", {})


def test_leaf_beats_catch_all_at_the_end_of_the_path(router_cls):
    r = router_cls()
    r.add(("*",), "/x", "leaf")
    r.add(("GET",), "/x/{r*}", "rest")
    assert r.match("GET", "/x") == ("leaf", {})
    assert r.match("GET", "/x/y") == ("rest", {"r": "y"})


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/v1.0/healthz"),
    ("GET", "/v1.0/state/s/bulk/extra"),
    ("PATCH", "/v1.0/state/s/k"),
    ("GET", "/v1.0/publish/p/t"),
    ("get", "/v1.0/healthz"),  # verbs are case-sensitive
])
def test_verb_mismatch_returns_none(router, method, path):
    assert router.match(method, path) is None


def test_same_shape_bulk_vs_key(router):
    assert router.match("GET", "/v1.0/state/s/bulk") == ("state.key", {"store": "s", "key": "bulk"})
    assert router.match("PUT", "/v1.0/state/s/bulk") == ("state.bulk", {"store": "s"})
    assert router.match("POST", "/v1.0/publish/p/a/b%2F") == ("publish", {"pubsub": "p", "topic": "a/b%2F"})


# -- registration errors ---------------------------------------------------------------


@pytest.mark.parametrize(("first", "second", "probe"), [
    ((("GET",), "/a/{x}"), (("GET",), "/a/{x}"), "/a/v"),
    ((("GET",), "/a/{x}"), (("GET", "POST"), "/a/{y}/"), "/a/v"),  # same shape, other name
    ((("*",), "/a"), (("*",), "//a"), "/a"),
    ((("POST",), "/a/{r*}"), (("POST",), "/a/{s*}"), "/a/v/w"),
])
def test_duplicate_route_raises(router_cls, first, second, probe):
    r = router_cls()
    r.add(*first, 1)
    with pytest.raises(ValueError, match="registered twice"):
        r.add(*second, 2)
    method = first[0][0]
    assert r.match(method, probe)[0] == 1  # the first registration stands


def test_duplicate_verb_stops_registration_midway(router_cls):
    r = router_cls()
    r.add(("PUT",), "/a", 1)
    with pytest.raises(ValueError, match="registered twice"):
        r.add(("GET", "PUT", "POST"), "/a", 2)
    assert [r.match(m, "/a") for m in ("GET", "PUT", "POST")] == [(2, {}), (1, {}), None]


def test_other_verbs_on_the_same_pattern_are_not_duplicates(router_cls):
    r = router_cls()
    r.add(("GET",), "/a", 1)
    r.add(("POST",), "/a", 2)
    r.add(("*",), "/a", 3)
    assert [r.match(m, "/a")[0] for m in ("GET", "POST", "PUT")] == [1, 2, 3]


@pytest.mark.parametrize("pattern", ["/a/{r*}/b", "/{r*}/{x}", "/{r*}/{s*}"])
def test_catch_all_not_last_raises(router_cls, pattern):
    r = router_cls()
    with pytest.raises(ValueError, match="catch-all must be the last segment"):
        r.add(("GET",), pattern, 1)
    assert r.match("GET", "/a/x/b") is None


# -- sizes the compiled twin special-cases ---------------------------------------------


@pytest.mark.parametrize("count", [3, 43])  # the compiled twin scans few siblings, hashes many
def test_many_literal_siblings(router_cls, count):
    r = router_cls()
    names = ([f"seg{i}" for i in range(40)] + ["é", "€", "😀"])[-count:]
    for i, name in enumerate(names):
        r.add(("GET",), f"/v1/{name}", i)
    r.add(("GET",), "/v1/{other}", "param")
    for i, name in enumerate(names):
        assert r.match("GET", f"/v1/{name}") == (i, {})
        assert r.match("GET", f"/v1/{name}/€") is None
    assert r.match("GET", "/v1/seg99") == ("param", {"other": "seg99"})


def test_few_literal_siblings_with_wide_characters(router_cls):
    r = router_cls()
    r.add(("GET",), "/é/x", "latin1")
    r.add(("GET",), "/€/x", "ucs2")
    r.add(("GET",), "/😀/x", "ucs4")
    r.add(("GET",), "/é/x/{p}", "latin1+")
    assert r.match("GET", "/é/x") == ("latin1", {})
    # the path is wider than its literal segments when another segment is wider
    assert r.match("GET", "/é/x/😀") == ("latin1+", {"p": "😀"})
    assert r.match("GET", "/€/x/😀") is None
    assert r.match("GET", "/😀/x") == ("ucs4", {})
    assert r.match("GET", "/€/x") == ("ucs2", {})
    assert r.match("GET", "/e/x") is None


def test_deep_patterns(router_cls):
    r = router_cls()
    depth = 70
    r.add(("GET",), "/" + "/".join(f"{{p{i}}}" for i in range(depth)), "params")
    r.add(("GET",), "/" + "/".join(["x"] * depth) + "/{r*}", "literals")
    got = r.match("GET", "/" + "/".join(str(i) for i in range(depth)))
    assert got == ("params", {f"p{i}": str(i) for i in range(depth)})
    assert r.match("GET", "/" + "/".join(["x"] * depth) + "/a/b") == ("literals", {"r": "a/b"})


def test_escape_that_is_not_utf8_is_malformed(router_cls):
    from pydapr.errors import MalformedPath
    r = router_cls()
    r.add(("GET",), "/v1.0/state/{store}/{key}", "get")
    for bad in ("%ff", "%C3", "caf%C3%28"):
        with pytest.raises(MalformedPath):
            r.match("GET", f"/v1.0/state/s/{bad}")
