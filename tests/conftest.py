"""Shared fixtures: the py/cy twin switch (STYLE c.6, c.7)."""
from __future__ import annotations

import importlib
import os
from typing import Any

import pytest

_CI = os.environ.get("CI", "").lower() == "true"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--no-speedups", action="store_true", default=False,
                     help="deselect the tests of the compiled (Cython) twins (marker 'speedups')")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--no-speedups"):
        return
    dropped = [item for item in items if item.get_closest_marker("speedups")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not item.get_closest_marker("speedups")]


def _twin(impl: str, pure: str, compiled: str, name: str) -> Any:
    """``name`` from the reference module (``py``) or the compiled one (``cy``).

    A missing compiled module fails the test under ``CI=true`` and skips it elsewhere.
    """
    try:
        return getattr(importlib.import_module(pure if impl == "py" else compiled), name)
    except ImportError as exc:
        if impl == "py":
            raise
        reason = f"{compiled} is not built ({exc}); run `python setup.py build_ext --inplace`"
        if _CI:
            pytest.fail(f"{reason} (CI=true: the compiled twins must be tested)")
        pytest.skip(reason)


@pytest.fixture(scope="session", params=["py", pytest.param("cy", marks=pytest.mark.speedups)])
def impl(request: pytest.FixtureRequest) -> str:
    """Which twin a test runs against: ``"py"`` (reference) or ``"cy"`` (compiled)."""
    return request.param


@pytest.fixture(scope="session")
def router_cls(impl: str) -> type:
    """``Router`` of the twin under test."""
    return _twin(impl, "pydapr._router_py", "pydapr._speedups._router", "Router")


@pytest.fixture(scope="session")
def frame_codec(impl: str) -> Any:
    """The proxy frame codec module of the twin under test (``encode_frame``, ``FrameDecoder``...)."""
    return importlib.import_module(_twin(impl, "pydapr._frame_py", "pydapr._speedups._frame",
                                         "__name__"))


@pytest.fixture(scope="session")
def http_impl(impl: str) -> Any:
    """The HTTP connection protocol module of the twin under test (``HTTPServerProtocol``, ``render``)."""
    return importlib.import_module(_twin(impl, "pydapr._http_py", "pydapr._speedups._http",
                                         "__name__"))
