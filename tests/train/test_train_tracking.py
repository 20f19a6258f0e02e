"""Tracked runs: the store, and ``modelyard.run(...)`` from a script."""

import pytest

import modelyard
from modelyard.core.errors import Conflict, InvalidInput, NotFound
from modelyard.train.tracking import RunStore


def test_run_records_params_metrics_logs_artifacts(workspace):
    runs = RunStore(workspace)
    run = runs.create("baseline", experiment="iris", params={"lr": 0.1, "inf": float("inf")}, dataset="iris@1")
    assert run.status == "running" and run.params == {"lr": 0.1, "inf": "inf"} and run.dataset == "iris@1"
    assert runs.log_metrics(run.id, [{"key": "loss", "value": 1.0}, {"key": "loss", "value": 0.5},
                                     {"key": "acc", "value": 0.9, "step": 10}]) == 3
    runs.log_metrics(run.id, [{"key": "loss", "value": 0.25}])
    history = runs.metric_history(run.id)
    assert [p["step"] for p in history["loss"]] == [0, 1, 2] and history["acc"][0]["step"] == 10
    runs.log_params(run.id, {"depth": 3})
    runs.log_lines(run.id, ["epoch 1", "epoch 2"])
    blob = workspace.blobs.put_bytes(b"weights")
    runs.add_artifact(run.id, "model.bin", blob.digest)
    done = runs.finish(run.id)
    assert done.status == "finished" and done.metrics == {"loss": 0.25, "acc": 0.9}
    assert done.params["depth"] == 3 and done.artifacts[0]["name"] == "model.bin" and done.duration_s >= 0
    assert [line["line"] for line in runs.logs(run.id)["lines"]] == ["epoch 1", "epoch 2"]
    with pytest.raises(Conflict, match="is finished; it no longer accepts changes"):
        runs.log_metrics(run.id, [{"key": "loss", "value": 0.1}])
    with pytest.raises(Conflict, match="already ended"):
        runs.finish(run.id)
    assert [r.id for r in runs.list(experiment="iris")] == [run.id]


def test_bad_metrics_are_refused(sqlite_workspace):
    runs = RunStore(sqlite_workspace)
    run = runs.create("x")
    for points, message in (([{"key": "", "value": 1}], "metric key"),
                            ([{"key": "a", "value": "abc"}], "is not a number"),
                            ([{"key": "a", "value": float("nan")}], "is not finite"),
                            ([{"key": "a", "value": 1, "step": -1}], "step must be")):
        with pytest.raises(InvalidInput, match=message):
            runs.log_metrics(run.id, points)
    assert runs.metric_history(run.id) == {}
    with pytest.raises(NotFound):
        runs.get("run_nope")
    with pytest.raises(InvalidInput, match="the version must be a number"):
        runs.create("y", dataset="iris@x")


def test_compare_marks_differences_and_the_best(sqlite_workspace):
    runs = RunStore(sqlite_workspace)
    a = runs.create("a", params={"lr": 0.1, "depth": 3})
    b = runs.create("b", params={"lr": 0.01, "depth": 3})
    runs.log_metrics(a.id, [{"key": "val_accuracy", "value": 0.9}, {"key": "val_loss", "value": 0.3}])
    runs.log_metrics(b.id, [{"key": "val_accuracy", "value": 0.8}, {"key": "val_loss", "value": 0.2}])
    result = runs.compare([a.id, b.id])
    assert result["differs"]["params"] == ["lr"]
    assert result["best"] == {"val_accuracy": a.id, "val_loss": b.id}


def test_sdk_context_manager_records_a_script(tmp_path):
    home = tmp_path / "home"
    with modelyard.run("script", experiment="sdk", params={"lr": 3e-4}, home=home) as r:
        for step in range(5):
            r.log_metric("loss", 1.0 / (step + 1))
        r.log_metrics({"acc": 0.5, "f1": 0.4}, step=4)
        r.log("hello from the script")
        weights = tmp_path / "w.bin"
        weights.write_bytes(b"abc")
        r.log_artifact(weights)
    assert r.info["status"] == "finished"
    with pytest.raises(ZeroDivisionError):
        with modelyard.run("broken", experiment="sdk", home=home) as broken:
            broken.log_metric("loss", 1.0)
            raise ZeroDivisionError("boom")
    with modelyard.Client(home=home) as client:
        done = client.runs.get(r.id)
        assert done["metrics"]["loss"] == pytest.approx(0.2) and len(done["history"]["loss"]) == 5
        assert done["artifacts"][0]["name"] == "w.bin"
        assert client.runs.logs(r.id)["lines"][0]["line"] == "hello from the script"
        failed = client.runs.get(broken.id)
        assert failed["status"] == "failed" and "ZeroDivisionError: boom" in failed["error"]
        assert failed["metrics"] == {"loss": 1.0}
