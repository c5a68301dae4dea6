"""pydaprd as a real process: readiness, metadata, signals, start-up errors."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import grpc
import pytest

from pydapr.testing import Sidecar


def test_health_and_metadata_over_http():
    with Sidecar(app_id="demo", resources="") as sc:
        sc.wait("/v1.0/healthz")  # Sidecar waits for outbound readiness, as the SDK does
        status, _, body = sc.request("GET", "/v1.0/healthz")
        assert status == 204 and body == b""
        status, headers, body = sc.request("GET", "/v1.0/metadata")
        assert status == 200 and headers["content-type"] == "application/json"
        import json
        doc = json.loads(body)
        assert doc["id"] == "demo" and "daprRuntimeVersion" in doc["extended"]
        assert sc.request("PUT", "/v1.0/metadata/color", b"blue")[0] == 204
        assert json.loads(sc.request("GET", "/v1.0/metadata")[2])["extended"]["color"] == "blue"
        assert sc.request("GET", "/v1.0/healthz?appid=other")[0] == 500


def test_unknown_route_is_daprs_invoke_error():
    with Sidecar(resources="") as sc:
        status, _, body = sc.request("DELETE", "/v1.0/nothing/here")
        assert status == 404 and b"ERR_DIRECT_INVOKE" in body
        status, _, body = sc.request("GET", "/v1.0/metadata/%zz/x")
        assert status in (400, 404)


def test_unimplemented_grpc_method_names_itself():
    from dapr.proto.runtime.v1 import dapr_pb2_grpc, ai_pb2
    with Sidecar(resources="") as sc:
        with grpc.insecure_channel(f"127.0.0.1:{sc.grpc_port}") as ch:
            stub = dapr_pb2_grpc.DaprStub(ch)
            with pytest.raises(grpc.RpcError) as ei:
                stub.ConverseAlpha1(ai_pb2.ConversationRequest(name="x"), timeout=5)
            assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert "ConverseAlpha1" in ei.value.details()


def test_sigterm_stops_within_five_seconds():
    sc = Sidecar(resources="").start()
    t0 = time.monotonic()
    sc.proc.send_signal(signal.SIGTERM)
    code = sc.proc.wait(10)
    assert time.monotonic() - t0 < 5 and code == 0
    sc.stop()


def test_shutdown_endpoint_stops_the_sidecar():
    sc = Sidecar(resources="").start()
    assert sc.request("POST", "/v1.0/shutdown")[0] == 204
    assert sc.proc.wait(10) == 0
    sc.stop()


def _run_daprd(*args: str, tmp_path=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pydapr.daprd.app", *args], capture_output=True,
                          text=True, timeout=30)


def test_malformed_resource_stops_startup_naming_file_and_field(tmp_path):
    (tmp_path / "broken.yaml").write_text("kind: Component\nmetadata: {name: s}\nspec: {version: v1}\n")
    out = _run_daprd("--app-id", "a", "--resources-path", str(tmp_path), "--dapr-http-port", "0")
    assert out.returncode != 0
    assert "broken.yaml#1: field spec.type: is required" in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_component_type_stops_startup(tmp_path):
    (tmp_path / "c.yaml").write_text("kind: Component\nmetadata: {name: s}\nspec: {type: state.nope}\n")
    out = _run_daprd("--app-id", "a", "--resources-path", str(tmp_path), "--dapr-http-port", "0")
    assert out.returncode != 0 and "unknown component type state.nope/v1" in out.stderr


def test_unknown_flag_is_refused():
    out = _run_daprd("--app-id", "a", "--frobnicate")
    assert out.returncode == 2 and "--frobnicate" in out.stderr


def test_embedded_default_loads_without_resources_path(tmp_path):
    """With no --resources-path and no PYDAPR_HOME/components, the packaged default is used."""
    from pydapr.resources import DEFAULT_RESOURCES, load_resources
    expected = sorted(c.name for c in load_resources([DEFAULT_RESOURCES], "demo").components)
    with Sidecar(app_id="demo", home=str(tmp_path)) as sc:
        import json
        doc = json.loads(sc.request("GET", "/v1.0/metadata")[2])
        assert sorted(c["name"] for c in doc.get("components", [])) == expected


def test_home_components_folder_wins_over_embedded_default(tmp_path):
    comps = tmp_path / "components"
    comps.mkdir()
    (comps / "x.yaml").write_text("kind: Subscription\nmetadata: {name: only-a-sub}\n"
                                  "spec: {pubsubname: p, topic: t, route: /t}\n")
    with Sidecar(app_id="demo", home=str(tmp_path)) as sc:
        import json
        doc = json.loads(sc.request("GET", "/v1.0/metadata")[2])
        assert doc.get("components", []) == []


def test_the_test_harness_picks_new_ports_when_one_was_taken_meanwhile():
    import socket
    sc = Sidecar(app_id="portrace", resources="")
    taken = socket.socket()
    taken.bind(("127.0.0.1", sc.http_port))
    taken.listen(1)
    try:
        with sc:
            assert sc.http_port != taken.getsockname()[1]
            assert sc.request("GET", "/v1.0/healthz/outbound")[0] == 204
    finally:
        taken.close()
