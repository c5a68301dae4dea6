"""A third-party store package runs the state conformance suite with one line of pytest config.

The fixture package tests/fixtures/acme_state declares ``state.acme`` in the ``pydapr``
entry-point group and has a pytest.ini whose only line is ``pydapr_conformance = state.acme``.
It is pip-installed into a temporary folder and pytest runs in its copy, in a subprocess.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

FIXTURE = Path(__file__).parents[1] / "fixtures" / "acme_state"


def test_third_party_package_runs_the_suite(tmp_path: Path) -> None:
    src = tmp_path / "acme_state"
    shutil.copytree(FIXTURE, src)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(src)], check=True, timeout=120)
    shutil.rmtree(src / "acme_state")  # the tests must use the installed package
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("PYTEST_ADDOPTS", None)
    run = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-rs"],
                         cwd=src, env=env, capture_output=True, text=True, timeout=120)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    passed = int(re.search(r"(\d+) passed", out).group(1))
    skipped = int(re.search(r"(\d+) skipped", out).group(1))
    assert passed >= 10, out  # basic CRUD and ETag tests ran against state.acme
    assert skipped >= 4 and "does not declare TTL" in out, out  # gated by its features
    assert "TestConformance_state_acme::test_first_write PASSED" in out, out
