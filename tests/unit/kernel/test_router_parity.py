"""The compiled router twin against the reference: same interface, same answers."""
from __future__ import annotations

import inspect
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from pydapr._router_py import Router as RouterPy

CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="module")
def router_cy():
    try:
        from pydapr._speedups._router import Router
    except ImportError as exc:
        reason = f"pydapr._speedups._router is not built ({exc})"
        if CI:
            pytest.fail(f"{reason} (CI=true: the compiled twins must be tested)")
        pytest.skip(reason)
    return Router


def _public(cls):
    return sorted(n for n in dir(cls) if not n.startswith("_"))


@pytest.mark.speedups
def test_same_public_interface(router_cy):
    assert _public(router_cy) == _public(RouterPy) == ["add", "match"]
    for name in _public(RouterPy):
        assert inspect.signature(getattr(router_cy, name)) == inspect.signature(getattr(RouterPy, name)), name
        assert getattr(router_cy, name).__doc__.split("\n\n", 1)[-1].strip() == \
            inspect.getdoc(getattr(RouterPy, name)), name
    for cls in (RouterPy, router_cy):
        with pytest.raises(TypeError):
            cls("unexpected")


@pytest.mark.speedups
@pytest.mark.skipif(not CI, reason="only enforced under CI=true")
def test_compiled_twin_is_built_under_ci():
    import pydapr._speedups._router as compiled
    assert compiled.Router is not RouterPy


def _implementation(no_extensions: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYDAPR_NO_EXTENSIONS"}
    if no_extensions:
        env["PYDAPR_NO_EXTENSIONS"] = "1"
    code = "import pydapr.router as r; print(r.IMPLEMENTATION, r.Router.__module__)"
    return subprocess.run([sys.executable, "-c", code], env=env, check=True,
                          capture_output=True, text=True).stdout.split()


def test_selector_honours_no_extensions():
    assert _implementation(no_extensions=True) == ["python", "pydapr._router_py"]


@pytest.mark.speedups
def test_selector_prefers_the_compiled_twin(router_cy):
    assert _implementation(no_extensions=False) == ["cython", "pydapr._speedups._router"]


# -- differential ----------------------------------------------------------------------

_LITERALS = ["a", "b", "bulk", "v1.0", "A", "é", "€", "😀", "%41", "{", "x}", "*}", "{x"]
_PATTERN_SEGMENTS = st.sampled_from(_LITERALS + ["", "{p}", "{q}", "{}", "{p}", "{r*}", "{*}"])
_PATH_SEGMENTS = st.sampled_from(
    _LITERALS + ["", "", "c", "%zz", "%ff", "%2F", "%C3%A9", "a%41", "%", "%4", "é%41", "%e2%82%ac"]
)
_METHODS = st.sampled_from(["GET", "POST", "*"])


def _join(segments: list[str], lead: bool, trail: bool = False) -> str:
    return ("/" if lead else "") + "/".join(segments) + ("/" if trail else "")


def _pattern(segments: list[str], tail: str, lead: bool, trail: bool) -> str:
    return _join(segments + [tail] if tail else segments, lead, trail)


_PATTERNS = st.builds(_pattern, st.lists(_PATTERN_SEGMENTS, max_size=4),
                      st.sampled_from(["", "", "{r*}", "{*}"]), st.booleans(), st.booleans())
_PATHS = st.builds(_join, st.lists(_PATH_SEGMENTS, max_size=6), st.booleans(), st.booleans())
_ROUTES = st.lists(st.tuples(st.lists(_METHODS, max_size=3), _PATTERNS), max_size=14)
# many sibling literals push the compiled twin onto its dict lookup
_WIDE = st.lists(st.sampled_from([f"s{i}" for i in range(40)] + ["é", "😀", "a"]), unique=True, max_size=40)


def _outcome(fn, *args):
    try:
        return "ok", fn(*args)
    except Exception as exc:  # noqa: BLE001 - the class is what we compare
        return "raised", type(exc)


def _instantiate(data, pattern: str) -> str:
    """A path shaped like ``pattern``: its parameters filled with arbitrary segments."""
    out = []
    for seg in pattern.split("/"):
        if seg.startswith("{") and seg.endswith("}"):
            many = seg.endswith("*}")
            out += data.draw(st.lists(_PATH_SEGMENTS, max_size=3 if many else 1, min_size=0 if many else 1))
        else:
            out.append(seg)
    if data.draw(st.booleans()):  # a near miss
        out.insert(data.draw(st.integers(0, len(out))), data.draw(_PATH_SEGMENTS))
    return _join(out, data.draw(st.booleans()), data.draw(st.booleans()))


@pytest.mark.speedups
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(routes=_ROUTES, wide=_WIDE, data=st.data())
def test_twins_agree(router_cy, routes, wide, data):
    twins = (RouterPy(), router_cy())
    for i, (methods, pattern) in enumerate(routes):
        py, cy = (_outcome(r.add, methods, pattern, i) for r in twins)
        assert py == cy, (methods, pattern)
    for j, lit in enumerate(wide):
        py, cy = (_outcome(r.add, ["GET"], f"/w/{lit}/{{p}}", f"wide{j}") for r in twins)
        assert py == cy, lit
    patterns = st.sampled_from([p for _, p in routes] + [f"/w/{lit}/{{p}}" for lit in wide] + ["/w/{p}/{q}"])
    for _ in range(data.draw(st.integers(1, 12))):
        path = data.draw(_PATHS) if data.draw(st.booleans()) else _instantiate(data, data.draw(patterns))
        method = data.draw(st.sampled_from(["GET", "POST", "PUT"]))
        py, cy = (_outcome(r.match, method, path) for r in twins)
        assert py == cy, (method, path)
        event("miss" if py[1] is None else "hit" if py[0] == "ok" else py[1].__name__)
