"""Fixtures for the service-invocation tests: echo apps, a sentry, sidecars sharing a PYDAPR_HOME."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from pydapr.testing import Sidecar, free_port
from pydapr.testing.echoapp import EchoApp

SENTRY_CONFIG = """apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: daprsystem}
spec:
  mtls: {enabled: true, workloadCertTTL: 5s, allowedClockSkew: 1s}
"""


def _config(spec: str) -> str:
    return ("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: appconfig}\n"
            "spec:\n" + "".join(f"  {line}\n" for line in spec.strip().splitlines()))


@pytest.fixture(scope="session")
def config_yaml() -> Callable[[str], str]:
    """``config_yaml(block)``: a Configuration document whose spec is the YAML ``block``."""
    return _config


class Sentry:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        (folder / "sentry.yaml").write_text(SENTRY_CONFIG)
        self.log = open(folder / "sentry.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pydapr.sentry", "--issuer-credentials", str(folder / "certs"),
             "--port", str(self.port), "--config", str(folder / "sentry.yaml")],
            stdout=self.log, stderr=subprocess.STDOUT)
        ca = folder / "certs" / "ca.crt"
        deadline = time.monotonic() + 20
        while not (ca.exists() and ca.stat().st_size) and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((folder / "sentry.log").read_text())
            time.sleep(0.05)
        self.anchors = ca.read_text()

    def sidecar_args(self) -> list[str]:
        return ["--enable-mtls", "--sentry-address", f"127.0.0.1:{self.port}"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One PYDAPR_HOME per module, so its sidecars find each other (nameresolution.sqlite)."""
    return str(tmp_path_factory.mktemp("pydapr-home"))


@pytest.fixture(scope="module")
def apps() -> Iterator[Callable[[], EchoApp]]:
    started: list[EchoApp] = []

    def make() -> EchoApp:
        app = EchoApp().start()
        started.append(app)
        return app
    yield make
    for app in started:
        app.stop()


@pytest.fixture(scope="module")
def sidecars(home: str) -> Iterator[Callable[..., Sidecar]]:
    """Factory of started sidecars (all in the module's PYDAPR_HOME); waits for full readiness."""
    started: list[Sidecar] = []

    def make(app_id: str, **kwargs: Any) -> Sidecar:
        kwargs.setdefault("home", home)
        sc = Sidecar(app_id=app_id, **kwargs)
        started.append(sc)
        sc.start()
        sc.wait("/v1.0/healthz")
        return sc
    yield make
    for sc in started:
        sc.stop()
        sc._tmp.cleanup()


@pytest.fixture(scope="module")
def sentry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sentry]:
    s = Sentry(tmp_path_factory.mktemp("sentry"))
    yield s
    s.stop()
