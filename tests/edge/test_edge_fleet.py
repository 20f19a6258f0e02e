"""The edge fleet end to end with real processes on 127.0.0.1: a ``modelyard server``, three ``modelyard-agent``
processes with their own homes, each running its inference skill in its own process.

Covers activation (expired and reused codes refused), canary then fleet, a failing health gate that rolls back only
the canary and stops the rollout, a tampered bundle refused with an alarm, ``kill -9`` mid-download and
mid-activation, the platform stopped and restarted, and a device credential refused (403) on another device and on
the user API.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from support import cli_env, matmul_onnx, run_cli, start_server

pytestmark = pytest.mark.slow
AGENT_ARGS = ("run", "--poll-wait", "1", "--report-interval", "0.4")


def wait_for(predicate, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Fleet:
    def __init__(self, root: Path):
        self.root = root
        self.home = root / "platform"
        self.port = _free_port()
        self.server = start_server(self.home, "--port", str(self.port))
        self.url = self.server.url
        self.agents: dict[str, subprocess.Popen] = {}
        self.client = self._client()

    def _client(self):
        from modelyard.client.client import Client

        return Client(url=self.url, token=self.server.token)

    def cli(self, *args: str, check: bool = True):
        return run_cli("--url", self.url, "--token", self.server.token, *args, check=check)

    def json(self, *args: str):
        return json.loads(self.cli(*args, "--json").stdout)

    def agent_home(self, name: str) -> Path:
        return self.root / "agents" / name

    def agent_cli(self, name: str, *args: str, **env) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "modelyard.edge.agent.main", "--home",
                               str(self.agent_home(name)), *args], capture_output=True, text=True,
                              env=cli_env(**env), timeout=60, stdin=subprocess.DEVNULL)

    def agent_popen(self, name: str, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "modelyard.edge.agent.main", "--home",
                                 str(self.agent_home(name)), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=cli_env(), stdin=subprocess.DEVNULL)

    def start_agent(self, name: str, **env) -> subprocess.Popen:
        log = open(self.agent_home(name) / "stdout.log", "ab")  # noqa: SIM115 - the process owns it
        proc = subprocess.Popen([sys.executable, "-m", "modelyard.edge.agent.main", "--home",
                                 str(self.agent_home(name)), *AGENT_ARGS], env=cli_env(**env),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.agents[name] = proc
        return proc

    def stop_agent(self, name: str) -> None:
        proc = self.agents.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def credential(self, name: str) -> dict:
        return json.loads((self.agent_home(name) / "identity.json").read_text())

    def deployment(self, deployment_id: str) -> dict:
        return self.client.edge.deployment(deployment_id)

    def wait_deployment(self, deployment_id: str, statuses: tuple[str, ...], timeout: float = 150) -> dict:
        try:
            return wait_for(lambda: (d := self.deployment(deployment_id))["status"] in statuses and d,
                            timeout, f"deployment {deployment_id} to reach {statuses}")
        except AssertionError as exc:  # say what the platform and the agents saw
            seen = self.deployment(deployment_id)
            devices = {d["device"]: (d["state"], d["message"]) for d in seen["devices"]}
            logs = {name: (self.agent_home(name) / "agent.log").read_text().splitlines()[-8:]
                    for name in devices if (self.agent_home(name) / "agent.log").is_file()}
            raise AssertionError(f"{exc}: {seen['status']} {seen['message']!r}; devices {devices}; "
                                 f"agent logs {json.dumps(logs, indent=1)}") from None

    def running_bundle(self, name: str) -> str | None:
        twin = self.client.edge.twin(name)
        skills = [s for s in twin["reported"].get("skills", []) if s["status"] == "running"]
        return skills[0]["bundle"] if skills else None

    def close(self) -> None:
        for proc in self.agents.values():  # all at once: each takes its skill processes down before it exits
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name in list(self.agents):
            self.stop_agent(name)
        self.client.close()
        self.server.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    root = tmp_path_factory.mktemp("edge")
    fleet = Fleet(root)
    try:
        matmul_onnx(root / "m.onnx", np.array([[1.0, 2.0], [3.0, -1.0]], dtype=np.float32))
        fleet.client.models.register(root / "m.onnx", "mm")
        # INT8 is calibrated on a dataset version; mm has no lineage, so the CLI names one
        rows = [f"{a},{b},{int(a > b)}" for a, b in np.random.default_rng(0).normal(0, 1, (20, 2)).round(3)]
        (root / "t.csv").write_text("a,b,label\n" + "\n".join(rows) + "\n")
        fleet.client.data.import_path(root / "t.csv", "table")
        # everything below overlaps: the three agents activate, the CLI packages v1 (an edge.package job it follows)
        # and two more packaging jobs queue behind it on the server's worker
        activating = {}
        for name in ("cam-1", "cam-2", "cam-3"):
            device = fleet.client.edge.register(name, {"site": "plant-3", "group": "line-a"})
            fleet.agent_home(name).mkdir(parents=True)
            activating[name] = fleet.agent_popen(name, "activate", "--url", fleet.url, "--code",
                                                 device["activation_code"])
        packaging = subprocess.Popen(
            [sys.executable, "-m", "modelyard.cli.main", "--url", fleet.url, "--token", fleet.server.token, "edge",
             "package", "mm@1", "--target", "cpu-x86", "--calibration", "table@1", "--json"],
            env=cli_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: fleet.client.jobs.list(kind="edge.package")["items"], 60, "the CLI's packaging job")
        queued = [fleet.client.edge.package("mm@1", target, int8=False, prune=False, wait=False)
                  for target in ("cpu-x86", "cpu-arm")]
        assert all(job["kind"] == "edge.package" and job["status"] == "queued" for job in queued)
        for name, proc in activating.items():
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            assert f"activated as device {name}" in out
            fleet.start_agent(name)
        out, err = packaging.communicate(timeout=180)
        assert packaging.returncode == 0, err
        fleet.bundle_v1 = json.loads(out)["id"]
        fleet.bundle_v2, fleet.bundle_v3 = (fleet.client.jobs.result(fleet.client.jobs.wait(job["id"], 120))["id"]
                                            for job in queued)
        yield fleet
    finally:
        fleet.close()


@pytest.fixture(scope="module")
def on_v1(fleet):
    """Canary then fleet: the first device gets v1, proves healthy, then the other two get it."""
    deployment = fleet.json("edge", "deploy", fleet.bundle_v1, "--label", "site=plant-3", "--canary", "1",
                            "--watch", "1")
    states = {d["device"]: d["state"] for d in deployment["devices"]}
    assert states == {"cam-1": "pending", "cam-2": "queued", "cam-3": "queued"}
    done = fleet.wait_deployment(deployment["id"], ("succeeded", "failed"))
    assert done["status"] == "succeeded", done
    assert all(d["state"] == "healthy" for d in done["devices"])
    for name in ("cam-1", "cam-2", "cam-3"):
        assert fleet.running_bundle(name) == fleet.bundle_v1
    return deployment["id"]


def test_canary_then_fleet(on_v1, fleet):
    from modelyard.core.errors import InvalidInput

    bundle = fleet.client.edge.bundle(fleet.bundle_v1)
    assert bundle["created_by"] == "admin" and bundle["figures"]["samples_from"]["dataset"] == "table@1"
    with pytest.raises(InvalidInput, match="no training dataset in its lineage"):
        fleet.client.edge.package("mm@1", "cpu-x86", wait=False)
    with pytest.raises(InvalidInput, match="ATC"):  # refused at submit: nothing queued, no failed job
        fleet.client.edge.package("mm@1", "ascend-310", wait=False)
    assert not fleet.client.jobs.list(kind="edge.package", status="failed")["items"]
    listed = fleet.json("edge", "devices")
    assert {d["name"]: d["online"] for d in listed["items"]} == {"cam-1": True, "cam-2": True, "cam-3": True}
    twin = fleet.json("edge", "twin", "cam-2")
    assert twin["reported"]["hardware"]["cpus"] >= 1
    assert any(b["name"] == "onnxruntime:cpu" and b["available"] for b in twin["reported"]["hardware"]["backends"])
    logs = fleet.cli("edge", "logs", "cam-2").stdout
    assert "skill inference started" in logs


def test_activation_codes_expire_and_are_single_use(fleet, tmp_path):
    expired = fleet.client.edge.register("short-lived", activation_ttl_s=1)
    time.sleep(1.2)  # the code's lifetime is the behaviour under test
    fleet.agent_home("short-lived").mkdir(parents=True)
    proc = fleet.agent_cli("short-lived", "activate", "--url", fleet.url, "--code", expired["activation_code"])
    assert proc.returncode == 2 and "expired" in proc.stderr
    once = fleet.client.edge.register("once")
    fleet.agent_home("once").mkdir(parents=True)
    assert fleet.agent_cli("once", "activate", "--url", fleet.url, "--code", once["activation_code"]).returncode == 0
    again = fleet.agent_cli("once", "activate", "--url", fleet.url, "--code", once["activation_code"])
    assert again.returncode == 2 and "already used" in again.stderr


def test_device_credential_is_scoped_to_its_device(on_v1, fleet):
    mine, other = fleet.credential("cam-1"), fleet.credential("cam-2")
    headers = {"Authorization": f"Bearer {mine['credential']}"}
    assert httpx.get(f"{fleet.url}/edge/v1/devices/{mine['device_id']}/desired", headers=headers).status_code == 200
    stolen = httpx.get(f"{fleet.url}/edge/v1/devices/{other['device_id']}/desired", headers=headers)
    assert stolen.status_code == 403 and stolen.json()["error"]["code"] == "forbidden"
    report = httpx.post(f"{fleet.url}/edge/v1/devices/{other['device_id']}/report", headers=headers, json={})
    assert report.status_code == 403
    for path in ("/api/v1/edge/devices", f"/api/v1/edge/devices/{other['device_id']}", "/api/v1/models"):
        assert httpx.get(fleet.url + path, headers=headers).status_code == 403


def test_failing_health_gate_rolls_back_only_the_canary_and_stops(on_v1, fleet):
    deployment = fleet.json("edge", "deploy", fleet.bundle_v2, "--group", "line-a", "--canary", "1", "--watch", "1",
                            "--max-latency-ms", "0.000001")
    done = fleet.wait_deployment(deployment["id"], ("failed", "succeeded"))
    assert done["status"] == "failed" and "health gate" in done["message"]
    states = wait_for(lambda: (s := {d["device"]: d["state"] for d in fleet.deployment(deployment["id"])["devices"]})
                      ["cam-1"] == "rolled_back" and s, 60, "the canary's rollback")
    assert states == {"cam-1": "rolled_back", "cam-2": "cancelled", "cam-3": "cancelled"}
    for name in ("cam-1", "cam-2", "cam-3"):
        assert fleet.running_bundle(name) == fleet.bundle_v1


def test_tampered_bundle_is_refused_with_an_alarm(on_v1, fleet):
    from modelyard.core.settings import Settings
    from modelyard.store.workspace import Workspace

    workspace = Workspace.open(Settings.load(fleet.home))
    try:
        import sqlalchemy as sa

        from modelyard.store.schema_edge import edge_bundles

        with workspace.engine.begin() as conn:
            row = conn.execute(sa.select(edge_bundles).where(edge_bundles.c.id == fleet.bundle_v2)).first()
            import io
            import tarfile

            data = bytearray(workspace.blobs.read_bytes(row.digest))
            with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
                offset = tar.getmember("files/model.onnx").offset_data
            data[offset + 20] ^= 0x01  # one byte inside the model file
            tampered = workspace.blobs.put_bytes(bytes(data))
            conn.execute(edge_bundles.insert().values(
                id="bdl_tampered", model_ref=row.model_ref, target=row.target, digest=tampered.digest,
                size=tampered.size, manifest=row.manifest, created_by="test", created_at=row.created_at))
    finally:
        workspace.close()
    deployment = fleet.json("edge", "deploy", "bdl_tampered", "--device", "cam-3", "--watch", "1")
    done = fleet.wait_deployment(deployment["id"], ("failed", "succeeded"))
    assert done["status"] == "failed" and "refused" in done["message"]
    alarms = fleet.client.edge.alarms("cam-3")["items"]
    refused = [a for a in alarms if a["kind"] == "bundle_refused"]
    assert refused and "bdl_tampered" in refused[0]["message"]
    assert fleet.running_bundle("cam-3") == fleet.bundle_v1
    fleet.cli("edge", "ack", refused[0]["id"])
    assert not [a for a in fleet.client.edge.alarms("cam-3")["items"] if a["kind"] == "bundle_refused"]


def test_kill_9_mid_download_and_mid_activation_recovers(on_v1, fleet):
    """Two devices at once (the scenarios are independent): cam-2 is killed mid-download and resumes it, cam-1 is
    killed mid-activation and finishes the switch; both end healthy on v3 with v1 kept for rollback."""
    scenarios = {"cam-2": ("download", "resuming download"),
                 "cam-1": ("activate", "finished the interrupted activation")}
    crashing, deployments = {}, {}
    for device, (crash_at, _) in scenarios.items():
        fleet.stop_agent(device)
        crashing[device] = fleet.start_agent(device, MODELYARD_AGENT_CRASH_AT=crash_at)
    for device in scenarios:
        deployments[device] = fleet.client.edge.deploy(fleet.bundle_v3, device=device, gate={"watch_s": 1})["id"]
    for device, proc in crashing.items():
        assert proc.wait(timeout=60) == -signal.SIGKILL, device
        fleet.start_agent(device)
    for device, (crash_at, recovered) in scenarios.items():
        done = fleet.wait_deployment(deployments[device], ("succeeded", "failed"))
        assert done["status"] == "succeeded", done
        assert fleet.running_bundle(device) == fleet.bundle_v3
        assert recovered in (fleet.agent_home(device) / "agent.log").read_text()
        if crash_at == "activate":
            # the last good bundle stays in the other slot for rollback
            state = json.loads((fleet.agent_home(device) / "state.json").read_text())
            assert state["skills"]["inference"]["previous"] == fleet.bundle_v1


def test_platform_stopped_and_restarted(on_v1, fleet):
    stats = fleet.agent_home("cam-3") / "skills" / "inference.stats.json"
    fleet.server.stop()
    before = json.loads(stats.read_text())["processed"]
    wait_for(lambda: json.loads(stats.read_text())["processed"] > before + 5, 30, "the skill to keep running")
    wait_for(lambda: list((fleet.agent_home("cam-3") / "queue").glob("*.json")), 30, "queued reports")
    fleet.server = start_server(fleet.home, "--port", str(fleet.port), token=fleet.server.token)
    fleet.client.close()
    fleet.client = fleet._client()
    wait_for(lambda: any("catching up" in line["line"] for line in fleet.client.edge.logs("cam-3")["lines"]),
             60, "the queued reports to arrive")
    assert any("unreachable" in line["line"] for line in fleet.client.edge.logs("cam-3")["lines"])
    assert all(proc.poll() is None for proc in fleet.agents.values())
