"""One replica's app in-process (no supervisor, no model run): who may call what, and what its access log keeps."""

import json

import pytest
from starlette.testclient import TestClient

from modelyard.core.settings import Settings
from modelyard.deploy.access_log import AccessLog
from modelyard.deploy.batching import DynamicBatcher
from modelyard.deploy.model_server import LoadedVersion, ModelServer, TokenCheck, build_app
from modelyard.deploy.state import INTERNAL_HEADER, internal_key
from modelyard.registry.signature import Signature, TensorSpec
from modelyard.server.app import create_app
from modelyard.store.tokens import TokenStore
from modelyard.store.workspace import Workspace

# a body the signature refuses (400): authorized requests that never reach a model
BAD_BODY = {"inputs": {"nope": [[1.0, 2.0]]}}


def _never(_feeds):
    raise AssertionError("these tests never run the model")


@pytest.fixture
def replica(tmp_path):
    workspace = Workspace.open(Settings.load(tmp_path / "home"))
    tokens = TokenStore(workspace.engine)
    admin = tokens.create("admin", "admin")[1]
    servers = []
    signature = Signature((TensorSpec("x", "float32", ("batch", 2)),), (TensorSpec("y", "float32", ("batch", 2)),))

    def make(public=False):
        version = LoadedVersion("mm@1", "mv_1", 100.0, signature, DynamicBatcher(_never), "null:cpu")
        check = TokenCheck(workspace.engine, internal_key(workspace.home), workspace.home)
        (tmp_path / "metrics").mkdir(exist_ok=True)
        server = ModelServer("svc", 1, 0, [version], public, check, 1 << 20, tmp_path / "metrics",
                             tmp_path / "access.log")
        servers.append(server)
        return TestClient(build_app(server))

    make.workspace, make.admin, make.log = workspace, admin, tmp_path / "access.log"
    yield make
    for server in servers:
        server.close()
    workspace.close()


def bearer(secret):
    return {"Authorization": f"Bearer {secret}"}


def test_a_revoked_token_is_refused_by_the_next_request(replica):
    platform = TestClient(create_app(replica.workspace))
    created = platform.post("/api/v1/tokens", json={"name": "app", "role": "viewer"}, headers=bearer(replica.admin))
    secret = created.json()["token"]
    service = replica()
    assert service.post("/v1/predict", json=BAD_BODY, headers=bearer(secret)).status_code == 400  # cached now
    platform.delete(f"/api/v1/tokens/{created.json()['id']}", headers=bearer(replica.admin)).raise_for_status()
    refused = service.post("/v1/predict", json=BAD_BODY, headers=bearer(secret))
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]


@pytest.mark.parametrize("public", [False, True])
def test_health_checks_are_open_and_metrics_need_a_credential(replica, public):
    service = replica(public=public)
    assert service.get("/healthz").json()["status"] == "ok"
    anonymous = service.get("/readyz")
    assert anonymous.status_code == 200 and anonymous.json()["status"] == "ready"
    # what the replica serves is for callers that may ask /v1/models
    assert ("models" in anonymous.json()) is public
    platform_key = {INTERNAL_HEADER: internal_key(replica.workspace.home)}
    assert service.get("/readyz", headers=platform_key).json()["backends"] == {"mm@1": "null:cpu"}
    assert service.get("/readyz", headers=bearer(replica.admin)).json()["models"] == ["mm@1"]
    assert ("models" in service.get("/readyz", headers=bearer("myd_wrong")).json()) is public
    refused = service.get("/metrics")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert service.get("/metrics", headers={INTERNAL_HEADER: "not-the-key"}).status_code == 401
    assert service.get("/metrics", headers=bearer(replica.admin)).status_code == 200
    assert service.get("/metrics", headers=platform_key).status_code == 200


def _logged(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_access_log_keeps_short_keys_from_callers_it_knows(replica):
    service = replica()
    sticky = "k" * 60_000
    service.post("/v1/predict", json=BAD_BODY, headers={"X-Modelyard-Key": sticky})  # no token: 401
    service.post("/v1/predict", json=BAD_BODY, headers={**bearer(replica.admin), "X-Modelyard-Key": sticky})
    service.post("/v1/predict", json=BAD_BODY, headers={**bearer(replica.admin), "X-Modelyard-Key": "user-7"})
    anonymous, long_key, short_key = _logged(replica.log)
    assert anonymous["status"] == 401 and anonymous["key"] is None
    assert long_key["status"] == 400 and long_key["key"].startswith("k" * 64 + "...(60000 chars, sha256 ")
    assert len(long_key["key"]) < 120 and short_key["key"] == "user-7"
    assert replica.log.stat().st_size < 1000


def test_the_access_log_rotates_by_size_across_writers(tmp_path):
    path = tmp_path / "access.log"
    # two replicas of one service append to the same file
    first, second = AccessLog(path, max_bytes=1000, backups=3), AccessLog(path, max_bytes=1000, backups=3)
    lines = [f'{{"n":{i},"pad":"{"x" * 80}"}}\n' for i in range(60)]
    for i, line in enumerate(lines):
        (first if i % 2 else second).write(line)
    first.close()
    second.close()
    files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("access.log") and not p.name.endswith(
        ".lock"))
    assert files == ["access.log", "access.log.1", "access.log.2", "access.log.3"]
    assert all((tmp_path / name).stat().st_size < 1000 + 200 for name in files)
    oldest_first = [*reversed(files[1:]), files[0]]
    kept = [line for name in oldest_first for line in (tmp_path / name).read_text().splitlines()]
    # the newest lines survive, none twice, none cut, in order
    assert [json.loads(line)["n"] for line in kept] == list(range(60 - len(kept), 60))


def test_feedback_needs_a_token_even_on_a_public_service(replica):
    # anyone may predict on a public service; the true labels behind its accuracy and alerts are not anyone's to write
    service = replica(public=True)
    feedback = {"items": [{"request_id": "r1", "label": "a"}]}
    refused = service.post("/v1/feedback", json=feedback)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    # past the token check, this capture-less replica says so
    assert service.post("/v1/feedback", json=feedback, headers=bearer(replica.admin)).status_code == 503
