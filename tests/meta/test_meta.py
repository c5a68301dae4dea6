"""Contract and hygiene: the guarantees that keep the plugin contract and the package honest."""
from __future__ import annotations

import inspect
import pkgutil
import re
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import grpc
import pytest

import pydapr
from pydapr import hookspecs
from pydapr.errors import CODES

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("pydapr_"))


def test_there_are_hooks():
    assert {"pydapr_component_types", "pydapr_building_blocks", "pydapr_middleware_types",
            "pydapr_startup", "pydapr_shutdown", "pydapr_resources_reloaded"} <= set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_is_documented(name):
    fn = getattr(hookspecs, name)
    doc = inspect.getdoc(fn) or ""
    assert len(doc.splitlines()) >= 3, f"{name} needs a docstring saying when it runs and what it returns"
    assert ".. versionadded::" in doc
    for param in inspect.signature(fn).parameters:
        assert f":param {param}:" in doc, f"{name} does not document :param {param}:"
    assert ":returns:" in doc or "May be ``async def``" in doc


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_has_a_test(name):
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    assert re.search(rf"def test_hook_{name}\b|def test_hook_\w*{name}", sources), (
        f"no test named test_hook_{name}... exercises {name}")


def _modules() -> list[str]:
    names = []
    for pkg in ("pydapr",):
        mod = __import__(pkg)
        for info in pkgutil.walk_packages(mod.__path__, prefix=f"{pkg}."):
            if info.name.endswith("__main__"):
                continue
            names.append(info.name)
    return sorted(names)


def test_every_module_imports_cleanly_with_warnings_as_errors():
    """One fresh interpreter per batch: import each module with -W error (no circular imports)."""
    mods = _modules()
    code = ("import importlib, sys\nbad = []\nfor m in sys.argv[1:]:\n"
            "    try:\n        importlib.import_module(m)\n"
            "    except Exception as e:\n        bad.append(f'{m}: {type(e).__name__}: {e}')\n"
            "print('\\n'.join(bad)); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-W", "error", "-c", code, *mods], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_each_module_imports_alone_in_a_fresh_interpreter():
    """Import order must not matter: a sample of leaf modules, each first in its interpreter."""
    for m in [m for m in _modules() if m.count(".") >= 2][:200]:
        out = subprocess.run([sys.executable, "-W", "error", "-c", f"import {m}"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"{m}: {out.stderr[-2000:]}"


def test_installed_entry_points_match_pyproject():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["pydapr"]
    installed = {ep.name: ep.value for ep in entry_points(group="pydapr")
                 if ep.dist is not None and ep.dist.name == "pydapr"}
    assert installed == declared, "entry points changed: re-run pip install -e ."


def test_every_entry_point_module_exists_and_registers_its_name():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["pydapr"]
    from pydapr.pluginmanager import PluginManager
    for name, value in declared.items():
        pm = PluginManager()
        assert pm.load(name), name
        reg = pm.registry()
        if name.startswith("api."):
            assert name in reg.blocks, f"{value} does not register building block {name}"
        elif name.startswith("middleware."):
            assert any(n == name for n, _ in reg.middleware), f"{value} does not register {name}"
        else:
            assert any(n == name for n, _ in reg.components), f"{value} does not register {name}"


def test_error_codes_are_unique_and_map_to_http_and_grpc():
    text = (ROOT / "kernel" / "errors.py").read_text()
    codes = re.findall(r'^\s+\("((?:ERR_[A-Z_]+)|ERROR)"', text, re.M)
    assert len(codes) == len(set(codes)) == len(CODES)
    for entry in CODES.values():
        assert 400 <= entry.http_status <= 599
        assert hasattr(grpc.StatusCode, entry.grpc_code), entry


def test_no_kernel_module_is_named_after_a_subpackage():
    taken = {"plugins", "components", "sentry", "_speedups"}
    kernel = {p.stem for p in (ROOT / "kernel").glob("*.py")} | {
        p.name for p in (ROOT / "kernel").iterdir() if p.is_dir()}
    assert not kernel & taken


def test_tests_run_against_the_installed_package_not_a_source_copy():
    assert not (ROOT / "pydapr").exists()
    assert Path(pydapr.__file__).parent.name in ("kernel", "pydapr")


def test_compiled_twins_are_present_in_ci():
    import os
    if os.environ.get("CI", "").lower() != "true" or os.environ.get("PYDAPR_NO_EXTENSIONS"):
        pytest.skip("only checked in CI with extensions on")
    from pydapr import router
    assert router.IMPLEMENTATION == "cython"


def test_no_private_key_is_committed():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    for rel in out.stdout.split():
        p = ROOT / rel
        if p.is_file() and p.stat().st_size < 1 << 20:
            assert b"PRIVATE KEY-----" not in p.read_bytes() or p.suffix == ".py", rel
