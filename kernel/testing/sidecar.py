"""Run a real ``pydaprd`` in a subprocess for tests, on free ports."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Sequence

__all__ = ["Sidecar", "free_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sidecar:
    """A ``pydaprd`` process. Use as a context manager; ``env()`` gives the SDK's variables.

    :param resources: YAML text of resources (written to a temp folder), or None for the
        embedded default, or a Path to an existing folder.
    :param config: YAML text of a Configuration, or None.
    :param args: extra pydaprd flags.
    :param env: extra environment for the sidecar.
    """

    def __init__(self, app_id: str = "testapp", resources: str | Path | None = None,
                 config: str | None = None, args: Sequence[str] = (), env: dict[str, str] | None = None,
                 app_port: int | None = None, wait_ready: bool = True, home: str | None = None) -> None:
        self.app_id = app_id
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.app_port = app_port
        self._tmp = tempfile.TemporaryDirectory(prefix="pydapr-test-")
        self.dir = Path(self._tmp.name)
        self.extra_env = dict(env or {})
        self.extra_env.setdefault("PYDAPR_HOME", home or str(self.dir / "home"))
        cmd = [sys.executable, "-m", "pydapr.daprd.app", "--app-id", app_id,
               "--dapr-http-port", str(self.http_port), "--dapr-grpc-port", str(self.grpc_port),
               # the proxy port is the OS's pick: nothing here needs to know it in advance
               "--dapr-internal-grpc-port", "0", "--log-level", "debug"]
        if app_port:
            cmd += ["--app-port", str(app_port)]
        if isinstance(resources, Path):
            cmd += ["--resources-path", str(resources)]
        elif resources is not None:
            rdir = self.dir / "resources"
            rdir.mkdir()
            (rdir / "resources.yaml").write_text(resources)
            cmd += ["--resources-path", str(rdir)]
        if config is not None:
            (self.dir / "config.yaml").write_text(config)
            cmd += ["--config", str(self.dir / "config.yaml")]
        self.cmd = cmd + list(args)
        self.wait_ready = wait_ready
        self.proc: subprocess.Popen | None = None
        self.log_path = self.dir / "sidecar.log"
        self._final_logs: str | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def env(self) -> dict[str, str]:
        """Environment for an SDK client talking to this sidecar."""
        return {"DAPR_HTTP_PORT": str(self.http_port), "DAPR_GRPC_PORT": str(self.grpc_port),
                "DAPR_RUNTIME_HOST": "127.0.0.1"}

    def start(self) -> Sidecar:
        for attempt in range(3):
            env = {**os.environ, **self.extra_env}
            self._log = open(self.log_path, "wb")
            self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                         env=env, cwd=self.dir)
            if not self.wait_ready:
                return self
            try:
                self.wait("/v1.0/healthz/outbound")
                return self
            except RuntimeError as exc:
                # a port that was free when picked got taken (by another process's outgoing
                # connection, say) before the sidecar bound it: pick new ones and start again
                if attempt < 2 and "address already in use" in str(exc):
                    self._log.close()
                    self._new_ports()
                    continue
                self.stop()
                raise
            except BaseException:
                self.stop()  # close the log and reap the process before reporting
                raise
        raise AssertionError("not reached")

    def _new_ports(self) -> None:
        self.http_port, self.grpc_port = free_port(), free_port()
        for flag, port in (("--dapr-http-port", self.http_port), ("--dapr-grpc-port", self.grpc_port)):
            self.cmd[self.cmd.index(flag) + 1] = str(port)

    def wait(self, path: str = "/v1.0/healthz", timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"pydaprd exited with {self.proc.returncode}:\n{self._read_log()}")
            try:
                with urllib.request.urlopen(self.http_url + path, timeout=1) as r:
                    if r.status < 300:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"pydaprd not ready after {timeout}s:\n{self._read_log()}")

    def logs(self) -> str:
        if self._final_logs is not None:
            return self._final_logs
        return self._read_log()

    def _read_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, dict, bytes]:
        """A plain HTTP request to the sidecar; returns (status, headers, body)."""
        req = urllib.request.Request(self.http_url + path, data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the process (SIGTERM, then SIGKILL) and remove its temporary folder; logs() still works."""
        if self.proc is None:
            self._tmp.cleanup()
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
        if self._final_logs is None:
            self._final_logs = self.logs()
        self._tmp.cleanup()
        return self.proc.returncode

    def __enter__(self) -> Sidecar:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
