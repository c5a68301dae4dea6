"""A third-party plugin package, installed with pip, is discovered and used by a sidecar."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pydapr.testing import Sidecar

FIXTURE = Path(__file__).parent.parent / "fixtures" / "acme_plugin"

RESOURCES = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: acme}
spec:
  type: secretstores.acme
  version: v1
  metadata: [{name: greeting, value: bonjour}]
"""


@pytest.fixture(scope="module")
def acme_site(tmp_path_factory) -> Path:
    """pip-install the fixture package into a folder of its own (the test venv stays clean)."""
    target = tmp_path_factory.mktemp("acme-site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(FIXTURE)], check=True, capture_output=True)
    return target


def test_hook_pydapr_component_types_and_building_blocks_from_a_third_party(acme_site):
    env = {"PYTHONPATH": os.pathsep.join([str(acme_site), os.environ.get("PYTHONPATH", "")])}
    with Sidecar(app_id="acme-user", resources=RESOURCES, env=env) as sc:
        status, _, body = sc.request("GET", "/v1.0-alpha1/acme/acme")
        assert status == 200 and json.loads(body) == {"acme": "bonjour"}
        doc = json.loads(sc.request("GET", "/v1.0/metadata")[2])
        assert {"name": "acme", "type": "secretstores.acme", "version": "v1"} in doc["components"]


def test_pydapr_plugins_lists_it_without_importing(acme_site):
    env = {**os.environ, "PYTHONPATH": str(acme_site)}
    code = ("import sys, json; from pydapr.cli import main; main(['plugins', '--json']);"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('acme'))), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    rows = {r["type"]: r for r in json.loads(out.stdout)}
    assert rows["secretstores.acme"]["distribution"] == "acme-pydapr-plugin"
    assert rows["secretstores.acme"]["version"] == "1.2.3"
    assert rows["api.metadata"]["distribution"] == "pydapr"
    assert json.loads(out.stderr.strip().splitlines()[-1]) == []  # nothing of acme was imported


def test_a_name_declared_by_two_distributions_stops_startup(acme_site, tmp_path):
    """pluggy would skip the second silently; pydapr names both distributions."""
    clash = tmp_path / "clash"
    (clash / "clash_pkg").mkdir(parents=True)
    (clash / "clash_pkg" / "__init__.py").write_text("")
    (clash / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "clash-plugin"\nversion = "0.0.1"\n'
        '[project.entry-points.pydapr]\n"secretstores.acme" = "clash_pkg"\n'
        '[tool.setuptools]\npackages = ["clash_pkg"]\n')
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(clash)], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(acme_site), str(target)])}
    out = subprocess.run([sys.executable, "-m", "pydapr.daprd.app", "--app-id", "x",
                          "--dapr-http-port", "0"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "acme-pydapr-plugin" in out.stderr and "clash-plugin" in out.stderr
