"""Services through a real ``modelyard server``: deploy and manage over HTTP with tokens, the predict proxy,
metrics and logs routes, and services coming back when the server restarts."""

import json
import time

import httpx
import numpy as np
import pytest

from modelyard.client import Client
from support import matmul_onnx, start_server, stop_supervisor

pytestmark = pytest.mark.slow  # a real server with a supervisor and replica processes


def linear_onnx(path):
    return matmul_onnx(path, [[1, 2], [3, 4]])


@pytest.fixture
def served(tmp_path):
    home = tmp_path / "home"
    server = start_server(home)
    client = Client(url=server.url, token=server.token)
    viewer = client.tokens.create("reader", "viewer")["token"]
    client.models.register(linear_onnx(tmp_path / "mm.onnx"), "mm")
    yield server, client, viewer
    client.close()
    server.stop()
    problems = stop_supervisor(home)
    assert not problems, problems


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
    from modelyard.deploy import supervisor
    from modelyard.deploy.state import read_json, services_root

    server, client, _ = served
    service = client.services.deploy("mm@1", "open", public=True, timeout=60)
    assert httpx.post(f"{server.url}/api/v1/services/open/predict", json={"inputs": [[0, 1]]}).status_code == 200
    port = service["port"]
    assert server.stop() == 0  # the platform goes down: stopping the server stops the supervisor and its replicas
    assert not supervisor.is_running(server.home) and read_json(services_root(server.home) / "supervisor.json") is None
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


def _predicted_by(server, name, token):
    answer = httpx.post(f"{server.url}/api/v1/services/{name}/predict", json={"inputs": [[0, 1]]},
                        headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    return answer.json()["model"]


@pytest.mark.slow
def test_start_waits_a_service_follows_its_alias_and_delete_stops_it(served, tmp_path):
    server, client, viewer = served
    client.models.register(linear_onnx(tmp_path / "mm2.onnx"), "mm")
    client.models.alias("mm@1", "production")
    client.services.deploy("mm@production", "prod", timeout=60)
    client.services.deploy("mm@production", "pinned", follow_alias=False, timeout=60)
    client.services.stop("prod")
    started = client.services.start("prod", timeout=60)  # returns once it serves, like deploy
    assert started["status"] == "ready" and started["healthy_replicas"] == 1
    assert _predicted_by(server, "prod", viewer) == "mm@1"

    client.models.alias("mm@2", "production")  # the alias moves: the following service rolls to mm@2
    moved = client.services.wait("prod", timeout=60)
    assert [t["ref"] for t in moved["traffic"]] == ["mm@2"] and moved["live_revision"] == 2
    # the old revision's replicas drain gracefully after the switch: a request already on a kept-alive connection
    # to one of them is still answered by mm@1 for a moment -- never an error, and mm@2 within seconds
    seen = [_predicted_by(server, "prod", viewer)]
    deadline = time.monotonic() + 15
    while seen[-1] != "mm@2" and time.monotonic() < deadline:
        time.sleep(0.1)
        seen.append(_predicted_by(server, "prod", viewer))
    assert seen[-1] == "mm@2" and set(seen) <= {"mm@1", "mm@2"}, seen
    assert _predicted_by(server, "pinned", viewer) == "mm@1"
    assert client.services.get("pinned")["revision"] == 1

    deleted = client.services.delete("prod")  # running: stopped first, no 'stop' needed
    assert deleted == {"schema": "modelyard.service-deleted/1", "name": "prod", "stopped": True}
    assert [s["name"] for s in client.services.list()["items"]] == ["pinned"]


def test_aliases_rollbacks_and_splits_decide_what_a_service_follows(tmp_path):
    """The rules in the store, without processes: only a running service deployed from the alias follows it; a
    rollback or a traffic split pins it."""
    from modelyard.core.settings import Settings
    from modelyard.deploy.services import DeploySpec, ServiceStore
    from modelyard.registry.versions import ModelRegistry
    from modelyard.store.workspace import Workspace

    workspace = Workspace.open(Settings.load(tmp_path / "home"))
    try:
        registry = ModelRegistry(workspace)
        digest = "sha256:" + workspace.blobs.put_file(linear_onnx(tmp_path / "mm.onnx")).digest
        for _ in range(3):
            registry.create_version("mm", {"model.onnx": digest}, "model.onnx", "onnx")
        registry.set_alias("mm", "production", 1)
        store = ServiceStore(workspace)
        for name, spec in [("follows", {}), ("pinned", {"follow_alias": False}), ("stopped", {})]:
            store.deploy(DeploySpec(model="mm@production", name=name, **spec))
        store.deploy(DeploySpec(model="mm@1", name="by-number"))
        store.stop("stopped")

        def refs(name):
            return [t["ref"] for t in store.get(name).desired.traffic]

        registry.set_alias("mm", "production", 2)
        assert store.follow_alias("mm", "production") == ["follows"]
        assert refs("follows") == ["mm@2"] and store.get("follows").revision == 2
        assert refs("pinned") == refs("stopped") == refs("by-number") == ["mm@1"]
        assert store.follow_alias("mm", "production") == []  # already there: no new revision
        store.mark_live("follows", 1)
        store.mark_live("follows", 2)
        store.rollback("follows")  # back to mm@1, and pinned there
        registry.set_alias("mm", "production", 3)
        assert store.follow_alias("mm", "production") == [] and refs("follows") == ["mm@1"]
        assert store.delete("follows") is True and store.delete("stopped") is False
    finally:
        workspace.close()
