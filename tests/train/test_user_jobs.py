"""``train`` jobs: the user's script on N data-parallel workers (torchrun semantics, gloo), a run with its metrics,
checkpoints in the blob store, resume from the checkpoint after a worker dies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelyard.core.errors import Forbidden
from modelyard.core.jobkind import LocalJobContext
from modelyard.core.trust import Caller
from modelyard.data.datasets import DatasetStore
from modelyard.train.tracking import RunStore
from modelyard.train.user_jobs import TRAIN, authorize_training

SCRIPT = Path(__file__).parent / "ddp_script.py"


@pytest.fixture
def table_workspace(sqlite_workspace, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 2))
    frame = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "y": 3 * x[:, 0] - 2 * x[:, 1] + 0.5})
    frame.to_csv(tmp_path / "lin.csv", index=False)
    DatasetStore(sqlite_workspace).import_path(tmp_path / "lin.csv", "lin", label="y", task="regression")
    return sqlite_workspace


def _train(workspace, tmp_path, workers: int, **params) -> dict:
    digest = "sha256:" + workspace.blobs.put_file(SCRIPT).digest
    spec = TRAIN.validate_spec({"script": digest, "script_name": "ddp_script.py", "data": "lin@1",
                                "workers": workers, "params": {k: str(v) for k, v in params.items()}})
    ctx = LocalJobContext(home=workspace.home, workdir=tmp_path / f"job-{workers}-{len(params)}")
    result = TRAIN.run(spec, ctx)
    if "die_at_step" in params:
        assert any("worker rank 1 died (exit code -9); restarting all 2 from the checkpoint sha256:" in line
                   for line in ctx.lines), ctx.lines
    return result


@pytest.mark.slow
def test_two_workers_converge_like_one_and_a_dead_worker_resumes_from_the_checkpoint(table_workspace, tmp_path):
    one = _train(table_workspace, tmp_path, 1, steps=20)
    # two workers, the last one SIGKILLed at step 12 on the first attempt: the group restarts from the step-9
    # checkpoint (saved every 5 steps) and must end exactly where one worker with the same global batch ends, since
    # DDP's averaged gradients make the same updates (up to float rounding): this checks both at once
    two = _train(table_workspace, tmp_path, 2, steps=20, die_at_step=12)
    assert one["workers"] == 1 and two["workers"] == 2 and one["steps"] == two["steps"] == 19
    assert one["restarts"] == 0 and two["restarts"] == 1
    assert two["metrics"]["loss"] == pytest.approx(one["metrics"]["loss"], rel=1e-3, abs=1e-6)
    assert one["metrics"]["loss"] < 0.5
    run = RunStore(table_workspace).get(two["run_id"])
    assert run.dataset == "lin@1" and run.status == "finished"
    assert table_workspace.blobs.exists(two["checkpoint"]) and run.artifacts


@pytest.mark.slow
def test_a_requeued_attempt_continues_its_run_from_the_checkpoint_in_the_blob_store(table_workspace, tmp_path):
    """An attempt that died hard (its worker or node lost: no chance to finish its run) left a running run with a
    checkpoint artifact; the re-queued attempt, in a fresh folder, continues that run from that checkpoint."""
    import torch

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.save({"step": 9, "state": {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": 9}},
               tmp_path / "checkpoint.pt")  # what ddp_script.py saves at step 9
    checkpoint = "sha256:" + table_workspace.blobs.put_file(tmp_path / "checkpoint.pt").digest
    runs = RunStore(table_workspace)
    lost = runs.create("train-ddp_script", experiment="train", job_id="job_requeued")
    runs.log_metrics(lost.id, [{"key": "loss", "value": 1.0, "step": 9}])
    runs.add_artifact(lost.id, "checkpoint.pt", checkpoint)
    digest = "sha256:" + table_workspace.blobs.put_file(SCRIPT).digest
    spec = TRAIN.validate_spec({"script": digest, "script_name": "ddp_script.py", "data": "lin@1", "workers": 1,
                                "params": {"steps": "20", "die_at_step": "12"}})
    ctx = LocalJobContext(home=table_workspace.home, workdir=tmp_path / "attempt-2", job_id="job_requeued")
    result = TRAIN.run(spec, ctx)
    assert result["run_id"] == lost.id and [r.id for r in runs.of_job("job_requeued")] == [lost.id]
    assert any(line.startswith(f"resuming from the checkpoint {checkpoint}") for line in ctx.lines)
    # the ranks see a restart (no die_at_step on a resumed attempt) and start after the checkpoint's step
    assert result["restarts"] == 0 and result["steps"] == 19
    history = runs.metric_history(lost.id, "loss")["loss"]
    assert [p["step"] for p in history] == list(range(9, 20))
    assert runs.get(lost.id).status == "finished" and result["metrics"]["loss"] < 0.5


def test_only_callers_who_may_run_code_submit_a_script(table_workspace):
    digest = "sha256:" + table_workspace.blobs.put_file(SCRIPT).digest
    spec = TRAIN.validate_spec({"script": digest, "data": "lin@1"})
    with pytest.raises(Forbidden, match="admin"):
        authorize_training(spec, Caller("ed", "editor"), table_workspace)
    authorize_training(spec, Caller("root", "admin"), table_workspace)


def test_cli_refuses_a_missing_script_and_a_bad_param(tmp_path, capsys):
    from modelyard.cli.main import main

    assert main(["train", "submit", str(tmp_path / "nope.py"), "--home", str(tmp_path / "h")]) == 2
    assert "no such script" in capsys.readouterr().err
    script = tmp_path / "s.py"
    script.write_text("print(1)\n")
    assert main(["train", "submit", str(script), "--param", "novalue", "--home", str(tmp_path / "h")]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
