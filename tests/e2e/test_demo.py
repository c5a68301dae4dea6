"""The README's first command: `pydapr run` with the sample app on the embedded default."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pydapr.testing import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_pydapr_run_sample_app_on_embedded_default(tmp_path):
    env = {**os.environ, "PYDAPR_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "pydapr", "run", "--app-id", "orders",
                          "--app-port", str(free_port()), "--", sys.executable,
                          str(ROOT / "examples" / "order_app.py")],
                         env=env, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all 3 orders came back through pub/sub" in out.stdout
    assert "statestore (state.sqlite)" in out.stdout and "pubsub (pubsub.sqlite)" in out.stdout
    # the embedded default keeps its files under PYDAPR_HOME
    assert list(tmp_path.rglob("*.db"))
