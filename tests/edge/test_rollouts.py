"""The deployment state machine on a real workspace, with agent reports written directly (no processes)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modelyard.core.errors import Forbidden, Unauthorized
from modelyard.core.ids import utcnow
from modelyard.core.settings import Settings
from modelyard.edge.devices import Devices
from modelyard.edge.rollouts import DeploymentSpec, Rollouts
from modelyard.store.schema_edge import edge_bundles
from modelyard.store.workspace import Workspace


@pytest.fixture()
def fleet(tmp_path):
    workspace = Workspace.open(Settings.load(tmp_path / "home"))
    devices = Devices(workspace.engine)
    ids = {}
    for name in ("d1", "d2", "d3"):
        device, code = devices.register(name, {"site": "s"})
        ids[name] = devices.activate(code)[0]["id"]
    with workspace.engine.begin() as conn:
        for bundle in ("b1", "b2"):
            conn.execute(edge_bundles.insert().values(
                id=bundle, model_ref="m@1", target="cpu-x86", digest="0" * 64, size=1,
                manifest={"figures": {"final": {"latency_ms_batch1": 1.0}}}, created_at=utcnow()))
    yield workspace, devices, Rollouts(workspace.engine), ids
    workspace.close()


def _report(devices, device_id, deployment, state, bundle=None, latency=1.0, errors=0):
    skills = [{"name": "inference", "bundle": bundle, "status": "running", "processed": 10, "errors": errors,
               "latency_ms_p50": latency}] if bundle else []
    devices.report(device_id, {"reported": {"deployment": {"id": deployment, "state": state}, "skills": skills}})


def _states(rollouts, deployment_id):
    return {d["device"]: d["state"] for d in rollouts.get(deployment_id)["devices"]}


def test_canary_then_the_rest_then_succeeded(fleet):
    _, devices, rollouts, ids = fleet
    dep = rollouts.create(DeploymentSpec(bundle="b1", selector={"site": "s"}, canary=1, gate={"watch_s": 0}))
    assert _states(rollouts, dep["id"]) == {"d1": "pending", "d2": "queued", "d3": "queued"}
    assert devices.twin("d2")["desired"]["skills"] == []
    _report(devices, ids["d1"], dep["id"], "downloading")
    rollouts.advance(ids["d1"])
    assert _states(rollouts, dep["id"])["d1"] == "downloading"
    _report(devices, ids["d1"], dep["id"], "active", "b1")
    rollouts.advance(ids["d1"])
    assert rollouts.get(dep["id"])["status"] == "rolling"
    assert devices.twin("d2")["desired"]["skills"][0]["bundle"] == "b1"
    for name in ("d2", "d3"):
        _report(devices, ids[name], dep["id"], "active", "b1")
        rollouts.advance(ids[name])
    assert rollouts.get(dep["id"])["status"] == "succeeded"


def test_a_failing_gate_rolls_back_the_canary_and_stops(fleet):
    _, devices, rollouts, ids = fleet
    dep = rollouts.create(DeploymentSpec(bundle="b1", selector={"site": "s"}, canary=1,
                                         gate={"watch_s": 0, "max_error_rate": 0.1}))
    _report(devices, ids["d1"], dep["id"], "active", "b1", errors=5)
    rollouts.advance(ids["d1"])
    result = rollouts.get(dep["id"])
    assert result["status"] == "failed" and "error rate" in result["message"]
    assert _states(rollouts, dep["id"]) == {"d1": "failed", "d2": "cancelled", "d3": "cancelled"}
    assert devices.twin("d1")["desired"]["skills"] == []  # back to the state before
    _report(devices, ids["d1"], None, "active")
    rollouts.advance(ids["d1"])
    assert _states(rollouts, dep["id"])["d1"] == "rolled_back"


def test_a_newer_deployment_supersedes_and_cancel_always_works(fleet):
    _, devices, rollouts, ids = fleet
    old = rollouts.create(DeploymentSpec(bundle="b1", device="d1"))
    new = rollouts.create(DeploymentSpec(bundle="b2", device="d1"))
    assert rollouts.get(old["id"])["status"] == "superseded"
    assert devices.twin("d1")["desired"]["skills"][0]["bundle"] == "b2"
    cancelled = rollouts.cancel(new["id"])
    assert cancelled["status"] == "cancelled"
    assert devices.twin("d1")["desired"]["skills"] == []  # b1 never proved itself: back to the empty state


def test_device_credentials_are_scoped(fleet):
    workspace, devices, _, ids = fleet
    device, code = devices.register("d4")
    _, credential = devices.activate(code)
    assert devices.authenticate(credential, device["id"]) == device["id"]
    with pytest.raises(Forbidden):
        devices.authenticate(credential, ids["d1"])
    with pytest.raises(Unauthorized, match="already used"):
        devices.activate(code)
    devices.deregister("d4")
    with pytest.raises(Unauthorized, match="revoked"):
        devices.authenticate(credential, device["id"])


def test_a_deployment_to_one_device_succeeds_once_its_canary_is_healthy(fleet):
    _, devices, rollouts, ids = fleet
    dep = rollouts.create(DeploymentSpec(bundle="b1", device="d1", gate={"watch_s": 0}))
    _report(devices, ids["d1"], dep["id"], "active", "b1")
    rollouts.advance(ids["d1"])
    assert rollouts.get(dep["id"])["status"] == "succeeded"


def test_a_rollout_survives_a_server_restart_mid_canary(fleet):
    """No request and no process holds a rollout: stop everything while the canary is being watched, open the
    workspace again, and the next reports finish it (the watch's start is in the database)."""
    from modelyard.store.schema_edge import edge_deployment_devices

    workspace, devices, rollouts, ids = fleet
    home = workspace.settings.home
    dep = rollouts.create(DeploymentSpec(bundle="b1", selector={"site": "s"}, canary=1, gate={"watch_s": 3600}))
    _report(devices, ids["d1"], dep["id"], "active", "b1")
    rollouts.advance(ids["d1"])
    assert _states(rollouts, dep["id"])["d1"] == "activating"  # healthy so far, watched for an hour
    workspace.close()

    again = Workspace.open(Settings.load(home))
    try:
        devices, rollouts = Devices(again.engine), Rollouts(again.engine)
        assert rollouts.get(dep["id"])["status"] == "canary"
        with again.engine.begin() as conn:  # the hour passes while the platform is down
            conn.execute(edge_deployment_devices.update().where(
                edge_deployment_devices.c.device_id == ids["d1"]).values(active_since=utcnow() - timedelta(hours=2)))
        _report(devices, ids["d1"], dep["id"], "active", "b1")
        rollouts.advance(ids["d1"])
        assert rollouts.get(dep["id"])["status"] == "rolling"
        for name in ("d2", "d3"):
            _report(devices, ids[name], dep["id"], "active", "b1")
        rollouts.advance()
        with again.engine.begin() as conn:
            conn.execute(edge_deployment_devices.update().where(
                edge_deployment_devices.c.device_id != ids["d1"]).values(active_since=utcnow() - timedelta(hours=2)))
        rollouts.advance()
        assert rollouts.get(dep["id"])["status"] == "succeeded"
    finally:
        again.close()
