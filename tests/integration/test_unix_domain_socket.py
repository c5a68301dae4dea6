"""--unix-domain-socket: the HTTP and gRPC APIs on Unix sockets, named as daprd names them."""
from __future__ import annotations

import os
import socket
import stat
import tempfile
import time

import pytest

from pydapr.testing import Sidecar


def uds_request(path: str, method: str, target: str, body: bytes = b"",
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One HTTP/1.1 request over a Unix socket (connection closed after it)."""
    head = f"{method} {target} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n"
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    head += f"content-length: {len(body)}\r\n\r\n"
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(head.encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


def wait_uds(path: str, sc: Sidecar, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sc.proc is not None and sc.proc.poll() is not None:
            raise RuntimeError(f"pydaprd exited:\n{sc.logs()}")
        try:
            if uds_request(path, "GET", "/v1.0/healthz")[0] == 204:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(sc.logs())


@pytest.fixture
def uds_sidecar():
    # a short folder: a Unix socket path is limited to about 107 bytes
    folder = tempfile.mkdtemp(prefix="pd-", dir="/tmp")
    sc = Sidecar(app_id="udsapp", args=["--unix-domain-socket", folder], wait_ready=False).start()
    http = os.path.join(folder, "dapr-udsapp-http.socket")
    try:
        wait_uds(http, sc)
        yield sc, folder
    finally:
        sc.stop()
        os.rmdir(folder)  # the sidecar removed its sockets on the way out


def test_http_api_answers_on_the_socket_and_not_on_tcp(uds_sidecar):
    sc, folder = uds_sidecar
    http = os.path.join(folder, "dapr-udsapp-http.socket")
    assert stat.S_IMODE(os.stat(http).st_mode) == 0o600
    body = b'[{"key": "k", "value": {"n": 1}}]'
    assert uds_request(http, "POST", "/v1.0/state/statestore", body,
                       {"content-type": "application/json"})[0] == 204
    assert uds_request(http, "GET", "/v1.0/state/statestore/k") == (200, b'{"n":1}')
    with pytest.raises(OSError):  # the TCP port is not opened when the socket is asked for
        socket.create_connection(("127.0.0.1", sc.http_port), timeout=1).close()


def test_the_grpc_api_answers_on_the_socket(uds_sidecar):
    """Through the SDK's own stubs: DaprClient itself first polls healthz over TCP, which a
    sidecar on Unix sockets does not open (daprd behaves the same)."""
    import grpc
    from dapr.proto.common.v1 import common_pb2
    from dapr.proto.runtime.v1 import dapr_pb2_grpc, metadata_pb2, state_pb2
    _, folder = uds_sidecar
    grpc_path = os.path.join(folder, "dapr-udsapp-grpc.socket")
    deadline = time.monotonic() + 20
    while not os.path.exists(grpc_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stat.S_IMODE(os.stat(grpc_path).st_mode) == 0o600
    with grpc.insecure_channel(f"unix:{grpc_path}") as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        item = common_pb2.StateItem(key="grpc-key", value=b"over a unix socket")
        stub.SaveState(state_pb2.SaveStateRequest(store_name="statestore", states=[item]), timeout=10)
        got = stub.GetState(state_pb2.GetStateRequest(store_name="statestore", key="grpc-key"),
                            timeout=10)
        assert got.data == b"over a unix socket"
        meta = stub.GetMetadata(metadata_pb2.GetMetadataRequest(), timeout=10)
        assert meta.id == "udsapp"


def test_a_folder_that_does_not_exist_is_refused_clearly():
    sc = Sidecar(app_id="udsbad", args=["--unix-domain-socket", "/nonexistent/pydapr"],
                 wait_ready=False).start()
    try:
        assert sc.proc.wait(20) == 2
        assert "--unix-domain-socket '/nonexistent/pydapr' is not a directory" in sc.logs()
    finally:
        sc.stop()


def test_a_file_in_the_way_is_not_replaced(tmp_path):
    folder = tempfile.mkdtemp(prefix="pd-", dir="/tmp")
    squatter = os.path.join(folder, "dapr-udsfile-http.socket")
    with open(squatter, "w") as f:
        f.write("not a socket")
    sc = Sidecar(app_id="udsfile", args=["--unix-domain-socket", folder], wait_ready=False).start()
    try:
        assert sc.proc.wait(20) != 0
        assert "exists and is not a socket" in sc.logs()
        with open(squatter) as f:
            assert f.read() == "not a socket"
    finally:
        sc.stop()
        os.unlink(squatter)
        os.rmdir(folder)


def test_a_live_socket_of_another_sidecar_is_not_taken_over(uds_sidecar):
    _, folder = uds_sidecar
    http = os.path.join(folder, "dapr-udsapp-http.socket")
    second = Sidecar(app_id="udsapp", args=["--unix-domain-socket", folder], wait_ready=False).start()
    try:
        assert second.proc.wait(20) != 0
        assert "is in use by another process" in second.logs()
    finally:
        second.stop()
    assert uds_request(http, "GET", "/v1.0/healthz")[0] == 204  # the first one still serves


def test_a_leftover_socket_is_replaced():
    folder = tempfile.mkdtemp(prefix="pd-", dir="/tmp")
    leftover = os.path.join(folder, "dapr-udsleft-http.socket")
    s = socket.socket(socket.AF_UNIX)
    s.bind(leftover)
    s.close()  # the file stays, nobody listens: what a killed sidecar leaves
    sc = Sidecar(app_id="udsleft", args=["--unix-domain-socket", folder], wait_ready=False).start()
    try:
        wait_uds(leftover, sc)
    finally:
        sc.stop()
        os.rmdir(folder)
