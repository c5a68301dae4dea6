"""Method canonicalisation (security spec 1.4) and its invariants, as tables and properties."""
from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given, settings, strategies as st

from pydapr.errors import APIError
from pydapr.plugins.invoke.method import (canonical_http_method, canonicalise, decode_method,
                                          dispatch_path, is_canonical)


@pytest.mark.parametrize("raw,canonical", [
    ("public", "public"),
    ("admin%2F..%2Fpublic", "public"),
    ("admin%2F..%2F..%2Fpublic", "public"),
    ("admin%2Fsecret%2F..%2F..%2Fpublic", "public"),
    ("..%2Fpublic", "public"),
    ("public%25/../unauthorized", "unauthorized"),
    ("public%2F..%2Funauthorized", "unauthorized"),
    ("admin%25stream", "admin%stream"),
    ("admin%22stream", 'admin"stream'),
    ("admin%2Astream", "admin*stream"),
    ("admin%5Cstream", "admin\\stream"),
    ("admin%5C..%5Cpublic", "admin\\..\\public"),       # backslash is not a separator
    ("admin%2F..%5C..%2Fpublic", "admin/..\\../public"),
    ("neworde%2572", "neworde%72"),                     # DAP-02-013: decoded once only
    ("neworder/../neworder", "neworder"),
    ("../neworder", "neworder"),
    ("a//b/./c/", "a/b/c"),
    ("a+b", "a+b"),                                     # decision 10: + stays +
    ("%C3%BC", "ü"),
])
def test_http_canonical_forms(raw, canonical):
    assert canonical_http_method(raw) == canonical


@pytest.mark.parametrize("raw", [
    "public%23/../unauthorized", "public%3F/../unauthorized", "public%23/../../unauthorized",
    "public/sub%23/../../unauthorized", "public%0D/../unauthorized",
    "admin%3Fignored", "admin%00public", "admin%23%3F%25bypass", "test%00stream", "test%0Dstream",
    "a%7Fb", "a%zz", "a%", "%FF", "..", "", "%2F",
])
def test_rejected_before_acl(raw):
    with pytest.raises(APIError) as info:
        canonical_http_method(raw)
    assert info.value.http_status == 400 and info.value.code == "ERR_MALFORMED_REQUEST"


def test_grpc_methods_are_opaque():
    # never percent-decoded: the escapes are part of the name
    assert canonicalise("admin%2F..%2Fpublic") == "admin%2F..%2Fpublic"
    assert dispatch_path("admin%2F..%2Fpublic") == "/admin%252F..%252Fpublic"


@pytest.mark.parametrize("method,path", [
    ("public", "/public"),
    ("neworde%72", "/neworde%2572"),                    # the app decodes it back to neworde%72
    ("a b/c;d+e", "/a%20b/c%3Bd%2Be"),
    ("admin\\..\\public", "/admin%5C..%5Cpublic"),
    ("ü", "/%C3%BC"),
])
def test_dispatch_path_escapes_each_segment(method, path):
    assert dispatch_path(method) == path


# -- properties ---------------------------------------------------------------------------

_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_pathish = st.lists(st.sampled_from(["a", "B", "..", ".", "", "%", "%25", "%2F", "%2f", "x%41",
                                     "\\", "*", " ", "+", ";", "ü", "%C3%BC", "#", "?", "%23",
                                     "%3F", "%00"]), max_size=8).map("/".join)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_text, _pathish))
def test_canonicalise_is_idempotent(method):
    try:
        once = canonicalise(method)
    except APIError:
        return
    assert canonicalise(once) == once
    assert is_canonical(once) or once == ""
    assert "//" not in once and not once.startswith("/")
    assert ".." not in once.split("/") and "." not in once.split("/")


@settings(max_examples=400, deadline=None)
@given(st.one_of(_text, _pathish))
def test_acl_input_equals_what_the_app_receives(raw):
    """The CVE-2026-41491 / DAP-02-013 invariant: the app's single decode gives the ACL input."""
    try:
        method = canonical_http_method(raw)
    except APIError:
        return
    path = dispatch_path(method)
    assert "?" not in path and "#" not in path and "%2F" not in path.upper().replace("%252F", "")
    assert unquote(path, errors="strict") == "/" + method
    assert [unquote(s) for s in path[1:].split("/")] == method.split("/")


def test_decode_once_only():
    assert decode_method("%2541") == "%41"
