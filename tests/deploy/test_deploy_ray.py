"""Services whose replicas Ray places (``deploy --on ray``): the real Ray head, the model from S3 (SeaweedFS), the
metadata in PostgreSQL when CI's is there; the same protocol, metrics and canary split as local replicas, and
nothing left on the cluster after stop."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from deploy_models import deploy_models, linear_expected  # noqa: F401 - fixtures

from modelyard.core.errors import ModelyardError
from modelyard.core.ray_cluster import scratch_key
from modelyard.core.settings import Settings
from modelyard.deploy.model_server import bucket
from scale_servers import free_port
from support import stop_supervisor

X = np.array([[1, 2, 3, 4], [0, 0, 0, 1]], dtype=np.float32)


def test_placement_ray_needs_a_configured_reachable_cluster(tmp_path):
    from pydantic import ValidationError

    from modelyard.deploy.ray_replicas import check_placement
    from modelyard.deploy.services import DeploySpec

    check_placement(Settings.load(tmp_path), "local")  # needs nothing
    with pytest.raises(ModelyardError, match="placement 'ray' needs the setting ray_address") as missing:
        check_placement(Settings.load(tmp_path), "ray")
    assert missing.value.status == 422  # the REST answer (ServiceStore.deploy checks before it writes anything)
    with pytest.raises(ValidationError, match="placement"):
        DeploySpec(model="m@1", placement="kubernetes")
    # a dashboard that does not answer: 503, one line naming it
    with pytest.raises(ModelyardError, match="(?i)ray") as unreachable:
        check_placement(Settings.load(tmp_path, ray_address=f"http://127.0.0.1:{free_port()}"), "ray")
    assert unreachable.value.status == 503 and "\n" not in unreachable.value.message


def _service_jobs(dashboard: str, home) -> list:
    from ray.job_submission import JobSubmissionClient

    return [j for j in JobSubmissionClient(dashboard).list_jobs()
            if (j.metadata or {}).get("modelyard_services_home") == str(home)]


def _wait(what: str, check, timeout: float = 120.0, seen=lambda: ""):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout:.0f} s; saw: {seen()}")
        time.sleep(0.2)
    return found


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # one Ray head per session: Ray tests share a worker
def test_a_service_on_ray_serves_splits_traffic_and_stops_leaving_nothing_on_the_cluster(
        ray_head, s3_server, deploy_models, linear_expected, tmp_path, request):
    from modelyard.client import Client
    from modelyard.store.tokens import TokenStore

    home = tmp_path / "home"
    home.mkdir()
    # the database named explicitly (SQLite's file on this machine without CI's PostgreSQL): with it and S3 the
    # replica works in a scratch home on its node and fetches the model from S3, as on a cluster
    db_url = (request.getfixturevalue("pg_database") if os.environ.get("MODELYARD_TEST_PG_URL")
              else f"sqlite:///{home / 'modelyard.db'}")
    values = {"ray_address": ray_head.dashboard, "db_url": db_url, **s3_server.settings_values()}
    (home / "config.toml").write_text("".join(f'{key} = "{value}"\n' for key, value in values.items()))
    scratch = Path(os.environ.get("TMPDIR") or "/tmp") / "modelyard-ray-services" / scratch_key(Settings.load(home))
    client = Client(home=home)
    try:
        client.models.register(deploy_models / "linear.onnx", "linear")
        client.models.register(deploy_models / "linear2.onnx", "linear")
        _, token = TokenStore(client._workspace.engine).create("predictor", "viewer")
        auth = {"Authorization": f"Bearer {token}"}

        service = client.services.deploy("linear@1", "lin", placement="ray", timeout=180)
        assert service["status"] == "ready" and service["config"]["placement"] == "ray", service
        [replica] = service["replica_states"]
        assert replica["placement"] == "ray" and replica["ray_job"].startswith("modelyard-svc-lin-r1-0-")
        running = [j for j in _service_jobs(ray_head.dashboard, home) if str(j.status.value) == "RUNNING"]
        assert [j.submission_id for j in running] == [replica["ray_job"]]
        # the replica's home is the node's scratch folder: the model came from the bucket into its cache there
        assert [p.name for p in (scratch / "registry" / "cache").rglob("*.onnx")] == ["model.onnx"], sorted(
            scratch.rglob("*"))

        # the same protocol at the service port (forwarded to the replica on its node) and through the platform
        answer = httpx.post(service["url"] + "/v1/predict", json={"inputs": {"x": X.tolist()}}, headers=auth,
                            timeout=30)
        assert answer.status_code == 200 and answer.json()["model"] == "linear@1", answer.text
        np.testing.assert_allclose(answer.json()["outputs"]["y"], linear_expected(X), rtol=1e-6)
        assert httpx.post(service["url"] + "/v1/predict", json={"inputs": {"x": X.tolist()}}).status_code == 401
        np.testing.assert_allclose(client.services.predict("lin", {"x": X})["outputs"]["y"], linear_expected(X),
                                   rtol=1e-6)

        # a canary split: a new revision, its replica placed by Ray beside the live one, then serving both versions
        split = client.services.traffic("lin", {"linear@1": 50, "linear@2": 50}, timeout=180)
        assert split["live_revision"] == 2 and split["config"]["placement"] == "ray", split
        keys = [f"user-{n}" for n in range(12)]
        for key in keys:
            got = httpx.post(service["url"] + "/v1/predict", json={"inputs": {"x": X.tolist()}, "key": key},
                             headers=auth, timeout=30).json()
            scale = 1.0 if bucket(key) < 50 else 2.0  # a sticky key's version is a hash of the key
            assert got["model"] == f"linear@{int(scale)}", (key, got)
            np.testing.assert_allclose(got["outputs"]["y"], linear_expected(X, scale), rtol=1e-6)
        assert {bucket(k) < 50 for k in keys} == {True, False}  # both versions were asked
        metrics = client.services.metrics("lin")
        assert 'version="linear@2"' in metrics and "modelyard_requests_total" in metrics
        access = client.services.logs("lin", source="access")
        assert '"model":"linear@2"' in access and '"status":200' in access
        events = client.services.logs("lin")
        assert "revision 1 replica 0 submitted to Ray" in events and "revision 2 is live" in events

        # stop: every replica job of the workspace ends (the revision-1 one when revision 2 went live)
        client.services.stop("lin")
        _wait("every replica job ended",
              lambda: all(str(j.status.value) in ("STOPPED", "SUCCEEDED", "FAILED")
                          for j in _service_jobs(ray_head.dashboard, home)),
              seen=lambda: [(j.submission_id, str(j.status.value)) for j in _service_jobs(ray_head.dashboard, home)])
        assert len(_service_jobs(ray_head.dashboard, home)) == 2
    finally:
        problems = stop_supervisor(home)
        client.close()
        shutil.rmtree(scratch, ignore_errors=True)
    assert not problems, problems
