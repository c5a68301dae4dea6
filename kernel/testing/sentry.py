"""Run a real ``pydapr sentry`` in a subprocess for tests, on a free port.

    with SentryProcess() as sentry:                  # creates root + issuer in a temp folder
        sidecar(app_id="a", args=sentry.sidecar_args(), env=sentry.sidecar_env())

The credentials folder is temporary unless ``credentials`` names one.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from .sidecar import Sidecar, free_port

__all__ = ["SentryProcess"]


class SentryProcess:
    """A ``python -m pydapr.sentry`` process.

    :param credentials: the ``--issuer-credentials`` folder (default: a new temporary one).
    :param config: YAML text of a Configuration (``spec.mtls``), or None.
    :param args: extra sentry flags.
    :param port: the port (default: a free one); reuse one to restart a sentry in place.
    """

    def __init__(self, credentials: str | Path | None = None, config: str | None = None,
                 args: Sequence[str] = (), env: dict[str, str] | None = None,
                 port: int | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="pydapr-sentry-")
        self.dir = Path(self._tmp.name)
        self.credentials = Path(credentials) if credentials else self.dir / "certs"
        self.port = port or free_port()
        self.cmd = [sys.executable, "-m", "pydapr.sentry", "--issuer-credentials",
                    str(self.credentials), "--port", str(self.port), "--log-level", "debug"]
        if config is not None:
            (self.dir / "config.yaml").write_text(config)
            self.cmd += ["--config", str(self.dir / "config.yaml")]
        self.cmd += list(args)
        self.env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.log_path = self.dir / "sentry.log"
        self._final_logs: str | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def anchors_pem(self) -> str:
        return (self.credentials / "ca.crt").read_text()

    def sidecar_args(self) -> list[str]:
        return ["--enable-mtls", "--sentry-address", self.address]

    def sidecar_env(self) -> dict[str, str]:
        return {"DAPR_TRUST_ANCHORS": self.anchors_pem}

    def start(self, wait: bool = True) -> SentryProcess:
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **self.env}, cwd=self.dir)
        if wait:
            self.wait()
        return self

    def wait(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"sentry exited with {self.proc.returncode}:\n{self.logs()}")
            if "sentry listening on" in self.logs():
                try:
                    socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        raise TimeoutError(f"sentry not ready after {timeout}s:\n{self.logs()}")

    # the same log file, temporary folder and SIGTERM-then-SIGKILL handling as Sidecar's
    logs = Sidecar.logs
    _read_log = Sidecar._read_log
    stop = Sidecar.stop

    def __enter__(self) -> SentryProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
