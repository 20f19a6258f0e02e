"""Services through a real ``modelyard server``: deploy and manage over HTTP with tokens, the predict proxy,
metrics and logs routes, and services coming back when the server restarts."""

import json
import os
import signal
import time

import httpx
import numpy as np
import pytest

from modelyard.client import Client


from support import start_server

pytestmark = pytest.mark.slow  # a real server with a supervisor and replica processes


def linear_onnx(path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        [numpy_helper.from_array(np.array([[1, 2], [3, 4]], np.float32), "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def served(tmp_path):
    from modelyard.deploy import supervisor

    home = tmp_path / "home"
    server = start_server(home)
    client = Client(url=server.url, token=server.token)
    viewer = client.tokens.create("reader", "viewer")["token"]
    client.models.register(linear_onnx(tmp_path / "mm.onnx"), "mm")
    yield server, client, viewer
    client.close()
    server.stop()
    assert supervisor.stop(home)


def test_deploy_manage_and_proxy_over_http(served):
    server, client, viewer = served
    service = client.services.deploy("mm@1", "mm", timeout=60)
    assert service["status"] == "ready" and service["url"].startswith("http://127.0.0.1:")
    body = {"inputs": {"x": [[1, 1]]}}
    proxy = f"{server.url}/api/v1/services/mm/predict"
    assert httpx.post(proxy, json=body).status_code == 401
    answer = httpx.post(proxy, json=body, headers={"Authorization": f"Bearer {viewer}"})
    assert answer.status_code == 200 and answer.json() == {"outputs": {"y": [[4.0, 6.0]]}, "model": "mm@1"}
    bad = httpx.post(proxy, json={"inputs": {"x": [[1, 1, 1]]}}, headers={"Authorization": f"Bearer {viewer}"})
    assert bad.status_code == 400 and "input 'x'" in bad.json()["error"]["message"]
    with Client(url=server.url, token=viewer) as reader:
        with pytest.raises(Exception, match="editor"):
            reader.services.stop("mm")
        assert reader.services.get("mm")["healthy_replicas"] == 1
        assert "modelyard_requests_total" in reader.services.metrics("mm")
        assert "revision 1 is live" in reader.services.logs("mm")
        assert '"status":200' in reader.services.logs("mm", source="access")
    listing = httpx.get(f"{server.url}/api/v1/services", headers={"Authorization": f"Bearer {viewer}"}).json()
    assert listing["schema"] == "modelyard.service-list/1" and listing["items"][0]["name"] == "mm"
    client.services.stop("mm")
    stopped = client.services.get("mm")
    assert stopped["status"] == "stopped"
    unavailable = httpx.post(proxy, json=body, headers={"Authorization": f"Bearer {viewer}"})
    assert unavailable.status_code == 503


def test_public_service_and_restart_of_the_platform(served, tmp_path):
    from modelyard.deploy.state import read_json, services_root

    server, client, _ = served
    service = client.services.deploy("mm@1", "open", public=True, timeout=60)
    assert httpx.post(f"{server.url}/api/v1/services/open/predict", json={"inputs": [[0, 1]]}).status_code == 200
    port = service["port"]
    server.stop()  # the platform goes down: stop the server and kill the supervisor (its replicas die with it)
    os.kill(read_json(services_root(server.home) / "supervisor.json")["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.post(f"http://127.0.0.1:{port}/v1/predict", json={"inputs": [[0, 1]]}, timeout=1)
        except httpx.TransportError:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    restarted = start_server(server.home, token=server.token)
    try:
        deadline = time.monotonic() + 60
        while True:  # nobody asks for the service: the server's start alone brings it back
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/v1/predict", json={"inputs": [[0, 1]]}, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the service did not come back"
                time.sleep(0.2)
        assert answer.status_code == 200 and json.loads(answer.content)["model"] == "mm@1"
    finally:
        restarted.stop()


@pytest.mark.slow
def test_the_predict_proxy_reuses_one_pooled_client(tmp_path, monkeypatch):
    """A client per proxied call cost an SSL context and a fresh connection each time (19x slower than direct)."""
    from modelyard.deploy import supervisor

    made = []

    class CountingClient(httpx.Client):
        def __init__(self, *args, **kwargs):
            made.append(1)
            super().__init__(*args, **kwargs)

    home = tmp_path / "home"
    with Client(home=home) as client:
        client.models.register(linear_onnx(tmp_path / "mm.onnx"), "mm")
        try:
            client.services.deploy("mm@1", "mm", timeout=60)
            monkeypatch.setattr(httpx, "Client", CountingClient)
            answers = [client.services.predict("mm", {"x": np.array([[1, 1]], np.float32)}) for _ in range(3)]
            assert all(np.asarray(a["outputs"]["y"]).tolist() == [[4.0, 6.0]] for a in answers)
            assert len(made) == 1, f"{len(made)} HTTP clients for 3 proxied calls"
            client.services.stop("mm")
        finally:
            assert supervisor.stop(home)
