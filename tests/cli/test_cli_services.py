"""``modelyard deploy``, ``services ...`` and ``batch`` as a user runs them (in-process on a workspace)."""

import json

import numpy as np
import pytest

from support import matmul_onnx, run_cli, stop_supervisor


def linear_onnx(path, scale=1.0):
    return matmul_onnx(path, np.eye(2, dtype=np.float32) * scale)


@pytest.fixture
def home(tmp_path):
    from modelyard.client import Client

    home = tmp_path / "home"
    with Client(home=home) as client:  # set-up through the SDK: the commands under test are the services ones
        client.models.register(linear_onnx(tmp_path / "a.onnx"), "mm")
        client.models.register(linear_onnx(tmp_path / "b.onnx", 3.0), "mm")
    yield home
    problems = stop_supervisor(home)  # stops (or kills) the supervisor and its replicas whatever the test did
    assert not problems, problems


@pytest.mark.slow
def test_deploy_predict_traffic_rollback_metrics_stop(home):
    deployed = run_cli("deploy", "mm@1", "--name", "mm", "--max-batch", "8", home=home, check=True).stdout
    assert "service mm revision 1 ready: mm@1=100%" in deployed and "token required" in deployed
    answer = json.loads(run_cli("services", "predict", "mm", "--data", '{"inputs": {"x": [[1, 2]]}}', home=home,
                                check=True).stdout)
    assert answer == {"outputs": {"y": [[1.0, 2.0]]}, "model": "mm@1"}
    bad = run_cli("services", "predict", "mm", "--data", '{"inputs": {"x": [[1, 2, 3]]}}', home=home)
    assert bad.returncode == 1 and "input 'x' has shape [1, 3]" in bad.stderr and "Traceback" not in bad.stderr
    split = run_cli("services", "traffic", "mm", "mm@1=0", "mm@2=100", home=home, check=True).stdout
    assert "traffic split" in split and "mm@2=100%" in split
    again = json.loads(run_cli("services", "predict", "mm", "--data", '{"inputs": {"x": [[1, 2]]}}', home=home,
                               check=True).stdout)
    assert again["model"] == "mm@2" and again["outputs"]["y"] == [[3.0, 6.0]]
    run_cli("services", "rollback", "mm", home=home, check=True)
    shown = json.loads(run_cli("services", "show", "mm", "--json", home=home, check=True).stdout)
    assert shown["schema"] == "modelyard.service/1" and [t["ref"] for t in shown["traffic"]] == ["mm@1"]
    assert shown["healthy_replicas"] == 1 and [r["status"] for r in shown["revisions"]] == ["live", "superseded",
                                                                                             "superseded"]
    human = run_cli("services", "show", "mm", home=home, check=True).stdout
    assert "healthy" in human and "revision 3 (live 3)" in human and "onnxruntime:cpu" in human  # what auto chose
    metrics = json.loads(run_cli("services", "metrics", "mm", "--json", home=home, check=True).stdout)
    assert metrics["schema"] == "modelyard.service-metrics/1" and metrics["versions"]["mm@2"]["requests"] == 1
    assert "mm" in run_cli("services", "list", home=home, check=True).stdout
    assert "is live" in run_cli("services", "logs", "mm", home=home, check=True).stdout
    run_cli("services", "stop", "mm", home=home, check=True)
    assert json.loads(run_cli("services", "list", "--json", home=home, check=True).stdout)["items"][0]["status"] \
        == "stopped"
    # start waits until it serves, as deploy does; delete stops a running service itself
    assert "mm: started; ready" in run_cli("services", "start", "mm", home=home, check=True).stdout
    assert "stop requested for 1 service(s): mm" in run_cli("services", "stop", "--all", home=home, check=True).stdout
    assert "mm: starting" in run_cli("services", "start", "mm", "--no-wait", home=home, check=True).stdout
    assert "stopped and deleted service mm" in run_cli("services", "delete", "mm", home=home, check=True).stdout
    assert json.loads(run_cli("services", "list", "--json", home=home, check=True).stdout)["items"] == []


@pytest.mark.slow
def test_batch_command_runs_the_job_here_without_a_server(home, tmp_path):
    np.savez(tmp_path / "in.npz", x=np.arange(20, dtype=np.float32).reshape(10, 2))
    out = run_cli("batch", "mm@2", "--input", str(tmp_path / "in.npz"), "--output", str(tmp_path / "out.npz"),
                  "--chunk-size", "4", "--json", home=home, check=True)
    job = json.loads(out.stdout)
    assert job["status"] == "succeeded" and job["result"]["rows"] == 10 and job["result"]["chunks"] == 3
    with np.load(tmp_path / "out.npz") as data:
        assert data["key"].tolist() == list(range(10))
        np.testing.assert_allclose(data["y"], np.arange(20).reshape(10, 2) * 3.0)
    failed = run_cli("batch", "mm@1", "--input", str(tmp_path / "in.npz"), "--output", str(tmp_path / "o.xlsx"),
                     home=home)
    assert failed.returncode == 2 and "output must end in" in failed.stderr
