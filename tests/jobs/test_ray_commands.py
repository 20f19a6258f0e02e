"""The done-when of scale-out: the same commands a laptop user types (``data import``, ``automl train``, ``batch``,
``jobs submit migrate.optimize`` + ``worker``) run unchanged through real CLI processes when the workspace's
settings point at a Ray head, S3 (SeaweedFS) and, when CI's PostgreSQL is there, PostgreSQL. ``train submit``
on Ray is covered by ``test_ray_executor.py``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from modelyard.core.settings import Settings
from modelyard.jobs.queue import JobQueue
from modelyard.store.workspace import Workspace
from modelyard.train.tracking import RunStore
from support import run_cli

ZOO = {"entrypoint": "modelyard.runtime.zoo:tiny_mlp", "kwargs": {"in_features": 4, "out_features": 3},
       "inputs": [{"name": "x", "shape": ["batch", 4]}], "dims": {"batch": 1}}


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # one Ray head per session: Ray tests share a worker
def test_automl_batch_and_migrate_optimize_run_unchanged_on_ray_s3_and_postgres(ray_s3_home, s3_server, tmp_path,
                                                                                   request):
    from ray.util.state import list_tasks

    home, blob_url = ray_s3_home.home, ray_s3_home.blob_url  # the session's Ray + S3 (+ PostgreSQL) workspace

    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 4))
    table = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    # noisy labels: no candidate scores a perfect 1.0, so the search runs all of its 4 trials
    table["label"] = np.where(x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.7, size=len(x)) > 0, "yes", "no")
    table.to_csv(tmp_path / "t.csv", index=False)
    run_cli("data", "import", str(tmp_path / "t.csv"), "--name", "t", "--label", "label", home=home, check=True)

    # automl train: the job runs as a Ray Job, its trials as Ray tasks over the cluster's CPUs
    result = json.loads(run_cli("automl", "train", "t@1", "--name", "t-model", "--time-budget", "300",
                                "--max-trials", "4", "--json", home=home, check=True, timeout=300).stdout)
    assert result["schema"] == "modelyard.automl/1" and result["model"] == "t-model@1"
    assert result["score"] >= 0.6 and result["stop_reason"] == "max trials (4)", result
    searched = [e for e in result["leaderboard"] if e["family"] != "ensemble"]
    assert len(searched) == 4 and all(e["score"] is not None for e in searched)
    trials = list_tasks(address=ray_s3_home.dashboard, filters=[("func_or_class_name", "=", "fit_trial")], limit=1000,
                        raise_on_missing_output=False)
    assert len(trials) >= 4  # each candidate was fitted by a Ray task, not in the job's process
    # what the commands left, read here directly (each CLI process costs seconds; the commands are the test)
    workspace = Workspace.open(Settings.load(home), create=False)
    request.addfinalizer(workspace.close)
    queue = JobQueue(workspace)
    log = queue.log_path(queue.list(kind="automl.train")[0][0].id).read_text()
    assert "submitted as Ray job modelyard-" in log and "4 trials ran as Ray tasks" in log
    # the command's worker stopped while the Ray driver was still disconnecting: that is no failure to report
    assert "shut down while the job was running" not in log
    run = RunStore(workspace).get(result["run"])
    assert run.model == "t-model@1" and run.status == "finished" and len(run.metrics) > 0
    # the registered model's file is an object in the bucket, under the workspace's prefix
    digest = result["artifacts"]["model"].removeprefix("sha256:")
    prefix = blob_url.split("/", 3)[3]
    s3_server.client().head_object(Bucket=s3_server.bucket, Key=f"{prefix}/sha256/{digest[:2]}/{digest[2:]}")

    # batch: the chunks spread over 2 Ray actors, every row written once
    table.drop(columns=["label"]).assign(id=range(len(table))).to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "out.parquet"
    batch = json.loads(run_cli("batch", "t-model@1", "--input", str(tmp_path / "in.csv"), "--output", str(out),
                               "--key", "id", "--chunk-size", "50", "--workers", "2", "--json", home=home,
                               check=True, timeout=300).stdout)
    assert batch["status"] == "succeeded" and batch["result"]["rows"] == len(table)
    assert pd.read_parquet(out)["id"].tolist() == list(range(len(table)))

    # migrate optimize as a job: submitted, then run by a worker whose executor is Ray
    (tmp_path / "optimize.json").write_text(json.dumps({"spec": ZOO, "target": "onnxruntime:cpu", "samples": 8,
                                                        "budget_s": 1}))
    submitted = json.loads(run_cli("jobs", "submit", "migrate.optimize", "--spec", str(tmp_path / "optimize.json"),
                                   "--json", home=home, check=True).stdout)
    run_cli("worker", "--until-idle", "--concurrency", "1", home=home, check=True, timeout=300)
    optimized = queue.get(submitted["id"])
    assert optimized.status == "succeeded", optimized.log_path.read_text()[-3000:]
    # what the job measured on the node (with this small budget a loaded machine may reach no candidate)
    assert optimized.result["schema"] == "modelyard.optimize/1"
    assert optimized.result["baseline"]["backend"] == "torch:cpu" and optimized.result["baseline"]["latency_ms_p50"] > 0
    assert "submitted as Ray job modelyard-" in optimized.log_path.read_text()
