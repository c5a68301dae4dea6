"""pytest plugin (``pytest11`` entry point): fixtures for sidecars, servers and conformance.

Kept cheap to import: nothing heavy at module level.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest


@pytest.fixture
def sidecar() -> Iterator[Callable[..., Any]]:
    """Factory: ``sidecar(app_id=..., resources=yaml, config=yaml, args=[...])`` -> running Sidecar."""
    from .sidecar import Sidecar
    started: list[Sidecar] = []

    def make(**kwargs: Any) -> Sidecar:
        sc = Sidecar(**kwargs)
        started.append(sc)
        return sc.start()
    yield make
    for sc in started:
        sc.stop()


# --------------------------------------------------------------------------- conformance suites


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("pydapr_conformance", type="linelist", default=[],
                  help="component types to run pydapr's conformance suite against, one per line "
                       "(state.acme); the suite of the type's kind is collected automatically")
    parser.addini("pydapr_conformance_metadata", type="linelist", default=[],
                  help="component metadata for those types, one name=value per line")


@pytest.fixture(scope="session")
def pydapr_conformance_metadata(pytestconfig: pytest.Config) -> dict[str, str] | None:
    """Metadata for the component under a conformance suite: the ``name=value`` lines of the
    ini option of the same name, or None (the suite class's own ``metadata``). Override this
    session-scoped fixture in a conftest.py to compute it."""
    lines = pytestconfig.getini("pydapr_conformance_metadata")
    if not lines:
        return None
    return dict(line.split("=", 1) for line in lines if "=" in line)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """Add the suite of each type named by the ``pydapr_conformance`` ini option.

    For ``state.acme`` this collects ``pydapr.testing.conformance.state.SUITE`` as a
    class named ``TestConformance_state_acme`` whose ``component_type`` is ``state.acme``.
    """
    types = config.getini("pydapr_conformance")
    if not types:
        return
    import importlib
    from pathlib import Path
    for type_name in types:
        kind = type_name.split(".", 1)[0]
        try:
            module = importlib.import_module(f"pydapr.testing.conformance.{kind}")
        except ImportError:
            raise pytest.UsageError(f"pydapr_conformance: no conformance suite for the kind of "
                                    f"{type_name!r}") from None
        mod_node = pytest.Module.from_parent(session, path=Path(module.__file__ or kind))
        mod_node._obj = module  # the imported module itself: never imported a second time
        name = "TestConformance_" + type_name.replace(".", "_").replace("-", "_")
        cls = type(name, (module.SUITE,), {"component_type": type_name, "__module__": module.__name__})
        setattr(module, name, cls)
        class_node = pytest.Class.from_parent(mod_node, name=name)
        items.extend(session.genitems(class_node))
